"""Regenerate the files in resources/ that are made, not drawn by hand:

- resources/icons/png/birdid-<N>.png, the app icon at the sizes desktops and installers ask
  for, rendered from resources/icons/birdid.svg with Qt's SVG renderer;
- resources/samples/robin.jpg, the sample picture `birdid selftest` and the precision check
  identify: a drawing of a robin made here (no photograph could be fetched where this project is
  built, and a drawing carries no licence question). It proves the pipeline runs, not that the
  model is right.

Run: `QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_resources.py`
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def drawn_robin(path: Path, width: int = 960, height: int = 640) -> None:
    """A robin on a branch against a blurred green background, drawn at 1600x1067 and scaled."""
    full_width, full_height = 1600, 1067
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:full_height, 0:full_width].astype(np.float32)
    background = np.stack([70 + 40 * np.sin(xx / 310) + 20 * np.cos(yy / 170),
                           110 + 50 * np.cos(xx / 410 + yy / 520),
                           60 + 30 * np.sin(yy / 260)], axis=-1)
    image = Image.fromarray(np.clip(background + rng.normal(0, 4, background.shape), 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(image)
    draw.line([(0, 760), (700, 700), (1600, 790)], fill=(92, 64, 40), width=34)  # the branch
    cx, cy = 760, 560
    draw.ellipse([cx - 170, cy - 130, cx + 150, cy + 150], fill=(120, 100, 78))  # body
    draw.ellipse([cx - 150, cy - 60, cx + 60, cy + 140], fill=(214, 104, 48))  # orange breast
    draw.ellipse([cx - 20, cy - 250, cx + 170, cy - 60], fill=(120, 100, 78))  # head
    draw.ellipse([cx - 5, cy - 190, cx + 120, cy - 60], fill=(214, 104, 48))  # orange face
    draw.ellipse([cx + 90, cy - 190, cx + 118, cy - 162], fill=(20, 16, 12))  # eye
    draw.polygon([(cx + 165, cy - 150), (cx + 225, cy - 135), (cx + 160, cy - 118)], fill=(40, 32, 24))  # beak
    draw.polygon([(cx - 160, cy + 20), (cx - 330, cy + 140), (cx - 300, cy + 170), (cx - 140, cy + 90)],
                 fill=(100, 84, 66))  # tail
    draw.line([(cx - 10, cy + 140), (cx - 25, cy + 215)], fill=(60, 45, 35), width=8)  # legs
    draw.line([(cx + 50, cy + 140), (cx + 45, cy + 212)], fill=(60, 45, 35), width=8)
    image = image.filter(ImageFilter.GaussianBlur(1.2)).resize((width, height), Image.Resampling.LANCZOS)
    image.save(path, quality=88, optimize=True)


def icon_pngs(svg: Path, folder: Path) -> list[Path]:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - the renderer needs one
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: Qt cannot read this SVG.")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for size in ICON_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = folder / f"birdid-{size}.png"
        image.save(str(path))
        written.append(path)
    return written


def main() -> None:
    sample = RESOURCES / "samples" / "robin.jpg"
    sample.parent.mkdir(exist_ok=True)
    drawn_robin(sample)
    print(f"wrote {sample}")
    for path in icon_pngs(RESOURCES / "icons" / "birdid.svg", RESOURCES / "icons" / "png"):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
