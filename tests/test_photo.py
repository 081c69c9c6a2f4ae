"""Tests of birdid_app.core.photos.photo: decoding every accepted format, and the model input.

Every test image is made here, in tmp_path: a synthetic "photo" (smooth gradients, soft blobs,
shapes, a little grain) big enough that a turned or mirrored decode would show.
"""

from __future__ import annotations

import ast
import io
import struct
import zlib
from pathlib import Path

import birder  # the reference our model input must equal (a test dependency)
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile

from birdid_app.core.errors import PhotoError
from birdid_app.core.model import preprocess as preprocess_module
from birdid_app.core.model.preprocess import to_model_input
from birdid_app.core.photos import photo as photo_module
from birdid_app.core.photos.photo import IMAGE_SUFFIXES, decode_photo

HALF_STATS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
IMAGENET_STATS = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
MODEL_SIZE = (384, 384)
ORIENTATION_TAG = 0x0112
# x265's fastest preset: 0.09 s for 640 x 480 rather than 0.6 s.
HEIC_OPTIONS = {"quality": 90, "enc_params": {"preset": "ultrafast"}}

RED = (255, 0, 0)
GREEN = (0, 255, 0)


def synthetic_photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """An RGB picture with photo-like content at every scale: gradients, blurry blobs, hard
    edges, thin lines and grain. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    # The smooth part, made on a 160 x 120 grid and enlarged: gradients and soft blobs.
    u = (np.arange(160, dtype=np.float32) / 160)[None, :]  # [1, 160], 0..1 across
    v = (np.arange(120, dtype=np.float32) / 120)[:, None]  # [120, 1], 0..1 down
    red = 60 + 120 * u + 40 * np.sin(6 * v)
    green = 90 + 80 * v + 30 * np.cos(5 * u + 2 * v)
    blue = 160 - 100 * u * v
    smooth = np.stack(np.broadcast_arrays(red, green, blue), axis=-1)  # [120, 160, 3]
    coarse_blobs = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    smooth += 0.4 * (np.asarray(coarse_blobs.resize((160, 120), Image.Resampling.BICUBIC), np.float32) - 128)
    smooth_image = Image.fromarray(smooth.clip(0, 255).astype(np.uint8))
    pixels = np.asarray(smooth_image.resize((width, height), Image.Resampling.BICUBIC), np.int16)  # [H, W, 3]
    # Sensor grain: a 97 x 101 tile of noise repeated, much quicker than noise everywhere.
    grain = np.rint(rng.standard_normal((97, 101, 3)) * 4).astype(np.int16)
    pixels = pixels + np.tile(grain, (height // 97 + 1, width // 101 + 1, 1))[:height, :width]
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(image)
    s = min(width, height) / 480  # shapes scale with the picture
    body_x, body_y = 0.35 * width, 0.3 * height  # a bird-like body and head
    draw.ellipse((body_x, body_y, body_x + 160 * s, body_y + 110 * s), fill=(120, 80, 40))
    draw.ellipse((body_x + 120 * s, body_y - 25 * s, body_x + 180 * s, body_y + 35 * s), fill=(40, 30, 20))
    draw.polygon([(0.1 * width, height), (0.3 * width, 0.6 * height), (0.5 * width, height)], fill=(30, 110, 40))
    for i in range(12):
        draw.line((0, i * 9 * s, width, 0.8 * height + i * 3 * s), fill=(230, 230, 210), width=max(1, round(s)))
    return image


def with_corner_markers(image: Image.Image, size: int = 40) -> Image.Image:
    """A copy with a red square in the top-left corner and a green one in the top-right."""
    marked = image.copy()
    marked.paste(RED, (0, 0, size, size))
    marked.paste(GREEN, (image.width - size, 0, image.width, size))
    return marked


def corner_colour(image: Image.Image, corner: str, inset: int = 15) -> tuple[int, int, int]:
    """The pixel `inset` pixels in from a corner: "TL", "TR", "BL" or "BR"."""
    x = inset if corner[1] == "L" else image.width - 1 - inset
    y = inset if corner[0] == "T" else image.height - 1 - inset
    return image.getpixel((x, y))


def close_to(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def opened_as(path: Path) -> tuple[str, int]:
    """The mode and number of frames Pillow gives the file before any conversion."""
    with Image.open(path) as image:
        return image.mode, getattr(image, "n_frames", 1)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG file written by hand, for what Pillow will not write (16-bit RGB, or a header
    that declares a huge image). `rows` is the raw scanline data, filter bytes included."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def birder_input(image: Image.Image, size: tuple[int, int], stats: dict) -> torch.Tensor:
    return birder.classification_transform(size, stats)(image)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return synthetic_photo()


# --- Formats -----------------------------------------------------------------------------------

# Format, save options, and the largest mean absolute difference (0..255) allowed from the
# original: lossless formats must match exactly; lossy ones within what their encoder loses
# (measured: JPEG 3.5, progressive JPEG 3.8, WebP 3.5, GIF 3.9, HEIC 2.8; the grain costs most).
# A turned, mirrored or channel-swapped decode would be off by tens.
FORMATS = [
    pytest.param(".jpg", {"quality": 95}, 5.0, id="jpeg"),
    pytest.param(".jpeg", {"quality": 90, "progressive": True}, 5.0, id="progressive-jpeg"),
    pytest.param(".png", {}, 0.0, id="png"),
    pytest.param(".webp", {"quality": 90}, 5.0, id="webp"),
    pytest.param(".webp", {"lossless": True}, 0.0, id="webp-lossless"),
    pytest.param(".bmp", {}, 0.0, id="bmp"),
    pytest.param(".tif", {}, 0.0, id="tiff"),
    pytest.param(".tiff", {"compression": "tiff_lzw"}, 0.0, id="tiff-lzw"),
    pytest.param(".gif", {}, 5.5, id="gif"),  # quantised to a 256-colour palette
    pytest.param(".heic", HEIC_OPTIONS, 4.5, id="heic"),
]


@pytest.mark.parametrize(("suffix", "options", "max_mean_diff"), FORMATS)
def test_each_format_decodes_to_rgb_of_the_same_picture(tmp_path, photo, suffix, options, max_mean_diff):
    path = tmp_path / f"photo{suffix}"
    photo.save(path, **options)

    decoded = decode_photo(path)

    assert decoded.mode == "RGB"
    assert decoded.size == (640, 480)
    assert mean_abs_diff(decoded, photo) <= max_mean_diff
    assert suffix in IMAGE_SUFFIXES


def test_image_suffixes_are_lower_case_and_cover_the_formats():
    assert isinstance(IMAGE_SUFFIXES, frozenset)
    assert all(suffix == suffix.lower() and suffix.startswith(".") for suffix in IMAGE_SUFFIXES)
    expected = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
    assert expected <= IMAGE_SUFFIXES


def test_the_file_content_decides_the_format_not_the_suffix(tmp_path, photo):
    path = tmp_path / "really_a_png.jpg"
    photo.save(path, format="PNG")
    assert mean_abs_diff(decode_photo(path), photo) == 0


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    # CMYK (0, 255, 255, 0) is pure red; Pillow writes the Adobe marker and reads it back.
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))
    cmyk.paste((255, 0, 255, 0), (32, 0, 64, 48))  # right half: cyan + yellow = green
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, quality=95)
    assert opened_as(path) == ("CMYK", 1)

    decoded = decode_photo(path)

    assert decoded.mode == "RGB"
    assert close_to(decoded.getpixel((8, 24)), RED)
    assert close_to(decoded.getpixel((56, 24)), GREEN)


def test_multi_picture_jpeg_gives_its_first_picture_at_reduced_scale(tmp_path):
    # Many cameras write MPO files (a JPEG followed by more JPEGs) named .jpg.
    first, second = Image.new("RGB", (1600, 1200), RED), Image.new("RGB", (1600, 1200), GREEN)
    path = tmp_path / "camera.jpg"
    first.save(path, format="MPO", save_all=True, append_images=[second])
    with Image.open(path) as opened:
        assert opened.format == "MPO"

    decoded = decode_photo(path)

    assert decoded.size == (800, 600)  # 1/2 scale; 1/4 would make it 400 x 300
    assert close_to(decoded.getpixel((400, 300)), RED)


def test_grey_png_becomes_rgb(tmp_path):
    grey = Image.linear_gradient("L").resize((320, 240))
    path = tmp_path / "grey.png"
    grey.save(path)

    decoded = decode_photo(path)

    assert decoded.mode == "RGB"
    assert np.array_equal(np.asarray(decoded), np.repeat(np.asarray(grey)[..., None], 3, axis=-1))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, suffix):
    # Pillow's own "I;16" -> "L" conversion would clip 0x8000 to 255.
    values = np.full((48, 64), 0x8000, np.uint16)
    values[:, 32:] = np.linspace(0, 65535, 32 * 48).reshape(48, 32).astype(np.uint16)  # a ramp
    path = tmp_path / f"grey16{suffix}"
    Image.fromarray(values).save(path)
    assert opened_as(path) == ("I;16", 1)

    decoded = np.asarray(decode_photo(path))  # [H, W, 3]

    assert (decoded[:, :32] == 128).all()
    expected = np.rint(values / 257).astype(np.uint8)
    assert np.array_equal(decoded, np.repeat(expected[..., None], 3, axis=-1))


def test_16_bit_rgb_png_is_within_one_level_of_rounding(tmp_path):
    # Pillow reads 16-bit RGB PNGs as 8-bit RGB itself, keeping each sample's high byte, so
    # 0xFF00 gives 255 where 0xFF00 / 257 rounds to 254: at most one level off.
    samples = np.array([[[0xFF00, 0x0180, 0x80C0], [0x7FFF, 0xFFFF, 0], [0x8000, 0x00FF, 0x0080]]], ">u2")
    rows = b"\0" + samples[0].tobytes()  # one scanline, filter type 0
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(3, 1, bit_depth=16, colour_type=2, rows=rows))

    decoded = np.asarray(decode_photo(path)).astype(int)  # [1, 3, 3]

    assert np.abs(decoded - np.rint(samples / 257)).max() <= 1
    assert decoded[0, 2, 0] == 128  # 0x8000


def test_rgba_is_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 16, 48))  # fully transparent (its blue must not show)
    rgba.paste((0, 0, 0, 128), (16, 0, 32, 48))  # half-transparent black
    path = tmp_path / "rgba.png"
    rgba.save(path)

    decoded = decode_photo(path)

    assert decoded.mode == "RGB"
    assert decoded.getpixel((4, 4)) == (255, 255, 255)
    assert close_to(decoded.getpixel((20, 4)), (127, 127, 127), tolerance=1)
    assert decoded.getpixel((40, 4)) == RED


def test_grey_with_alpha_is_composited_over_white(tmp_path):
    grey_alpha = Image.new("LA", (64, 48), (50, 255))
    grey_alpha.paste((0, 0), (0, 0, 16, 48))
    path = tmp_path / "la.png"
    grey_alpha.save(path)

    decoded = decode_photo(path)

    assert decoded.getpixel((4, 4)) == (255, 255, 255)
    assert decoded.getpixel((40, 4)) == (50, 50, 50)


def test_palette_png_with_a_transparent_index_is_composited_over_white(tmp_path):
    palette_image = Image.new("P", (64, 48), 1)
    palette_image.putpalette([0, 0, 0] + list(RED) + list(GREEN))
    palette_image.paste(0, (0, 0, 16, 48))  # index 0, black in the palette, is transparent
    palette_image.paste(2, (48, 0, 64, 48))
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)
    assert opened_as(path) == ("P", 1)

    decoded = decode_photo(path)

    assert decoded.getpixel((4, 4)) == (255, 255, 255)
    assert decoded.getpixel((30, 4)) == RED
    assert decoded.getpixel((60, 4)) == GREEN


def test_gif_gives_its_first_frame(tmp_path):
    first, second = Image.new("RGB", (64, 48), RED), Image.new("RGB", (64, 48), GREEN)
    path = tmp_path / "animated.gif"
    first.save(path, save_all=True, append_images=[second], duration=100)
    assert opened_as(path) == ("P", 2)

    decoded = decode_photo(path)

    assert decoded.mode == "RGB"
    assert decoded.getpixel((10, 10)) == RED


# --- Orientation -------------------------------------------------------------------------------

# Where the red (stored top-left) and green (stored top-right) markers appear for each EXIF
# orientation, and whether width and height swap.
ORIENTATIONS = {
    1: ("TL", "TR", False),
    2: ("TR", "TL", False),  # mirrored left-right
    3: ("BR", "BL", False),  # turned 180 degrees
    4: ("BL", "BR", False),  # mirrored top-bottom
    5: ("TL", "BL", True),  # mirrored along the main diagonal
    6: ("TR", "BR", True),  # to be turned 90 degrees clockwise: the usual upright phone photo
    7: ("BR", "TR", True),  # mirrored along the other diagonal
    8: ("BL", "TL", True),  # to be turned 90 degrees anticlockwise
}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_exif_orientation_is_applied(tmp_path, photo, orientation):
    red_corner, green_corner, swapped = ORIENTATIONS[orientation]
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    path = tmp_path / "oriented.jpg"
    with_corner_markers(photo).save(path, quality=95, exif=exif)

    decoded = decode_photo(path)

    assert decoded.size == ((480, 640) if swapped else (640, 480))
    assert close_to(corner_colour(decoded, red_corner), RED)
    assert close_to(corner_colour(decoded, green_corner), GREEN)


def test_heic_rotation_is_applied(tmp_path, photo):
    # pillow_heif turns an EXIF orientation given as bytes into HEIF's own rotation ("irot"),
    # which libheif applies when decoding.
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    path = tmp_path / "oriented.heic"
    with_corner_markers(photo).save(path, exif=exif.tobytes(), **HEIC_OPTIONS)

    decoded = decode_photo(path)

    assert decoded.size == (480, 640)
    assert close_to(corner_colour(decoded, "TR"), RED, tolerance=20)
    assert close_to(corner_colour(decoded, "BR"), GREEN, tolerance=20)


# --- Reduced-scale JPEG decoding ---------------------------------------------------------------


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large") / "camera.jpg"
    synthetic_photo(4000, 3000, seed=1).save(path, quality=90)
    return path


def test_a_large_jpeg_decodes_at_reduced_scale_but_no_smaller_than_asked(large_jpeg):
    drafted = decode_photo(large_jpeg)
    full = decode_photo(large_jpeg, draft_size=None)

    assert full.size == (4000, 3000)
    assert drafted.size == (1000, 750)  # 1/4 scale: 1/8 would make it 500 x 375, under 384
    assert drafted.mode == "RGB"


def test_reduced_scale_barely_changes_the_model_input(large_jpeg):
    drafted = to_model_input(decode_photo(large_jpeg), MODEL_SIZE, **HALF_STATS)
    full = to_model_input(decode_photo(large_jpeg, draft_size=None), MODEL_SIZE, **HALF_STATS)

    difference = (drafted - full).abs()
    # In normalised units, where one level of 255 is 1 / 255 / 0.5 = 0.0078 with these stats.
    # Measured (seeds 1 to 3 alike): mean 0.0026 (a third of a level), max 0.047 (6 levels,
    # at the hardest edges). With the ImageNet stats: mean 0.0058, max 0.105, the same 6 levels.
    assert difference.mean() < 0.02
    assert difference.max() < 0.1


def test_draft_size_is_read_upright(tmp_path):
    # Stored 4000 x 3000 with orientation 6: upright it is 3000 x 4000. Asking for 700 x 1000
    # upright allows 1/4 scale (750 x 1000); reading the request in stored orientation would
    # have allowed only 1/2.
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    path = tmp_path / "portrait.jpg"
    Image.new("RGB", (4000, 3000), (90, 120, 60)).save(path, exif=exif)

    decoded = decode_photo(path, draft_size=(700, 1000))

    assert decoded.size == (750, 1000)


def test_other_formats_are_reduced_to_the_draft_size_by_a_whole_factor(tmp_path, photo):
    path = tmp_path / "photo.png"
    photo.save(path)
    # 640x480 -> 160x120: a factor of 4 keeps both sides at least 100; 5 would not (96 high).
    assert decode_photo(path, draft_size=(100, 100)).size == (160, 120)
    assert decode_photo(path, draft_size=None).size == (640, 480)


# --- Model input -------------------------------------------------------------------------------


@pytest.mark.parametrize("stats", [HALF_STATS, IMAGENET_STATS], ids=["half", "imagenet"])
@pytest.mark.parametrize(
    ("suffix", "width", "height"),
    [
        (".jpg", 640, 480),  # landscape, squashed
        (".png", 640, 480),
        (".jpg", 500, 900),  # portrait, squashed the other way
        (".png", 384, 384),  # already the model's size: no resize at all
        (".png", 200, 150),  # smaller than the model's size: enlarged
    ],
)
def test_model_input_equals_birders_inference_preset(tmp_path, stats, suffix, width, height):
    path = tmp_path / f"photo{suffix}"
    synthetic_photo(width, height, seed=width).save(path)
    image = decode_photo(path)

    ours = to_model_input(image, MODEL_SIZE, **stats)

    assert ours.dtype == torch.float32
    assert ours.shape == (3, 384, 384)
    assert ours.is_contiguous()
    # Same operations in the same order, so bit for bit equal: torch.equal, no tolerance.
    assert torch.equal(ours, birder_input(image, MODEL_SIZE, stats))


def test_model_input_size_is_height_then_width(photo):
    ours = to_model_input(photo, (256, 320), **IMAGENET_STATS)

    assert ours.shape == (3, 256, 320)
    assert torch.equal(ours, birder_input(photo, (256, 320), IMAGENET_STATS))


def test_model_input_of_a_uniform_colour_is_its_normalised_value():
    image = Image.new("RGB", (50, 40), (255, 0, 51))
    ours = to_model_input(image, (8, 8), **HALF_STATS)
    assert torch.allclose(ours[:, 0, 0], torch.tensor([1.0, -1.0, -0.6]))


def test_model_input_needs_an_rgb_image():
    with pytest.raises(ValueError, match="RGB"):
        to_model_input(Image.new("L", (8, 8)), MODEL_SIZE, **HALF_STATS)


def top_level_imports(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in imported}


def test_decoding_imports_no_torch_and_preprocessing_no_torchvision():
    # The window decodes photos before torch loads; torchvision (and birder, which imports it)
    # would slow the app's start; Qt has no place in core. Read from the source, as a fresh
    # interpreter would cost seconds of torch import.
    decoding = top_level_imports(photo_module)
    assert {"numpy", "PIL", "pillow_heif"} <= decoding
    assert not decoding & {"torch", "torchvision", "birder", "PySide6", "shiboken6"}
    preprocessing = top_level_imports(preprocess_module)
    assert "torch" in preprocessing
    assert not preprocessing & {"torchvision", "birder", "PySide6", "shiboken6"}


# --- Bad input ---------------------------------------------------------------------------------


def assert_photo_error(path: Path, phrase: str, **decode_options) -> PhotoError:
    with pytest.raises(PhotoError) as caught:
        decode_photo(path, **decode_options)
    error = caught.value
    assert error.path == path
    assert path.name in str(error)
    assert phrase in error.problem[:1].lower() + error.problem[1:]
    assert error.problem[0].isupper() and error.problem.endswith(".")  # a sentence after "PATH: "
    return error


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_missing_file(tmp_path):
    assert_photo_error(tmp_path / "nowhere.jpg", "no such file.")


def test_a_folder(tmp_path):
    folder = tmp_path / "holiday.jpg"
    folder.mkdir()
    assert_photo_error(folder, "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    assert_photo_error(path, "the file is empty.")


def test_text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("Blackbird seen at 7am near the pond.\n" * 20)
    assert_photo_error(path, "not an image birdid can read")


def test_an_image_format_birdid_does_not_read(tmp_path, photo):
    # A valid TGA: Pillow could read it, but only the formats birdid lists are tried.
    path = tmp_path / "photo.jpg"
    photo.save(path, format="TGA")
    assert_photo_error(path, "not an image birdid can read")


def test_truncated_jpeg(tmp_path, photo):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = jpeg_bytes(photo)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert_photo_error(path, "the image data is truncated.")
    assert_photo_error(path, "the image data is truncated.", draft_size=None)


def test_truncated_png(tmp_path, photo):
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: buffer.tell() // 2])
    assert_photo_error(path, "the image data is truncated.")


def test_truncated_heic(tmp_path, photo):
    buffer = io.BytesIO()
    photo.save(buffer, format="HEIF", **HEIC_OPTIONS)
    path = tmp_path / "cut.heic"
    path.write_bytes(buffer.getvalue()[: buffer.tell() // 2])
    assert_photo_error(path, "the image data is truncated.")


def test_damaged_png(tmp_path, photo):
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[len(data) // 2] ^= 0xFF  # the data chunk's checksum no longer matches
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    assert_photo_error(path, "the image data is damaged.")


def test_decompression_bomb_at_pillows_default_limit(tmp_path):
    # A PNG whose header declares 20000 x 20000 (400 megapixels, over twice Pillow's default
    # 89.5-megapixel limit): refused on opening, before any pixel is decoded.
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(20000, 20000, bit_depth=8, colour_type=0, rows=b"\0"))
    assert_photo_error(path, "the image is too large to decode safely (400 megapixels).")


def test_decompression_bomb_of_a_real_image(tmp_path, photo, monkeypatch):
    # 640 x 480 is over twice a limit of 100,000 pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    path = tmp_path / "photo.jpg"
    photo.save(path)
    assert_photo_error(path, "the image is too large to decode safely (0.3 megapixels).")
