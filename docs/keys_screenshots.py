"""Regenerate docs/keys.png: the real window at 1024x700 choosing a region with the keyboard (the
dashed box, after Shift+R and a few arrow presses), beside Help > Keyboard Shortcuts.

Run under a display, e.g. a virtual one:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/keys_screenshots.py

The model is docs/screenshot.py's small Hiera with random weights under real species names (an
unverified model, and labelled so); the photo is the drawing in resources/samples.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "keys.png"
sys.path.insert(0, str(DOCS))


def main() -> None:
    from screenshot import SAMPLE, demo_model, scratch_session

    scratch = scratch_session("keys")
    demo_model(scratch / "birdid-demo-random-weights.pt")
    shutil.copy(SAMPLE, scratch / "robin-on-a-branch.jpg")

    from PySide6.QtCore import QPoint, Qt, QTimer
    from PySide6.QtGui import QKeyEvent, QPainter, QPixmap
    from PySide6.QtWidgets import QApplication

    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.gui.main_window import MainWindow
    from birdid_app.gui.shortcuts import ShortcutsDialog

    ModelStore().import_file(scratch / "birdid-demo-random-weights.pt")
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1024, 700)
    window.show()
    window.add_photos([scratch / "robin-on-a-branch.jpg"])

    def press(key: Qt.Key, shift: bool = False) -> None:
        modifiers = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
        QApplication.sendEvent(window.photo_view, QKeyEvent(QKeyEvent.Type.KeyPress, key, modifiers))

    def snap() -> None:
        dialog = ShortcutsDialog(window)
        dialog.resize(620, 700)
        dialog.show()
        QApplication.processEvents()
        shown, table = window.grab(), dialog.grab()
        picture = QPixmap(shown.width() + table.width() + 16, max(shown.height(), table.height()))
        picture.fill(Qt.GlobalColor.white)
        painter = QPainter(picture)
        painter.drawPixmap(QPoint(0, 0), shown)
        painter.drawPixmap(QPoint(shown.width() + 16, 0), table)
        painter.end()
        picture.save(str(OUT))
        dialog.close()
        window.close()

    def when_identified() -> None:
        entry = window.session.current
        if entry is None or entry.outcome() is None or window.photo_view.photo_size() is None:
            QTimer.singleShot(200, when_identified)
            return
        window.keyboard_region_action.trigger()
        for key, shift in [(Qt.Key.Key_Up, False), (Qt.Key.Key_Up, False), (Qt.Key.Key_Left, True),
                           (Qt.Key.Key_Up, True)]:
            press(key, shift)
        QTimer.singleShot(300, snap)

    QTimer.singleShot(500, when_identified)
    QTimer.singleShot(120_000, app.quit)  # never hang a build
    app.exec()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
