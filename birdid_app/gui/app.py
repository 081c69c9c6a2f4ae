"""Starting the Qt application."""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from PySide6.QtWidgets import QApplication

from birdid_app import APP_ID, APP_NAME, __version__
from birdid_app.gui.main_window import MainWindow


def running_application() -> QApplication:
    """The QApplication of this process: the one already made (by a test, say), else a new one."""
    existing = QApplication.instance()
    return existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])


def configure_application(app: QApplication) -> QApplication:
    """Name, version and desktop id: the id ties the window to org.birdid.Birdid.desktop, so
    Wayland docks and task bars show the right icon and name."""
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    return app


# Qt's X11 platform plugin links these; without one Qt aborts with a page of its own (seen on
# minimal Debian and Ubuntu installs, where libxcb-cursor0 is missing).
_XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
                  "xkbcommon-x11": "libxkbcommon-x11-0"}
_USE_THE_COMMAND_LINE = "the command line works without one: `birdid identify PHOTO`, `birdid --help`."


def display_problem(environ: Mapping[str, str] = os.environ, platform: str = sys.platform,
                    find_library: Callable[[str], str | None] = ctypes.util.find_library) -> str | None:
    """Why the window cannot open here, as one sentence, or None: no display on Linux, or a
    library Qt's X11 plugin needs is missing. Qt itself would abort the process instead."""
    if not platform.startswith("linux") or environ.get("QT_QPA_PLATFORM"):
        return None  # another platform, or a Qt platform chosen on purpose (offscreen, vnc…)
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return f"There is no display to open the window on (DISPLAY is not set); {_USE_THE_COMMAND_LINE}"
    if environ.get("WAYLAND_DISPLAY"):
        return None  # Qt's Wayland plugin, which needs none of the X11 libraries
    missing = [package for name, package in _XCB_LIBRARIES.items() if find_library(name) is None]
    if missing:
        return (f"The window needs X11 libraries this computer lacks (install {' '.join(missing)}, e.g. "
                f"`sudo apt-get install {' '.join(missing)}`); {_USE_THE_COMMAND_LINE}")
    return None


def run_app(photos: list[Path] | None = None) -> int:
    """Open the window, with `photos` in it if given, and run until it closes; 2, with one
    sentence on stderr, where no window can open."""
    if QApplication.instance() is None and (problem := display_problem()) is not None:
        print(f"birdid: {problem}", file=sys.stderr)
        return 2
    app = configure_application(running_application())
    window = MainWindow()
    window.show()
    if photos:
        window.add_photos(photos)
    return app.exec()


def main() -> None:
    """The windowed entry point (`birdid-gui`, the desktop file's Exec): every argument is a
    photo or folder to open, as "Open with" passes them."""
    import multiprocessing

    multiprocessing.freeze_support()  # the int8 conversion's spawned child (core/model/int8.py) starts here too
    sys.exit(run_app([Path(argument) for argument in sys.argv[1:]]))
