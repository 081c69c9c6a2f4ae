"""The bundle's windowed app (no console window on Windows): every argument is a photo to open."""

import multiprocessing

from birdid_app.gui.app import main

# The window's engine converts int8 in a spawned child (core/model/int8.py): frozen, the child is this
# executable again, and freeze_support runs the child's work instead of opening a window.
multiprocessing.freeze_support()
main()
