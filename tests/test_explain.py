"""Stage-map views, colour maps, Grad-CAM and the geometry that puts them back on the photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from birdid_app.core.explain import (
    activation_strength,
    apply_colormap,
    blend,
    channel_ranking,
    class_activation_map,
    colormap_lut,
    overlay_rgba,
    pca_rgb,
    single_channel,
)
from birdid_app.core.hiera import Hiera, HieraConfig
from birdid_app.core.preprocess import to_model_input


def test_colormaps_are_256_colours_from_dark_to_light():
    for name in ("viridis", "magma", "grey"):
        lut = colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
        luminance = lut @ np.array([0.2126, 0.7152, 0.0722])
        assert luminance[-1] > luminance[0] + 150
    assert tuple(colormap_lut("viridis")[0]) == (68, 1, 84) and tuple(colormap_lut("viridis")[255]) == (253, 231, 37)
    assert (colormap_lut("grey")[:, 0] == np.arange(256)).all()
    assert apply_colormap(np.array([[0.0, 1.0]]), "grey").tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_activation_strength_and_channels_on_known_maps():
    stage_map = np.zeros((4, 3, 3), dtype=np.float32)
    stage_map[2, 1, 2] = 5.0  # channel 2 fires at one cell
    stage_map[0] -= 1.0  # channel 0 is uniformly negative
    strength = activation_strength(stage_map)
    assert strength.max() == 1.0 and np.unravel_index(strength.argmax(), strength.shape) == (1, 2)
    assert channel_ranking(stage_map).tolist() == [2, 1, 3, 0]
    assert single_channel(stage_map, 2)[1, 2] == 1.0 and single_channel(stage_map, 0).max() == 0.0


def test_pca_separates_two_parts_into_different_colours():
    rng = np.random.default_rng(0)
    stage_map = rng.normal(0, 0.05, (16, 8, 8)).astype(np.float32)
    stage_map[:5, :, :4] += 3.0  # the left half has one feature pattern...
    stage_map[5:9, :, 4:] += 3.0  # ...the right half another
    rgb = pca_rgb(stage_map)
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    left, right = rgb[:, :4].reshape(-1, 3).mean(0), rgb[:, 4:].reshape(-1, 3).mean(0)
    assert np.abs(left - right).max() > 0.8
    assert np.allclose(pca_rgb(stage_map), rgb)  # deterministic: signs are fixed


def responsive_model() -> Hiera:
    """A model whose class 0 score rises with red, and whose blocks pass tokens through
    unchanged: its evidence for class 0 is exactly where the image is red."""
    config = HieraConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=1, num_classes=2, image_size=(128, 128))
    model = Hiera(config)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.stem.proj.weight[0, 0, 3, 3] = 1.0  # channel 0 = the red of the centre pixel
        for block in (b for stage in model.body for b in stage):
            block.norm1.weight.fill_(1.0)
            block.norm2.weight.fill_(1.0)
            if block.proj is not None:  # widening keeps the incoming channels in place
                block.proj.weight.copy_(torch.eye(*block.proj.weight.shape))
        model.features[1].weight.fill_(1.0)
        model.classifier.weight[0, 0] = 1.0
        model.classifier.weight[1, 1] = 1.0
    model.refresh_position_embedding()
    return model.eval()


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_grad_cam_peaks_where_the_evidence_is(stage):
    image = Image.new("RGB", (128, 128), (0, 0, 0))
    image.paste((255, 0, 0), (80, 16, 112, 48))  # a red patch up and to the right
    model_input = to_model_input(image, (128, 128), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))[None]
    cam = class_activation_map(responsive_model(), model_input, class_index=0, stage=stage)
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    stride = 128 // cam.shape[0]
    # The cells that overlap the patch (at stride 32 it covers parts of four).
    over_patch = (slice(16 // stride, -(-48 // stride)), slice(80 // stride, -(-112 // stride)))
    patch = cam[over_patch]
    elsewhere = cam.copy()
    elsewhere[over_patch] = 0
    assert patch.mean() > 0.5 and elsewhere.max() < 0.1


def test_an_overlay_cell_lands_on_the_photo_pixels_it_came_from():
    """A non-square photo, a region, and a stage map with one hot cell: after blending, the hot
    colour sits exactly over the photo pixels that the model input's hot cell was made from."""
    photo = Image.new("RGB", (1200, 700), (0, 0, 0))
    region = (300, 100, 600, 450)  # x, y, width, height
    stride, input_size = 16, 384  # stage 3 of a 384 input: a 24 x 24 map
    cells = input_size // stride
    values = np.zeros((cells, cells), dtype=np.float32)
    values[5, 17] = 1.0  # row 5, column 17
    blended = np.asarray(blend(photo, overlay_rgba(values, 1.0, "grey"), region))
    hot_y, hot_x = np.nonzero(blended[..., 0] == 255)
    # Input pixels [5*16, 6*16) x [17*16, 18*16) came from these photo pixels:
    scale_x, scale_y = region[2] / input_size, region[3] / input_size
    assert hot_x.min() == region[0] + round(17 * stride * scale_x)
    assert hot_x.max() == region[0] + round(18 * stride * scale_x) - 1
    assert hot_y.min() == region[1] + round(5 * stride * scale_y)
    assert hot_y.max() == region[1] + round(6 * stride * scale_y) - 1
    # Outside the region the photo is untouched.
    assert blended[:, : region[0]].max() == 0 and blended[: region[1]].max() == 0
