"""Stage-map views, colour maps, Grad-CAM and the geometry that puts them back on the photo."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from birdid_app.core.insight.explain import (
    UnknownSpecies,
    activation_strength,
    apply_colormap,
    blend,
    cam_for,
    channel_ranking,
    class_activation_map,
    colormap_lut,
    fit_within,
    overlay_rgba,
    overlay_values,
    pca_rgb,
    render_picture,
    save_png,
    single_channel,
    species_index,
)
from birdid_app.core.model.preprocess import to_model_input
from conftest import red_evidence_model


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


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_grad_cam_peaks_where_the_evidence_is(stage):
    image = Image.new("RGB", (128, 128), (0, 0, 0))
    image.paste((255, 0, 0), (80, 16, 112, 48))  # a red patch up and to the right
    model_input = to_model_input(image, (128, 128), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))[None]
    cam = class_activation_map(red_evidence_model(), model_input, class_index=0, stage=stage)
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


# --- the render service the command line and the window share --------------------------------


def four_stage_maps(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (channels, side, side)).astype(np.float32)
            for channels, side in [(8, 32), (16, 16), (32, 8), (64, 4)]]


def test_overlay_values_picks_the_stage_and_the_channel_by_number_or_by_rank():
    maps = four_stage_maps()
    maps[1][5] += 10.0  # channel 5 of stage 2 fires most
    by_rank = overlay_values(maps, 2, "channel", channel_rank=0)
    assert by_rank.channel == 5 and by_rank.channels == 16
    assert np.array_equal(by_rank.values, single_channel(maps[1], 5))
    by_number = overlay_values(maps, 2, "channel", channel=7)
    assert by_number.channel == 7 and np.array_equal(by_number.values, single_channel(maps[1], 7))
    assert overlay_values(maps, 2, "channel", channel_rank=99).channel == int(channel_ranking(maps[1])[-1])
    mean = overlay_values(maps, 4, "mean")
    assert mean.channel is None and np.array_equal(mean.values, activation_strength(maps[3]))
    assert overlay_values(maps, 1, "pca").values.shape == (32, 32, 3)


@pytest.mark.parametrize(
    "stage, mode, channel, message",
    [(2, "channel", 16, "channel 16 does not exist"), (5, "mean", None, "stage 5 does not exist"),
     (3, "cam", None, "unknown view 'cam'")],
)
def test_overlay_values_refuses_what_is_not_there(stage, mode, channel, message):
    with pytest.raises(ValueError, match=message):
        overlay_values(four_stage_maps(), stage, mode, channel=channel)


def test_species_index_ignores_capitals_and_names_an_unknown_species():
    names = ["Blue Tit", "Great Tit", "European Robin"]
    assert species_index(names, "great TIT") == 1
    with pytest.raises(UnknownSpecies) as raised:
        species_index(names, "Dodo")
    assert str(raised.value) == "The model knows no species called “Dodo”."


def test_cam_for_draws_a_map_per_stage_from_a_real_checkpoint(small_model_file):
    from birdid_app.core.model.inference import Classifier

    classifier = Classifier.from_file(small_model_file, device="cpu", precision="fp32")
    photo = Image.new("RGB", (500, 300), (30, 120, 60))
    photo.paste((250, 40, 20), (300, 50, 420, 150))
    (identification,) = classifier.identify_images([photo])
    for stage, stage_map in enumerate(identification.stage_maps, start=1):
        cam = cam_for(classifier, photo, class_index=1, stage=stage)
        assert cam.shape == stage_map.shape[1:] and cam.min() >= 0 and cam.max() <= 1


@pytest.mark.parametrize("size", [(1601, 1200), (1200, 1601), (1600, 1600), (4000, 7), (7, 4000), (3000, 2999), (640, 480)])
def test_fit_within_is_the_size_thumbnail_makes(size):
    picture = Image.new("1", size)
    picture.thumbnail((1600, 1600))
    assert fit_within(size, 1600) == picture.size


def test_a_reduced_picture_is_what_thumbnail_then_blend_made_and_the_photo_is_untouched():
    """The command line used to reduce its own photo in place with thumbnail() and then blend;
    render_picture must draw the same pixels without changing the photo it is given."""
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (900, 1300, 3), dtype=np.uint8), "RGB")
    before = np.asarray(photo).copy()
    values = rng.random((24, 24)).astype(np.float32)
    region = (300, 200, 600, 450)

    picture = render_picture(photo, values, 0.6, "magma", region, max_size=500)

    reduced = photo.copy()
    reduced.thumbnail((500, 500))
    scale_x, scale_y = reduced.width / photo.width, reduced.height / photo.height
    scaled = (round(300 * scale_x), round(200 * scale_y), round(600 * scale_x), round(450 * scale_y))
    expected = blend(reduced, overlay_rgba(values, 0.6, "magma"), scaled)
    assert picture.size == reduced.size and np.array_equal(np.asarray(picture), np.asarray(expected))
    assert photo.size == (1300, 900) and np.array_equal(np.asarray(photo), before)


def test_the_overlay_alone_is_opaque_and_covers_the_region_or_the_photo():
    values = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    whole = render_picture((640, 480), values, 0.3, "grey", blended=False)
    assert whole.mode == "RGBA" and whole.size == (640, 480)
    assert np.asarray(whole)[..., 3].min() == 255  # opacity is for blending only
    assert np.asarray(whole)[0, 0, 0] == 0 and np.asarray(whole)[-1, -1, 0] == 255
    region = render_picture((640, 480), values, 0.3, "grey", (10, 20, 100, 50), blended=False)
    assert region.size == (100, 50)
    with pytest.raises(TypeError, match="needs the photo"):
        render_picture((640, 480), values, 0.3, "grey")


def test_save_png_writes_the_picture_or_nothing(tmp_path):
    picture = Image.new("RGB", (30, 20), (1, 2, 3))
    path = tmp_path / "seen.png"
    save_png(picture, path)
    with Image.open(path) as written:
        assert written.format == "PNG" and written.getpixel((5, 5)) == (1, 2, 3)
    with pytest.raises(ValueError):
        save_png(Image.new("RGB", (0, 0)), tmp_path / "empty.png")  # PIL cannot encode it
    assert sorted(os.listdir(tmp_path)) == ["seen.png"]
