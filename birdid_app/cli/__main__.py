"""`python -m birdid_app.cli`: the same as `birdid` and `python -m birdid_app`."""

import sys

from birdid_app.cli import main

sys.exit(main())
