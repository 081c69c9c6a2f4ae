"""How sharp a photo is where the bird is: the variance of the Laplacian inside a box.

The Laplacian (the 4-neighbour second difference) is near zero on smooth areas and large on
edges, so its variance rises with fine detail in focus and falls with blur or motion: the measure
photographers know from focus-stacking tools and OpenCV tutorials, and one anyone can check.

Scores compare only at one scale: a box of a burst's frames is always resampled to
WORKING_SIDE x WORKING_SIDE grey pixels first, from a photo decoded at SHARPNESS_DRAFT (a
6000x4000 JPEG decodes at 1/4 scale, 1500x1000, several times faster than in full). A bird a tenth
of the frame wide is then ~150 decoded pixels, enough to tell feathers in focus from a soft frame.
No model here: where the box comes from (the class-activation map of the forward, or the zoom) is
core/insight/trust.py's.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

Region = tuple[int, int, int, int]  # x, y, width, height in image pixels

# Decoded at least this size (upright) for scoring: JPEG draft mode gives 1/4 of a 6000x4000 frame.
SHARPNESS_DRAFT = (960, 960)
WORKING_SIDE = 256  # the box is scored at this many pixels a side, whatever its size in the photo
CENTRE_SHARE = 0.5  # with no better box, the centred square this share of the short side


def centre_box(size: tuple[int, int], share: float = CENTRE_SHARE) -> Region:
    """The centred square of `share` of the shorter side of an image of `size` (width, height):
    where a photographer puts the bird when nothing better says where it is."""
    width, height = size
    side = max(1, round(min(width, height) * share))
    return ((width - side) // 2, (height - side) // 2, side, side)


def scaled_box(box: Region, from_size: tuple[int, int], to_size: tuple[int, int]) -> Region:
    """`box` in an image of `from_size` as the same part of the same image at `to_size`."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    x, y = round(box[0] * sx), round(box[1] * sy)
    return (x, y, max(1, round(box[2] * sx)), max(1, round(box[3] * sy)))


def laplacian_variance(grey: np.ndarray) -> float:
    """The variance of the 4-neighbour Laplacian of `grey` ([h, w], any numeric type, 0..255),
    over the interior pixels (the border has no neighbours on one side)."""
    g = np.asarray(grey, dtype=np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    laplacian = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]  # [h-2, w-2]
    return float(laplacian.var())


def sharpness(image: Image.Image, box: Region | None = None) -> float:
    """How sharp `image` is inside `box` (its pixels; None: `centre_box`): the variance of the
    Laplacian of the box in grey, resampled to WORKING_SIDE a side."""
    if box is None:
        box = centre_box(image.size)
    x, y, width, height = box
    x, y = min(max(x, 0), image.width - 1), min(max(y, 0), image.height - 1)
    right, bottom = min(x + max(width, 1), image.width), min(y + max(height, 1), image.height)
    grey = image.crop((x, y, right, bottom))
    grey = grey if grey.mode == "L" else grey.convert("L")
    # A box larger than the working size is averaged down (as a camera's own sensor would be),
    # a smaller one enlarged; either way every frame is scored on the same grid.
    grey = grey.resize((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return laplacian_variance(np.asarray(grey))
