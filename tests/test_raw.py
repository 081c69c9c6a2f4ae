"""Camera RAW files: real DNGs written by pidng from Bayer data, decoded through decode_photo.

The scene tells the two decoding paths apart: the Bayer data is dark grey with a red top-left
quadrant, the embedded preview dark grey with a blue one. Which colour comes out says which path
ran; where the bright quadrant lands says the photo was turned upright.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from pidng.core import RAW2DNG
from pidng.defs import CalibrationIlluminant, CFAPattern, PhotometricInterpretation
from pidng.dng import DNGTags, Tag, Type
from PIL import Image

from birdid_app.core.errors import PhotoError
from birdid_app.core.photos.photo import IMAGE_SUFFIXES, decode_photo, decode_thumbnail, photo_metadata
from birdid_app.core.photos.raw import RAW_SUFFIXES

SENSOR = (1024, 768)  # width, height of the Bayer data
_EXIF_IFD, _GPS_IFD = 34665, 34853
_ASCII, _SHORT, _LONG, _RATIONAL = 2, 3, 4, 5


def bayer_scene(width: int, height: int) -> np.ndarray:
    """[H, W] uint16 RGGB mosaic, 12-bit: dark grey, the top-left quadrant red."""
    mosaic = np.full((height, width), 300, np.uint16)
    mosaic[: height // 2 : 2, : width // 2 : 2] = 4000  # the R sites of the top-left quadrant
    return mosaic


def preview_jpeg(width: int, height: int) -> bytes:
    """A JPEG of the same scene as the camera might render it, but with a blue quadrant."""
    image = Image.new("RGB", (width, height), (40, 40, 40))
    image.paste((0, 0, 255), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def write_dng(
    path: Path,
    *,
    orientation: int = 1,
    preview: tuple[int, int] | None = None,
    exif: bool = False,
    sensor: tuple[int, int] = SENSOR,
) -> Path:
    """A DNG of bayer_scene(sensor), with a JPEG preview of `preview` (width, height) and an
    EXIF date and GPS position if asked."""
    width, height = sensor
    tags = DNGTags()
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, orientation)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, CFAPattern.RGGB)
    tags.set(Tag.BlackLevel, 0)
    tags.set(Tag.WhiteLevel, 4095)
    identity = [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]
    tags.set(Tag.ColorMatrix1, identity)
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    tags.set(Tag.Make, "birdid")
    tags.set(Tag.Model, "Test")
    tags.set(Tag.UniqueCameraModel, "birdid Test")
    if exif:
        # pidng cannot write an IFD-typed tag (its IFD value is a str): LONG pointers, patched
        # below to the IFDs appended after the image data.
        tags.set((_EXIF_IFD, Type.Long), 0)
        tags.set((_GPS_IFD, Type.Long), 0)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    data = bytearray(writer.convert(bayer_scene(width, height)))
    if exif:
        _set_ifd0_value(data, _EXIF_IFD, _append_ifd(data, [(0x9003, _ASCII, "2023:05:06 07:08:09")]))
        gps = [
            (1, _ASCII, "N"), (2, _RATIONAL, [(52, 1), (30, 1), (0, 1)]),
            (3, _ASCII, "W"), (4, _RATIONAL, [(1, 1), (15, 1), (0, 1)]),
        ]
        _set_ifd0_value(data, _GPS_IFD, _append_ifd(data, gps))
    if preview is not None:
        _add_preview(data, preview_jpeg(*preview), *preview)
    path.write_bytes(data)
    return path


def _ifd0(data: bytearray) -> tuple[list[tuple[int, int]], int]:
    """[(entry offset, tag)] of IFD0 (pidng writes it at offset 8), and its next-IFD pointer's offset."""
    count = struct.unpack_from("<H", data, 8)[0]
    entries = [(10 + 12 * i, struct.unpack_from("<H", data, 10 + 12 * i)[0]) for i in range(count)]
    return entries, 10 + 12 * count


def _set_ifd0_value(data: bytearray, tag: int, value: int) -> None:
    offset = next(at for at, entry_tag in _ifd0(data)[0] if entry_tag == tag)
    struct.pack_into("<I", data, offset + 8, value)


def _append_ifd(data: bytearray, entries: list[tuple[int, int, object]]) -> int:
    """Append a little-endian TIFF IFD of (tag, type, value) to `data`; its offset."""
    while len(data) % 4:
        data.append(0)
    start = len(data)
    out_of_line_at = start + 2 + 12 * len(entries) + 4
    table, out_of_line = bytearray(struct.pack("<H", len(entries))), bytearray()
    for tag, kind, value in sorted(entries, key=lambda entry: entry[0]):
        if kind == _ASCII:
            payload, count = value.encode("ascii") + b"\0", len(value) + 1
        elif kind == _RATIONAL:
            payload, count = b"".join(struct.pack("<II", *pair) for pair in value), len(value)
        else:
            values = value if isinstance(value, list) else [value]
            payload = struct.pack(f"<{len(values)}{'H' if kind == _SHORT else 'I'}", *values)
            count = len(values)
        if len(payload) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, kind, count, out_of_line_at + len(out_of_line))
            out_of_line += payload + b"\0" * (len(payload) % 2)
    data += table + struct.pack("<I", 0) + out_of_line
    return start


