"""Regenerate docs/where.png: the real window ranking a photo by where and when, beside the same
answer by the picture alone (the switch off).

Run under a display, e.g. a virtual one:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/where_screenshots.py

Neither the published image model nor the published range model can be fetched where this runs,
so both are hand-built and said to be: an image model whose classifier ignores the picture and
always finds a Willow Tit a little likelier than a Marsh Tit (the look-alikes a photo often cannot
tell apart), and a range model in the real ONNX format, with real eBird labels, in which the
Willow Tit is a northern bird. The photo is a drawing with real EXIF GPS (near Granada) and a
June date, as a camera writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "where.png"
sys.path.insert(0, str(DOCS.parent / "tests"))  # geomodel_files: the range model format the tests use
# The picture's own answer: the tits close together, then the rest.
SPECIES_BIASES = {
    "Willow Tit": 2.0, "Marsh Tit": 1.85, "Coal Tit": 0.9, "Eurasian Blue Tit": 0.2, "Great Tit": 0.0,
    "Eurasian Wren": -0.6, "European Robin": -0.8, "Common Chaffinch": -1.0,
}


def lookalike_model(path: Path) -> None:
    import dataclasses

    import torch

    from birdid_app.core.model.checkpoint import write_checkpoint
    from birdid_app.core.model.hiera import Hiera, HieraConfig

    config = HieraConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=1, num_classes=len(SPECIES_BIASES),
                         image_size=(224, 224))
    model = Hiera(dataclasses.replace(config))
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(list(SPECIES_BIASES.values())))
    model.refresh_position_embedding()
    write_checkpoint(path, model.eval(), list(SPECIES_BIASES), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def tit_on_a_twig(path: Path) -> None:
    """A drawn tit (black cap and bib, pale cheeks, brown back) on a twig, with GPS and a date."""
    from geomodel_files import photo_taken_at

    rng = np.random.default_rng(3)
    width, height = 1800, 1200
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([90 + 20 * np.sin(xx / 210), 120 + 25 * np.cos(yy / 260 + xx / 400), 80 + 15 * np.sin(yy / 180)],
                    axis=-1) + rng.normal(0, 5, (height, width, 3))
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    x, y, s = 900, 560, 260
    draw.line([x - 2 * s, y + s * 0.7, x + 2 * s, y + s * 0.55], fill=(85, 60, 40), width=26)
    draw.ellipse([x - s, y - s * 0.2, x + s * 0.7, y + s * 0.75], fill=(150, 125, 100))  # body
    draw.ellipse([x - s * 0.75, y + s * 0.05, x + s * 0.5, y + s * 0.7], fill=(220, 205, 185))  # belly
    draw.polygon([(x - s, y + s * 0.2), (x - 1.9 * s, y + s * 0.45), (x - s * 0.9, y + s * 0.5)], fill=(120, 100, 80))
    draw.ellipse([x + s * 0.1, y - s * 0.75, x + s * 0.9, y + s * 0.05], fill=(235, 230, 220))  # head
    draw.chord([x + s * 0.1, y - s * 0.75, x + s * 0.9, y + s * 0.05], 180, 360, fill=(25, 22, 20))  # cap
    draw.ellipse([x + s * 0.4, y - s * 0.05, x + s * 0.7, y + s * 0.2], fill=(30, 26, 24))  # bib
    draw.ellipse([x + s * 0.58, y - s * 0.4, x + s * 0.68, y - s * 0.3], fill=(10, 10, 10))  # eye
    draw.polygon([(x + s * 0.88, y - s * 0.32), (x + s * 1.02, y - s * 0.28), (x + s * 0.88, y - s * 0.22)],
                 fill=(30, 30, 30))
    photo_taken_at(path, latitude=37.18, longitude=-3.60, taken="2024:06:14 08:30:00", picture=image)


def main() -> None:
    from screenshot import scratch_session

    scratch = scratch_session("where")
    model = scratch / "lookalike-demo-model.pt"
    lookalike_model(model)
    photo = scratch / "tit-near-granada.jpg"
    tit_on_a_twig(photo)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from birdid_app.cli import main as birdid
    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.core.settings import Settings, save_settings
    from birdid_app.gui.main_window import MainWindow
    from geomodel_files import default_spec, write_geomodel

    range_model, labels = write_geomodel(scratch / "range", default_spec(), name="hand-built-range-model")
    assert birdid(["geomodel", "import", str(range_model), str(labels)]) == 0
    save_settings(Settings(device="cpu", precision="fp32", rank_by_place=True))
    ModelStore().import_file(model)
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    window.overlay.hide()
    window.add_photos([photo])
    shots: list[Image.Image] = []

    def snap_when_done() -> None:
        entry = window.session.current
        if entry is None or entry.outcome() is None or window.session.pending(entry) is not None:
            QTimer.singleShot(200, snap_when_done)
            return

        def snap() -> None:
            shots.append(_to_pil(window.grab()))
            window.results.rank_switch.setChecked(False)
            QTimer.singleShot(300, snap_picture_only)

        QTimer.singleShot(400, snap)

    def snap_picture_only() -> None:
        shots.append(_to_pil(window.results.grab()))
        window.close()

    QTimer.singleShot(500, snap_when_done)
    QTimer.singleShot(180_000, app.quit)  # never hang a build
    app.exec()
    whole, picture_only = shots
    # The window, and beside it the answer panel with the switch off.
    sheet = Image.new("RGB", (whole.width + picture_only.width + 24, max(whole.height, picture_only.height)), "white")
    sheet.paste(whole, (0, 0))
    sheet.paste(picture_only, (whole.width + 24, 0))
    sheet.save(OUT)
    print(f"wrote {OUT}")


def _to_pil(pixmap) -> Image.Image:
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buffer, "PNG")
    import io

    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")


if __name__ == "__main__":
    main()
