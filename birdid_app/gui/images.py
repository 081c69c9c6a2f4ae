"""Moving pictures between PIL (what the core decodes) and Qt (what the window paints)."""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QImage


def qimage_from_pil(image: Image.Image) -> QImage:
    """An 8-bit RGB PIL image as a QImage that owns its pixels (safe to build off the GUI thread)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    data = rgb.tobytes()
    view = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return view.copy()  # `view` borrows `data`, which Python frees when this function returns


def pil_from_qimage(image: QImage) -> Image.Image:
    """A QImage (a pasted picture, say) as an 8-bit RGB PIL image."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    stride = rgb.bytesPerLine()
    data = bytes(rgb.constBits())[: stride * rgb.height()]
    return Image.frombuffer("RGB", (rgb.width(), rgb.height()), data, "raw", "RGB", stride, 1).copy()


def qimage_from_rgba(pixels) -> QImage:
    """[H, W, 4] uint8 RGBA (a NumPy array) as a QImage that owns its pixels."""
    height, width = pixels.shape[:2]
    data = pixels.tobytes()
    return QImage(data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