def _add_preview(data: bytearray, jpeg: bytes, width: int, height: int) -> None:
    """Chain a reduced-resolution IFD (NewSubfileType 1) holding `jpeg` after IFD0, where DNG
    writers put their previews (pidng writes none)."""
    while len(data) % 4:
        data.append(0)
    jpeg_at = len(data)
    data += jpeg
    ifd = _append_ifd(data, [
        (254, _LONG, 1), (256, _LONG, width), (257, _LONG, height), (258, _SHORT, [8, 8, 8]),
        (259, _SHORT, 7), (262, _SHORT, 6), (273, _LONG, jpeg_at), (277, _SHORT, 3),
        (278, _LONG, height), (279, _LONG, len(jpeg)),
    ])
    struct.pack_into("<I", data, _ifd0(data)[1], ifd)


def colour_and_corner(image: Image.Image) -> tuple[str, str]:
    """("red" or "blue": the bright quadrant's main colour, and which corner it is in)."""
    pixels = np.asarray(image, dtype=np.float64)
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    quadrants = {
        "top-left": pixels[:h, :w], "top-right": pixels[:h, w:],
        "bottom-left": pixels[h:, :w], "bottom-right": pixels[h:, w:],
    }
    corner = max(quadrants, key=lambda name: quadrants[name].mean())
    red, _green, blue = quadrants[corner].reshape(-1, 3).mean(axis=0)
    return ("red" if red > blue else "blue"), corner


