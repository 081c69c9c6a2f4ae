"""`python -m birdid_app` opens the window; with arguments it is the `birdid` command."""

import sys

from birdid_app.cli import main

sys.exit(main())
