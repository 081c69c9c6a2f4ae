"""Regenerate docs/cull.png: the Library tab's Bursts, each frame with its sharpness on the bird
and ★ on the sharpest, after a person has picked the best frame of a burst (P), rejected one (X)
and given one three stars (3).

Run under a display, e.g. a virtual one:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/cull_screenshots.py

The model is docs/screenshot.py's small Hiera with random weights under real species names (an
unverified model, and labelled so), so its species are not to be believed, and two frames of one
scene look less alike to it than to a trained model: the bursts are found at 0.5 alike instead of
0.85. The frames are the drawing in resources/samples, two scenes of five frames taken a second
apart, each softened by a different blur; the indexing, the sharpness, the grid and the keys are
the real ones, and the cull is written to real sidecars.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "cull.png"
sys.path.insert(0, str(DOCS))
BLURS = (2.5, 0.0, 1.2, 4.0, 1.8)  # the second frame of each burst is the sharp one


def make_card(folder: Path, sample: Path) -> None:
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True)
    scene = Image.open(sample).convert("RGB")
    for burst, (crop, minute) in enumerate((((0, 0, 1.0), 41), ((0.15, 0.1, 0.7), 52)), 1):
        left, top, part = crop
        width, height = scene.size
        box = (int(left * width), int(top * height), int((left + part) * width), int((top + part) * height))
        view = scene.crop(box).resize((1600, 1200))
        for frame, blur in enumerate(BLURS, 1):
            image = view.filter(ImageFilter.GaussianBlur(blur)) if blur else view
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = f"2026:05:17 06:{minute}:{10 + frame:02}"
            image.save(folder / f"burst{burst}-{frame}.jpg", exif=exif, quality=92)


def main() -> None:
    from screenshot import SAMPLE, demo_model, scratch_session

    scratch = scratch_session("cull")
    model = scratch / "birdid-demo-random-weights.pt"
    demo_model(model)
    card = scratch / "card"
    make_card(card, SAMPLE)

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    from birdid_app.cli import main as birdid
    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.gui import library_view
    from birdid_app.gui.main_window import MainWindow

    ModelStore().import_file(model)
    assert birdid(["index", str(card), "--device", "cpu"]) == 0
    library_view.BURST_THRESHOLD = 0.5  # random weights: see the docstring
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1280, 760)
    window.show()
    window.tabs.setCurrentWidget(window.library_view)
    view = window.library_view
    grid = view.results
    steps = [("burst1-2.jpg", Qt.Key.Key_P), ("burst1-4.jpg", Qt.Key.Key_X), ("burst2-2.jpg", Qt.Key.Key_3)]

    def item_named(name: str):
        return next(grid.item(row) for row in range(grid.count()) if Path(grid.item(row).data(0x0100)).name == name)

    def cull_next() -> None:
        if not steps:
            QTimer.singleShot(800, snap)
            return
        name, key = steps.pop(0)
        grid.clearSelection()
        item_named(name).setSelected(True)
        grid.setFocus()
        QApplication.sendEvent(grid, QKeyEvent(QKeyEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier))
        QTimer.singleShot(800, cull_next)

    def when_shown() -> None:
        if grid.count() < 10 or any(grid.item(row).icon().isNull() for row in range(grid.count())):
            QTimer.singleShot(300, when_shown)
            return
        cull_next()

    def snap() -> None:
        grid.clearSelection()
        item_named("burst1-2.jpg").setSelected(True)
        QApplication.processEvents()
        window.grab().save(str(OUT))
        window.close()

    def start() -> None:
        if window.loaded_model is None:
            QTimer.singleShot(300, start)
            return
        view.bursts_button.click()
        QTimer.singleShot(300, when_shown)

    QTimer.singleShot(500, start)
    QTimer.singleShot(120_000, app.quit)  # never hang a build
    app.exec()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
