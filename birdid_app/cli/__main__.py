"""`python -m birdid_app.cli`: the same as `birdid` and `python -m birdid_app`."""

import sys

from birdid_app.cli import main

if __name__ == "__main__":  # not in the int8 conversion's spawned child, which imports this module again
    sys.exit(main())
