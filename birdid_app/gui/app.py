"""Starting the Qt application."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from birdid_app import APP_ID, APP_NAME, __version__
from birdid_app.gui.main_window import MainWindow


def run_app(photos: list[Path] | None = None) -> int:
    """Open the window, with `photos` in it if given, and run until it closes."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    window = MainWindow()
    window.show()
    if photos:
        window.add_photos(photos)
    return app.exec()


def main() -> None:
    sys.exit(run_app())
