"""The bundle's console command: `birdid` exactly as the installed package's (cli.main)."""

import multiprocessing

from birdid_app.cli import main

# The int8 conversion runs in a spawned child (core/model/int8.py): frozen, the child is this
# executable again, and freeze_support runs the child's work instead of the command line.
multiprocessing.freeze_support()
raise SystemExit(main())
