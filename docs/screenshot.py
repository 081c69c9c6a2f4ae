"""Regenerate docs/screenshot.png (the real window, with a photo identified) and
docs/explain.png (what `birdid explain` draws: PCA colours of stage 1 over the same photo).

Run under a display, e.g. a virtual one:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshot.py

The published model cannot be fetched where this runs, so the window uses a small Hiera with
random weights under real species names, imported as an unverified model (and labelled so in
the status bar); the photo is the drawing in resources/samples. What the screenshot shows is the window.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

OUT = Path(__file__).with_name("screenshot.png")
EXPLAINED = Path(__file__).with_name("explain.png")
# A drawing made by packaging/make_resources.py, also the selftest's sample.
SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "robin.jpg"
SPECIES = [
    "European Robin", "Common Redstart", "Black Redstart", "Eurasian Bullfinch", "Common Chaffinch",
    "Eurasian Blue Tit", "Great Tit", "Eurasian Wren", "Dunnock", "Common Blackbird",
    "Song Thrush", "Eurasian Nuthatch", "Goldcrest", "Common Firecrest", "Spotted Flycatcher",
    "European Stonechat", "Whinchat", "Northern Wheatear", "House Sparrow", "Eurasian Tree Sparrow",
]


def demo_model(path: Path) -> None:
    from birdid_app.core.model.checkpoint import write_checkpoint
    from birdid_app.core.model.hiera import Hiera, HieraConfig

    torch.manual_seed(3)
    model = Hiera(HieraConfig(embed_dim=48, depths=(1, 2, 3, 1), num_heads=1, num_classes=len(SPECIES),
                              image_size=(224, 224)))
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim > 1:
                param.normal_(0, param[0].numel() ** -0.5)
        model.classifier.weight.mul_(6)  # random weights, but confident enough to show a clear answer
    model.refresh_position_embedding()
    write_checkpoint(path, model, SPECIES, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def scratch_session(name: str) -> Path:
    """A fresh scratch folder that the app's data and config folders point into for this run (the
    person's own are never touched), or an exit with one sentence when there is no display."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        sys.exit("No display: run this under xvfb-run (see the docstring).")
    scratch = Path(tempfile.mkdtemp(prefix=f"birdid-{name}-"))
    os.environ["BIRDID_DATA_DIR"] = str(scratch / "data")
    os.environ["BIRDID_CONFIG_DIR"] = str(scratch / "config")
    return scratch


def main() -> None:
    scratch = scratch_session("screenshot")
    demo_model(scratch / "birdid-demo-random-weights.pt")
    shutil.copy(SAMPLE, scratch / "robin-on-a-branch.jpg")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.gui.main_window import MainWindow

    ModelStore().import_file(scratch / "birdid-demo-random-weights.pt")
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    window.add_photos([scratch / "robin-on-a-branch.jpg"])

    def snap_when_done() -> None:
        entry = window.session.current
        if entry is None or entry.outcome() is None or window.photo_view.photo_size() is None:
            QTimer.singleShot(200, snap_when_done)
            return
        QTimer.singleShot(300, lambda: (window.grab().save(str(OUT)), window.close()))

    QTimer.singleShot(500, snap_when_done)
    QTimer.singleShot(120_000, app.quit)  # never hang a build
    app.exec()
    print(f"wrote {OUT}")

    from birdid_app.cli import main as birdid

    photo, model = scratch / "robin-on-a-branch.jpg", scratch / "birdid-demo-random-weights.pt"
    birdid(["explain", str(photo), "--model", str(model), "--stage", "1", "--mode", "pca",
            "--opacity", "0.75", "--max-size", "900", "--out", str(EXPLAINED)])


if __name__ == "__main__":
    main()
