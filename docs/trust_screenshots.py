"""Regenerate docs/zoom.png (the real window: a robin small in the frame, the zoom on it with its box,
and the how-far-to-trust panel) and docs/trust.png (that column of the window on its own).

Run under a display, e.g. a virtual one:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/trust_screenshots.py

The published model cannot be fetched where this runs, and a model of random weights finds its
evidence anywhere, so the window runs a hand-built model that sees only red: its evidence is
wherever the photo is reddest, here the drawn robin's orange breast. Its species names are real,
its judgement is not. The photos are drawings made here; the library beside them is indexed and
labelled with the `birdid` command, as a person would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DOCS = Path(__file__).resolve().parent
ZOOM_OUT, COLUMN_OUT = DOCS / "zoom.png", DOCS / "trust.png"
SPECIES = [
    "European Robin", "Common Redstart", "Black Redstart", "Eurasian Bullfinch", "Common Chaffinch",
    "Eurasian Blue Tit", "Great Tit", "Eurasian Wren", "Dunnock", "Common Blackbird",
]


def red_sighted_model(path: Path) -> None:
    """A Hiera whose only feature is the red of the photo, beside a constant (so that layer norms
    keep how red, not only whether): every species' score is a line in that redness."""
    import torch

    from birdid_app.core.model.checkpoint import write_checkpoint
    from birdid_app.core.model.hiera import Hiera, HieraConfig

    model = Hiera(HieraConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=1, num_classes=len(SPECIES),
                              image_size=(224, 224)))
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.stem.proj.weight[0, 0, 3, 3] = 1.0  # channel 0: the red of a patch's centre pixel
        model.stem.proj.bias[1] = 1.0  # channel 1: a constant
        for block in (b for stage in model.body for b in stage):
            block.norm1.weight.fill_(1.0)
            block.norm2.weight.fill_(1.0)
            if block.proj is not None:
                block.proj.weight.copy_(torch.eye(*block.proj.weight.shape))
        model.features[1].weight.fill_(1.0)
        # Redder photos: more robin, then redstarts and bullfinch; duller ones: the rest.
        slopes = torch.linspace(2.2, -1.0, len(SPECIES))
        model.classifier.weight[:, 0] = slopes
        model.classifier.bias.copy_(-slopes * 1.6)
    model.refresh_position_embedding()
    write_checkpoint(path, model.eval(), SPECIES, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def scene(size: tuple[int, int], robin_at: tuple[int, int] | None, robin_size: int, seed: int) -> Image.Image:
    """Green-grey foliage (little red in it) and, if `robin_at`, a drawn robin on a twig there."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([
        45 + 15 * np.sin(xx / 190 + seed) + 10 * np.cos(yy / 230),
        105 + 30 * np.sin(xx / 260 + yy / 310 + seed),
        70 + 20 * np.cos(yy / 170 - seed),
    ], axis=-1) + rng.normal(0, 5, (height, width, 3))
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    if robin_at is not None:
        draw = ImageDraw.Draw(image)
        x, y, s = robin_at[0], robin_at[1], robin_size
        draw.line([x - s, y + s * 0.55, x + s * 1.2, y + s * 0.62], fill=(92, 64, 40), width=max(2, s // 14))
        draw.ellipse([x - s * 0.45, y - s * 0.15, x + s * 0.45, y + s * 0.55], fill=(118, 96, 74))  # body
        draw.ellipse([x - s * 0.38, y - s * 0.02, x + s * 0.22, y + s * 0.48], fill=(222, 108, 46))  # breast
        draw.ellipse([x - s * 0.05, y - s * 0.5, x + s * 0.5, y + s * 0.0], fill=(118, 96, 74))  # head
        draw.ellipse([x - s * 0.02, y - s * 0.38, x + s * 0.3, y - s * 0.04], fill=(222, 108, 46))  # face
        draw.polygon([(x + s * 0.48, y - s * 0.3), (x + s * 0.68, y - s * 0.24), (x + s * 0.48, y - s * 0.18)],
                     fill=(40, 30, 25))
        draw.ellipse([x + s * 0.26, y - s * 0.34, x + s * 0.34, y - s * 0.26], fill=(15, 10, 10))
    return image


def build_library(folder: Path, model: Path) -> None:
    """A small library like a birder's: robins near and far, and leaves without a bird; some labelled."""
    from birdid_app.cli import main as birdid

    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    for i in range(40):
        robin = i < 28
        size = int(rng.integers(60, 260))
        at = (int(rng.integers(300, 1300)), int(rng.integers(250, 700))) if robin else None
        scene((1600, 1000), at, size, seed=100 + i).save(folder / f"garden-{i:02}.jpg", quality=88)
    common = ["--model", str(model), "--device", "cpu", "--precision", "fp32"]
    assert birdid(["index", str(folder), *common]) == 0
    for i in (1, 4, 7, 9, 12, 15):
        birdid(["label", str(folder / f"garden-{i:02}.jpg"), "European Robin", "--model", str(model)])
    birdid(["label", str(folder / "garden-20.jpg"), "Common Redstart", "--model", str(model)])
    for i in (30, 33):
        birdid(["label", str(folder / f"garden-{i:02}.jpg"), "not a bird", "--model", str(model)])


def main() -> None:
    from screenshot import scratch_session

    scratch = scratch_session("trust")
    model = scratch / "red-sighted-demo-model.pt"
    red_sighted_model(model)
    build_library(scratch / "garden", model)
    photo = scratch / "robin-far-away.jpg"
    scene((3000, 2000), (2150, 640), 120, seed=5).save(photo, quality=92)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.core.settings import Settings, save_settings
    from birdid_app.gui.engine import ZoomOutcome
    from birdid_app.gui.main_window import MainWindow

    save_settings(Settings(device="cpu", precision="fp32", zoom_every_photo=True))
    ModelStore().import_file(model)
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    window.overlay.hide()  # room for the panels this picture is about
    window.add_photos([photo])

    def snap_when_done() -> None:
        entry = window.session.current
        panel = window.trust_panel
        done = (
            entry is not None and entry.outcome() is not None and isinstance(entry.zoom, ZoomOutcome)
            and all(panel.state(title) != "working" for title in panel.ROWS)
        )
        if not done:
            QTimer.singleShot(200, snap_when_done)
            return

        def snap() -> None:
            window.grab().save(str(ZOOM_OUT))
            window.zoom_panel.parentWidget().grab().save(str(COLUMN_OUT))
            window.close()

        QTimer.singleShot(400, snap)

    QTimer.singleShot(500, snap_when_done)
    QTimer.singleShot(180_000, app.quit)  # never hang a build
    app.exec()
    print(f"wrote {ZOOM_OUT} and {COLUMN_OUT}")


if __name__ == "__main__":
    main()
