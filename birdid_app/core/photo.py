"""Decoding photos into upright 8-bit RGB images.

`decode_photo` turns any photo birdid accepts into an upright 8-bit RGB `PIL.Image`, or raises
`PhotoError` with a sentence a person can act on. No torch here: the window decodes photos for
display before (and without) loading the model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from birdid_app.core.errors import PhotoError

# Lets Image.open read HEIC/HEIF. Libheif applies the file's rotation and mirroring itself and
# resets the EXIF orientation to 1, so the exif_transpose below does nothing more for HEIF.
pillow_heif.register_heif_opener()

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".hif"}
)
"""Lower-case file suffixes of the photos birdid reads (".hif" is Fujifilm's HEIF)."""

# The Pillow formats Image.open may try. The file's content decides the format, not its suffix,
# but Pillow's readers for rarer formats (PSD, PCX, ICO, ...) are never reached.
# Pillow's "JPEG" reader also opens the multi-picture JPEGs ("MPO") many cameras write.
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF")

# Large enough for the 384 x 384 model input: see decode_photo's draft_size.
DEFAULT_DRAFT_SIZE = (384, 384)

_MAX_16_BIT = 65535
_WHITE = (255, 255, 255)


def decode_photo(
    path: str | Path, *, draft_size: tuple[int, int] | None = DEFAULT_DRAFT_SIZE
) -> Image.Image:
    """Decode the photo at `path` to an 8-bit RGB image, turned upright as its EXIF says.

    Transparent parts are shown over white; the first frame of an animation or the first page
    of a multi-page TIFF is used.

    `draft_size` (width, height, upright) lets a JPEG decode at 1/2, 1/4 or 1/8 scale, the
    smallest scale that keeps both sides at least that large, which is several times faster
    for camera-sized photos. Nothing is lost when the whole photo is then squashed to the
    model's input size; pass None for full resolution (to crop a small region, say).
    Other formats always decode at full resolution.

    Raises PhotoError for a missing, unreadable, empty, truncated or corrupt file, a file that
    is not an image birdid reads, or one larger than Pillow's decompression-bomb limit.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise PhotoError(path, "the file is empty.")
            with Image.open(file, formats=_PILLOW_FORMATS) as source:
                if draft_size is not None and isinstance(source, JpegImagePlugin.JpegImageFile):
                    source.draft("RGB", _stored_orientation_size(source, draft_size))
                source.load()  # decode everything now, so a truncated file fails here
                ImageOps.exif_transpose(source, in_place=True)
                # A new image: `source` is unusable once the `with` closes it.
                return _to_rgb8(source)
    except FileNotFoundError:
        raise PhotoError(path, "no such file.") from None
    except IsADirectoryError:
        raise PhotoError(path, "this is a folder, not a photo.") from None
    except PermissionError:
        # Windows says PermissionError when asked to open a folder as a file.
        problem = "this is a folder, not a photo." if path.is_dir() else "birdid is not allowed to read this file."
        raise PhotoError(path, problem) from None
    except UnidentifiedImageError:
        raise PhotoError(path, "this is not an image birdid can read.") from None
    except Image.DecompressionBombError as error:
        raise PhotoError(path, _too_large_problem(error)) from None
    except (OSError, EOFError, SyntaxError, ValueError) as error:
        # What Pillow's readers raise for damaged data: OSError "image file is truncated",
        # EOFError or SyntaxError from a half-read header, ValueError from a bad field.
        raise PhotoError(path, _damaged_problem(error)) from None


def _stored_orientation_size(image: Image.Image, upright_size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) in the file's stored orientation that becomes `upright_size` once
    the EXIF orientation is applied: swapped for the orientations that turn by 90 degrees."""
    orientation = image.getexif().get(0x0112, 1)  # 0x0112: EXIF Orientation
    width, height = upright_size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _to_rgb8(image: Image.Image) -> Image.Image:
    """A new 8-bit RGB image of a loaded `image` of any Pillow mode; transparency over white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's own conversion to "L" clips at 255 instead of scaling 16-bit values.
        # Mode "I" is how Pillow may hold 16-bit grey data too, so it is read as 0..65535.
        grey16 = np.asarray(image, dtype=np.int64).clip(0, _MAX_16_BIT)  # [H, W]
        grey8 = ((grey16 + 128) // 257).astype(np.uint8)  # round(value / 257); no ties exist
        return Image.fromarray(grey8).convert("RGB")  # fromarray of a 2-D uint8 array: "L"
    if image.has_transparency_data:
        rgba = image.convert("RGBA")  # also applies a palette's or grey PNG's transparency
        on_white = Image.new("RGB", rgba.size, _WHITE)
        on_white.paste(rgba, mask=rgba.getchannel("A"))
        return on_white
    if image.mode == "RGB":
        return image.copy()
    # "L", "1", "P" without transparency, "CMYK" (Pillow's plain formula, no ICC profile),
    # "YCbCr", "LAB", "HSV", and "F" (clipped to 0..255).
    return image.convert("RGB")


def _too_large_problem(error: Image.DecompressionBombError) -> str:
    # Pillow's message starts "Image size (N pixels) exceeds limit of M pixels".
    match = re.search(r"\((\d+) pixels\)", str(error))
    if match is None:
        return "the image is too large to decode safely."
    megapixels = int(match.group(1)) / 1e6
    shown = f"{megapixels:.0f}" if megapixels >= 10 else f"{megapixels:.1f}"
    return f"the image is too large to decode safely ({shown} megapixels)."


def _damaged_problem(error: Exception) -> str:
    # Pillow says "image file is truncated" or "Truncated File Read"; pillow_heif (libheif)
    # says "Unexpected end of file".
    message = str(error).lower()
    if isinstance(error, EOFError) or "truncated" in message or "end of file" in message:
        return "the image data is truncated."
    return "the image data is damaged."


def crop_region(image: Image.Image, region: tuple[int, int, int, int]) -> Image.Image:
    """The part of an upright image inside region = (x, y, width, height), clipped to the image."""
    x, y, width, height = region
    left, top = max(0, x), max(0, y)
    right, bottom = min(image.width, x + width), min(image.height, y + height)
    if right <= left or bottom <= top:
        raise ValueError(f"region {region} lies outside the {image.width}x{image.height} image")
    return image.crop((left, top, right, bottom))


_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATE_TIME_ORIGINAL = 0x9003
_DATE_TIME = 0x0132


def photo_metadata(path: str | Path) -> tuple[str | None, float | None, float | None]:
    """(capture date as ISO 8601, latitude, longitude) from the photo's EXIF, each None when
    absent or unreadable. Reads the header only, not the pixels."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            taken = exif.get_ifd(_EXIF_IFD).get(_DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME)
            gps = exif.get_ifd(_GPS_IFD)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None, None, None
    return _iso_date(taken), _gps_degrees(gps, 2, 1, "S"), _gps_degrees(gps, 4, 3, "W")


def _iso_date(value) -> str | None:
    # EXIF writes "YYYY:MM:DD HH:MM:SS".
    if not isinstance(value, str) or len(value) < 19 or value[4] != ":" or value[7] != ":":
        return None
    return f"{value[:4]}-{value[5:7]}-{value[8:10]}T{value[11:19]}"


def _gps_degrees(gps, value_tag: int, ref_tag: int, negative_ref: str) -> float | None:
    """GPS degrees, minutes, seconds and the hemisphere letter -> signed decimal degrees."""
    try:
        degrees, minutes, seconds = (float(part) for part in gps[value_tag])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    return -value if str(gps.get(ref_tag, "")).upper().startswith(negative_ref) else value


def decode_thumbnail(path: str | Path, side: int) -> Image.Image:
    """The photo, upright, fitted in a square of `side` pixels, decoded at a reduced scale where
    the format allows: what thumbnail grids and strips show."""
    image = decode_photo(path, draft_size=(side, side))
    image.thumbnail((side, side))
    return image