def test_raw_suffixes_are_photo_suffixes():
    assert {".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".raf", ".rw2", ".pef"} == RAW_SUFFIXES
    assert RAW_SUFFIXES <= IMAGE_SUFFIXES


def test_a_dng_without_a_preview_is_demosaiced_at_half_size(tmp_path):
    image = decode_photo(write_dng(tmp_path / "plain.dng"))
    assert image.mode == "RGB"
    assert image.size == (SENSOR[0] // 2, SENSOR[1] // 2)  # half size, then no whole factor to reduce by
    assert colour_and_corner(image) == ("red", "top-left")


def test_a_large_enough_preview_is_used_instead_of_the_sensor_data(tmp_path):
    # 512 x 384: the shorter side is exactly the model's 384.
    image = decode_photo(write_dng(tmp_path / "previewed.DNG", preview=(512, 384)))
    assert image.size == (512, 384)
    assert colour_and_corner(image) == ("blue", "top-left")


def test_a_small_preview_is_demosaiced_for_the_model_but_used_for_thumbnails(tmp_path):
    path = write_dng(tmp_path / "small-preview.dng", preview=(160, 120))
    assert colour_and_corner(decode_photo(path)) == ("red", "top-left")
    thumbnail = decode_thumbnail(path, 128)
    assert thumbnail.size == (128, 96)
    assert colour_and_corner(thumbnail) == ("blue", "top-left")


def test_full_resolution_demosaics_the_whole_sensor_even_with_a_preview(tmp_path):
    image = decode_photo(write_dng(tmp_path / "full.dng", preview=(512, 384)), draft_size=None)
    assert image.size == SENSOR
    assert colour_and_corner(image) == ("red", "top-left")


def test_a_large_sensor_image_is_reduced_like_any_photo(tmp_path):
    image = decode_photo(write_dng(tmp_path / "reduced.dng"), draft_size=(100, 100))
    assert image.size == (171, 128)  # 512 x 384 reduced by 3 (Image.reduce keeps a partial last box)


@pytest.mark.parametrize(
    ("orientation", "corner", "portrait"),
    [(1, "top-left", False), (3, "bottom-right", False), (6, "top-right", True), (8, "bottom-left", True)],
)
def test_both_paths_turn_the_photo_upright_the_same_way(tmp_path, orientation, corner, portrait):
    # EXIF 6: the camera was turned clockwise, so the stored top-left shows at the top right.
    demosaiced = decode_photo(write_dng(tmp_path / "plain.dng", orientation=orientation))
    previewed = decode_photo(write_dng(tmp_path / "previewed.dng", orientation=orientation, preview=(512, 512 * 3 // 4)))
    assert colour_and_corner(demosaiced) == ("red", corner)
    assert colour_and_corner(previewed) == ("blue", corner)
    for image in (demosaiced, previewed):
        assert (image.height > image.width) == portrait


def test_capture_date_and_gps_come_from_the_dng_exif(tmp_path):
    path = write_dng(tmp_path / "dated.dng", exif=True, preview=(512, 384))
    assert photo_metadata(path) == ("2023-05-06T07:08:09", 52.5, -1.25)
    assert colour_and_corner(decode_photo(path)) == ("blue", "top-left")  # the added IFDs do not disturb it


def test_a_dng_without_exif_has_no_metadata(tmp_path):
    assert photo_metadata(write_dng(tmp_path / "bare.dng")) == (None, None, None)


def test_a_truncated_dng_is_one_sentence_naming_the_file(tmp_path):
    whole = write_dng(tmp_path / "whole.dng").read_bytes()
    path = tmp_path / "truncated.dng"
    path.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(PhotoError) as raised:
        decode_photo(path)
    assert raised.value.path == path
    assert str(raised.value) == f"{path}: {raised.value.problem}"
    assert raised.value.problem.startswith("The RAW data is")
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert photo_metadata(path) == (None, None, None)


def test_a_file_that_is_not_raw_data_is_one_sentence(tmp_path):
    path = tmp_path / "notes.nef"
    path.write_bytes(b"shopping list: seed, suet, mealworms\n" * 100)
    with pytest.raises(PhotoError) as raised:
        decode_photo(path)
    assert raised.value.problem == "This is not a RAW file LibRaw can read (a damaged file, or a camera it does not know)."
    assert photo_metadata(path) == (None, None, None)


def test_an_empty_raw_file_is_empty(tmp_path):
    path = tmp_path / "empty.cr2"
    path.write_bytes(b"")
    with pytest.raises(PhotoError, match="The file is empty"):
        decode_photo(path)


def test_a_damaged_preview_falls_back_to_the_sensor_data(tmp_path):
    path = write_dng(tmp_path / "bad-preview.dng", preview=(512, 384))
    data = path.read_bytes()
    jpeg = preview_jpeg(512, 384)
    # The JPEG's markers after its start-of-image overwritten: Pillow cannot identify it.
    damaged = jpeg[:2] + b"\x5a" * 200 + jpeg[202:]
    path.write_bytes(data.replace(jpeg, damaged))
    image = decode_photo(path)
    assert colour_and_corner(image) == ("red", "top-left")
    assert colour_and_corner(decode_thumbnail(path, 128)) == ("red", "top-left")


def test_a_raw_and_a_jpeg_of_the_same_name_are_one_photo_in_the_library(tmp_path, small_model_file):
    from birdid_app.cli import main
    from birdid_app.core.library import Library

    folder = tmp_path / "card"
    folder.mkdir()
    raw = write_dng(folder / "IMG_0001.DNG")
    jpeg = folder / "IMG_0001.JPG"
    Image.new("RGB", (512, 384), (20, 40, 200)).save(jpeg)
    lone = folder / "IMG_0002.jpg"
    Image.new("RGB", (512, 384), (200, 40, 20)).save(lone)
    library = tmp_path / "library.sqlite3"
    common = ["--library", str(library), "--model", str(small_model_file)]
    assert main(["index", str(folder), *common]) == 0
    with Library(library) as opened:
        assert opened.count() == 2  # the pair once, the lone JPEG once
        pair = opened.photo_by_path(raw)
        assert pair.path == raw and pair.species  # identified, from the RAW
        assert opened.photo_by_path(jpeg).id == pair.id  # the JPEG's path finds the same photo
        assert opened.companions(pair.id) == [jpeg]
    jpeg.unlink()  # the JPEG goes: the RAW stays, alone
    assert main(["index", *common]) == 0
    with Library(library) as opened:
        assert opened.count() == 2 and opened.companions(opened.photo_by_path(raw).id) == []


def test_identify_explain_and_similar_read_a_dng(tmp_path, small_model_file, capsys):
    import json

    from birdid_app.cli import main

    (tmp_path / "card").mkdir()
    raw = write_dng(tmp_path / "card" / "IMG_0005.dng")
    assert main(["identify", str(raw), "--model", str(small_model_file), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert len(record["species"]) == 5
    out = tmp_path / "seen.png"
    assert main(["explain", str(raw), "--model", str(small_model_file), "--mode", "mean", "--out", str(out)]) == 0
    with Image.open(out) as picture:  # the map over the demosaiced photo, at its size
        assert picture.size == decode_photo(raw, draft_size=None).size
    library = ["--library", str(tmp_path / "l.sqlite3"), "--model", str(small_model_file)]
    assert main(["index", str(raw.parent), *library]) == 0
    capsys.readouterr()
    assert main(["similar", str(raw), "--top-k", "1", "--json", *library]) == 0
    assert json.loads(capsys.readouterr().out) == []  # the only photo is itself, left out
