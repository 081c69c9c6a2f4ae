"""Seeing what the model sees: stage-map views, class-activation maps, colour maps, blending.

Every map here is in the model's input layout: stage s of a 384x384 input is a [C, H_s, W_s]
grid whose cell (i, j) covers input pixels [i*stride, (i+1)*stride) x [j*stride, ...). The input
is the whole photo (or the selected region) squashed to 384x384, so a map is put back on the
photo by stretching it over that photo rectangle: `blend` and the window both do exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from birdid_app.core.hiera import POOLED_STAGES, Hiera, reroll

MODES = ("mean", "pca", "channel", "cam")
MODE_LABELS = {
    "mean": "Activation strength",
    "pca": "PCA colours",
    "channel": "Single channel",
    "cam": "Class activation (Grad-CAM)",
}

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
COLORMAPS = tuple(_ANCHORS)


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
