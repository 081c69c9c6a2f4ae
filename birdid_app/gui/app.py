"""Starting the Qt application."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from birdid_app import APP_ID, APP_NAME, __version__
from birdid_app.gui.main_window import MainWindow


def configure_application(app: QApplication) -> QApplication:
    """Name, version and desktop id: the id ties the window to org.birdid.Birdid.desktop, so
    Wayland docks and task bars show the right icon and name."""
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    return app


def run_app(photos: list[Path] | None = None) -> int:
    """Open the window, with `photos` in it if given, and run until it closes."""
    app = configure_application(QApplication.instance() or QApplication(sys.argv[:1]))
    window = MainWindow()
    window.show()
    if photos:
        window.add_photos(photos)
    return app.exec()


def main() -> None:
    """The windowed entry point (`birdid-gui`, the desktop file's Exec): every argument is a
    photo or folder to open, as "Open with" passes them."""
    sys.exit(run_app([Path(argument) for argument in sys.argv[1:]]))
