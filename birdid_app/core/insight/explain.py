"""Seeing what the model sees: stage-map views, class-activation maps, colour maps, blending,
and the pictures made of them. The command line's `explain` and the window's overlay and export
both go through `overlay_values` / `cam_for` and `render_picture`, so they draw the same pixels.

Every map here is in the model's input layout: stage s of a 384x384 input is a [C, H_s, W_s]
grid whose cell (i, j) covers input pixels [i*stride, (i+1)*stride) x [j*stride, ...). The input
is the whole photo (or the selected region) squashed to 384x384, so a map is put back on the
photo by stretching it over that photo rectangle: `blend` and the window both do exactly that.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import BirdidError
from birdid_app.core.model.species_names import shown_name, typed_species
from birdid_app.core.options import STAGES

# torch only where a gradient pass needs it: the window draws overlays and exports pictures with
# this module before the engine thread has loaded torch.
if TYPE_CHECKING:
    import torch

    from birdid_app.core.model.hiera import Hiera
    from birdid_app.core.model.inference import Classifier

# Colour maps as lookup tables: anchor colours at even steps, interpolated linearly to 256.
# "viridis" and "magma" anchors are read off the published perceptually uniform maps
# (van der Walt & Smith, 2015) at eleven evenly spaced points.
_ANCHORS = {
    "viridis": [
        (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
        (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
    ],
    "magma": [
        (0, 0, 4), (20, 14, 54), (59, 15, 112), (100, 26, 128), (140, 41, 129), (183, 55, 121),
        (222, 73, 104), (247, 112, 92), (254, 159, 109), (254, 207, 146), (252, 253, 191),
    ],
    "grey": [(0, 0, 0), (255, 255, 255)],
}


def colormap_lut(name: str) -> np.ndarray:
    """[256, 3] uint8: the colour for each of 256 levels."""
    anchors = np.asarray(_ANCHORS[name], dtype=np.float64)  # [A, 3]
    positions = np.linspace(0, 255, len(anchors))
    levels = np.arange(256)
    lut = np.stack([np.interp(levels, positions, anchors[:, c]) for c in range(3)], axis=-1)
    return np.rint(lut).astype(np.uint8)


def apply_colormap(values: np.ndarray, name: str) -> np.ndarray:
    """[H, W] values in 0..1 -> [H, W, 3] uint8 colours."""
    levels = np.clip(np.rint(values * 255), 0, 255).astype(np.intp)
    return colormap_lut(name)[levels]


def normalise(values: np.ndarray) -> np.ndarray:
    """Stretch to 0..1; a flat map becomes all zeros rather than a division by zero."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def activation_strength(stage_map: np.ndarray) -> np.ndarray:
    """[C, H, W] -> [H, W] in 0..1: the mean absolute activation of each cell."""
    return normalise(np.abs(stage_map).mean(axis=0))


def channel_ranking(stage_map: np.ndarray) -> np.ndarray:
    """Channel indices, the strongest firing first (by mean activation over the map)."""
    return np.argsort(-stage_map.mean(axis=(1, 2)), kind="stable")


def single_channel(stage_map: np.ndarray, channel: int) -> np.ndarray:
    """[C, H, W] -> [H, W] in 0..1: one channel, normalised."""
    return normalise(stage_map[channel])


def pca_rgb(stage_map: np.ndarray) -> np.ndarray:
    """[C, H, W] -> [H, W, 3] in 0..1: the first three principal components as red, green, blue.

    Computed per photo. Each component's sign is fixed so its largest loading is positive (PCA
    itself leaves it arbitrary), and each is stretched between its 1st and 99th percentile so
    a few extreme cells do not wash the picture out."""
    channels, height, width = stage_map.shape
    cells = stage_map.reshape(channels, -1).T.astype(np.float64)  # [H*W, C]
    cells -= cells.mean(axis=0)
    _, _, components = np.linalg.svd(cells, full_matrices=False)  # rows: principal axes, [k, C]
    components = components[:3]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    projected = cells @ (components * signs[:, None]).T  # [H*W, k]
    rgb = np.zeros((height * width, 3), dtype=np.float32)
    for k in range(projected.shape[1]):
        low, high = np.percentile(projected[:, k], [1, 99])
        rgb[:, k] = np.clip((projected[:, k] - low) / max(high - low, 1e-12), 0, 1)
    return rgb.reshape(height, width, 3)


