"""The window opens, as `birdid` with no arguments opens it."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from birdid_app import APP_NAME
from birdid_app.cli import main
from birdid_app.gui.main_window import MainWindow


def test_main_window_has_the_app_title(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == APP_NAME
    assert not window.windowIcon().isNull()
    assert window.windowIcon().pixmap(32, 32).toImage().pixelColor(16, 4).alpha() > 0


def test_birdid_without_arguments_opens_the_window_and_exits_cleanly(qapp):
    seen = []

    def look_then_close():
        seen.extend(w.windowTitle() for w in QApplication.topLevelWidgets() if w.isVisible())
        QApplication.closeAllWindows()

    QTimer.singleShot(200, look_then_close)
    assert main([]) == 0
    assert APP_NAME in seen
