"""The model's input: Birder's inference preset, re-done with PIL, NumPy and torch only.

`birder.classification_transform` with its defaults squashes the whole image to the input size
(aspect not kept) with PIL's bicubic resampling, scales to 0..1 and normalises; the tests prove
`to_model_input` gives equal tensors. `squash_to_input_size` is the first step alone: the
picture the model actually looks at, which the window shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def squash_to_input_size(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The whole RGB `image` resized to `size` (height, width), as the model sees it."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode!r}")
    height, width = size
    if image.size == (width, height):  # torchvision skips the resize when already that size
        return image
    # On a PIL image torchvision's Resize is PIL's own, antialiased, on uint8.
    return image.resize((width, height), Image.Resampling.BICUBIC)


def to_model_input(
    image: Image.Image, size: tuple[int, int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """The model's input for an 8-bit RGB `image`: float32 [3, height, width] for `size`
    (height, width), torchvision's order.

    Equal to Birder's inference preset `classification_transform(size, {"mean": mean, "std":
    std})` (its defaults: no centre crop, no simple crop): the whole image is squashed to `size`
    with PIL's bicubic resampling (antialiased, on uint8, as torchvision's Resize does for a
    PIL image), then scaled to 0..1 and normalised. Aspect ratio is not kept.
    """
    pixels = torch.from_numpy(np.array(squash_to_input_size(image, size)))  # [H, W, 3] uint8, a writable copy
    return _normalise(pixels, mean, std)


def _normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W], ((pixels / 255) - mean) / std per channel.

    The operations are torchvision's ToDtype(scale=True) and Normalize, in the same order and
    float32 throughout, so the results agree to the bit.
    """
    channels_first = pixels.permute(2, 0, 1).contiguous()  # [3, H, W] uint8
    scaled = channels_first.to(torch.float32).mul_(1.0 / 255)  # [3, H, W] in 0..1
    mean_per_channel = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)  # [3, 1, 1]
    std_per_channel = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)  # [3, 1, 1]
    return scaled.sub_(mean_per_channel).div_(std_per_channel)  # [3, H, W]
