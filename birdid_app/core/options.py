"""The choices a person makes about running the model and drawing what it sees, and their defaults.

One list each, read by the settings, the settings dialog, the overlay panel and the command line.
Plain tuples with no imports: the window reads them before torch is loaded, and `birdid --help`
answers without loading anything else.
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda", "mps")  # and "cuda:N", one GPU by its index
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # int8: the CPU only (core/model/int8.py)
DEFAULT_DEVICE = "auto"
DEFAULT_PRECISION = "auto"

STAGES = (1, 2, 3, 4)  # 1: fine detail (stride 4) ... 4: whole objects (stride 32)
OVERLAY_MODES = ("mean", "pca", "channel", "cam")
COLORMAPS = ("viridis", "magma", "grey")
DEFAULT_STAGE = 3
DEFAULT_OVERLAY_MODE = "pca"
DEFAULT_COLORMAP = "viridis"
DEFAULT_OPACITY = 0.6

# How new XMP sidecars are named (core/photos/sidecar.py, which imports exiv2): "lightroom" photo.xmp
# (also Capture One), "darktable" photo.ext.xmp (also digiKam).
SIDECAR_STYLES = ("lightroom", "darktable")