def stage_view(stage_map: np.ndarray, mode: str, channel: int = 0) -> np.ndarray:
    """One of the stage-map views: "mean" and "channel" give [H, W] in 0..1, "pca" [H, W, 3]."""
    if mode == "mean":
        return activation_strength(stage_map)
    if mode == "pca":
        return pca_rgb(stage_map)
    if mode == "channel":
        if not 0 <= channel < stage_map.shape[0]:
            raise ValueError(f"channel {channel} does not exist: this stage has {stage_map.shape[0]} (0 to {stage_map.shape[0] - 1})")
        return single_channel(stage_map, channel)
    raise ValueError(f"unknown view {mode!r}; choose mean, pca or channel")


def class_activation_map(model: Hiera, model_input: torch.Tensor, class_index: int, stage: int) -> np.ndarray:
    """Grad-CAM on stage `stage` (1-4) for one class: [H_s, W_s] in 0..1, non-negative.

    model_input: [1, 3, H, W] as `to_model_input` makes it, on the model's device and dtype.
    A second pass with gradients. The stage's tokens are captured where the stage ends and
    rerolled, with their gradients, into image layout before they are combined, so the map is
    spatially right despite Hiera's unrolled token order.
    """
    import torch

    from birdid_app.core.model.hiera import POOLED_STAGES, reroll

    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output: torch.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    hook = model.body[stage - 1].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(model_input).logits  # [1, num_classes]
            model.zero_grad(set_to_none=True)
            logits[0, class_index].backward()
    finally:
        hook.remove()
    tokens = captured[0]  # [1, N, C], unrolled
    grid = model.config.token_grid
    pooled = min(stage - 1, POOLED_STAGES)
    grid = (grid[0] // 2**pooled, grid[1] // 2**pooled)
    levels = max(POOLED_STAGES - (stage - 1), 0)
    activations = reroll(tokens.detach().float(), grid, levels)[0]  # [H_s, W_s, C]
    assert tokens.grad is not None  # the hook asked for it and backward() has filled it
    gradients = reroll(tokens.grad.float(), grid, levels)[0]  # [H_s, W_s, C]
    weights = gradients.mean(dim=(0, 1))  # [C]: how much the class score rises with each channel
    cam = torch.relu((activations * weights).sum(dim=-1))  # [H_s, W_s]
    model.zero_grad(set_to_none=True)
    return normalise(cam.cpu().numpy())


def overlay_rgba(
    values: np.ndarray, opacity: float, colormap: str = "viridis"
) -> np.ndarray:
    """A map as an RGBA overlay: [H, W] values (colour-mapped) or [H, W, 3] colours in 0..1
    -> [H, W, 4] uint8 with uniform alpha `opacity` (0..1)."""
    rgb = apply_colormap(values, colormap) if values.ndim == 2 else np.rint(values * 255).astype(np.uint8)
    alpha = np.full(rgb.shape[:2] + (1,), round(opacity * 255), dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=-1)


def blend(photo: Image.Image, overlay: np.ndarray, region: Sequence[int] | None = None) -> Image.Image:
    """The photo with an RGBA overlay [h, w, 4] stretched over the region it describes.

    region = (x, y, width, height) in the photo's pixels, or None for the whole photo: the same
    rectangle the model's input was squashed from, so each overlay cell lands on the photo
    pixels its input pixels came from. Nearest-neighbour stretching keeps cells visible."""
    x, y, width, height = region if region is not None else (0, 0, photo.width, photo.height)
    layer = Image.fromarray(overlay, "RGBA").resize((width, height), Image.Resampling.NEAREST)
    out = photo.convert("RGBA")
    out.alpha_composite(layer, dest=(x, y))
    return out.convert("RGB")


# --- the service both front ends call --------------------------------------------------------


class StageOverlay(NamedTuple):
    values: np.ndarray  # [H, W] in 0..1 (mean, channel) or [H, W, 3] colours in 0..1 (pca)
    channel: int | None  # the channel shown, for "channel"
    channels: int  # how many channels the stage has


class UnknownSpecies(BirdidError):
    """A species name the model does not know."""


def overlay_values(
    stage_maps: Sequence[np.ndarray], stage: int, mode: str, *, channel: int | None = None, channel_rank: int = 0
) -> StageOverlay:
    """The view `mode` ("mean", "pca" or "channel") of stage `stage` (1-4) of one photo's four
    stage maps. A channel is named by its number (`channel`, checked) or by its rank on this
    photo (`channel_rank`, 0: the strongest; clamped to the last). Raises ValueError for a
    channel that does not exist or a mode that needs the model ("cam": see cam_for)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage} does not exist; choose one of {', '.join(map(str, STAGES))}")
    stage_map = stage_maps[stage - 1]  # [C, H, W]
    channels = stage_map.shape[0]
    if mode == "channel" and channel is None:
        ranking = channel_ranking(stage_map)
        channel = int(ranking[min(channel_rank, channels - 1)])
    shown = channel if mode == "channel" else None
    return StageOverlay(stage_view(stage_map, mode, shown or 0), shown, channels)


def species_index(class_names: Sequence[str], name: str) -> int:
    """The model's index for a species name, whatever its capitals; UnknownSpecies otherwise."""
    known = typed_species(name, class_names)
    if known is None:
        raise UnknownSpecies(f"The model knows no species called {shown_name(name)}.")
    return list(class_names).index(known)


def cam_for(classifier: Classifier, image: Image.Image, class_index: int, stage: int) -> np.ndarray:
    """Grad-CAM of `image` (the photo or region the model looked at) for one class, at one stage:
    [H_s, W_s] in 0..1. The input is made exactly as for identification, on the classifier's
    device and in its precision, so the map belongs to the answer the person saw."""
    model_input = classifier.model_input(image)[None].to(classifier.device, classifier.dtype)  # [1, 3, H, W]
    return class_activation_map(classifier.model, model_input, class_index, stage)


def fit_within(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """The size Image.thumbnail((max_size, max_size)) gives a picture of `size`: the aspect kept
    as closely as whole pixels allow (a tie goes to the smaller), never larger than it was."""
    width, height = size
    if width <= max_size and height <= max_size:
        return size
    aspect = width / height
    if aspect <= 1:
        new_width = min(math.floor(max_size * aspect), math.ceil(max_size * aspect), key=lambda n: abs(aspect - n / max_size))
        return max(new_width, 1), max_size
    new_height = min(
        math.floor(max_size / aspect), math.ceil(max_size / aspect),
        key=lambda n: 0 if n == 0 else abs(aspect - max_size / n),
    )
    return max_size, max(new_height, 1)


def render_picture(
    photo: Image.Image | tuple[int, int],
    values: np.ndarray,
    opacity: float,
    colormap: str,
    region: Sequence[int] | None = None,
    max_size: int = 0,
    *,
    blended: bool = True,
) -> Image.Image:
    """The picture a person exports: with `blended`, the overlay at `opacity` over the photo
    (RGB); without, the overlay alone and opaque (RGBA), the size of the photo or of the region
    it covers. `photo` may be just its (width, height) when not blended.

    region: (x, y, width, height) in the photo's pixels, or None for the whole photo.
    max_size: the longest side of the picture, 0 for the photo's own size. The photo is reduced
    before blending, not after: a 100-megapixel photo blended whole would hold several
    full-size RGBA copies at once. `photo` itself is never changed."""
    size = photo.size if isinstance(photo, Image.Image) else (photo[0], photo[1])
    target = fit_within(size, max_size) if max_size else size
    if region is not None and target != size:
        sx, sy = target[0] / size[0], target[1] / size[1]
        x, y, width, height = region
        region = (round(x * sx), round(y * sy), max(1, round(width * sx)), max(1, round(height * sy)))
    if blended:
        if not isinstance(photo, Image.Image):
            raise TypeError("a blended picture needs the photo, not only its size")
        if target != size:
            # As Image.thumbnail reduces (it changes the image in place; this is the caller's).
            photo = photo.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
        return blend(photo, overlay_rgba(values, opacity, colormap), region)
    width, height = (region[2], region[3]) if region is not None else target
    layer = Image.fromarray(overlay_rgba(values, 1.0, colormap), "RGBA")
    return layer.resize((width, height), Image.Resampling.NEAREST)


def save_png(picture: Image.Image, path: str | os.PathLike[str]) -> None:
    """Write `picture` as a PNG; never a half-written file under `path`, even if this fails."""
    with atomic_write(path, "wb") as out:
        picture.save(out, format="PNG")
