"""The bundle's windowed app (no console window on Windows): every argument is a photo to open."""

from birdid_app.gui.app import main

main()
