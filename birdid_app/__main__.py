"""`python -m birdid_app` opens the window; with arguments it is the `birdid` command."""

import multiprocessing
import sys

from birdid_app.cli import main

if __name__ == "__main__":
    # The int8 conversion runs in a spawned child (core/model/int8.py): in a frozen app the child is
    # this executable again, which must then run the child's work, not the command line.
    multiprocessing.freeze_support()
    sys.exit(main())
