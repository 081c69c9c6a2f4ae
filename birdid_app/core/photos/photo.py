"""Decoding photos into upright 8-bit RGB images.

`decode_photo` turns any photo birdid accepts into an upright 8-bit RGB `PIL.Image`, or raises
`PhotoError` with a sentence a person can act on. No torch here: the window decodes photos for
display before (and without) loading the model.

Whatever a file holds is that file's problem, never the batch's: any exception a decoder raises
on it becomes its PhotoError, and the warnings decoding it raises become one log line naming it
(see `_WarningsLogged`).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from birdid_app.core.errors import PhotoError
from birdid_app.core.files import open_regular_file, problem_from_os_error
from birdid_app.core.photos.raw import RAW_SUFFIXES, decode_raw, raw_metadata, raw_problem

# Lets Image.open read HEIC/HEIF. Libheif applies the file's rotation and mirroring itself and
# resets the EXIF orientation to 1, so the exif_transpose below does nothing more for HEIF.
pillow_heif.register_heif_opener()

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".hif"}
) | RAW_SUFFIXES
"""Lower-case file suffixes of the photos birdid reads (".hif" is Fujifilm's HEIF; camera RAW
files, decoded by LibRaw, are recognised by their suffix: see core/photos/raw.py)."""

# The Pillow formats Image.open may try. The file's content decides the format, not its suffix,
# but Pillow's readers for rarer formats (PSD, PCX, ICO, ...) are never reached.
# Pillow's "JPEG" reader also opens the multi-picture JPEGs ("MPO") many cameras write.
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF")

# Large enough for the 384 x 384 model input: see decode_photo's draft_size.
DEFAULT_DRAFT_SIZE = (384, 384)

_MAX_16_BIT = 65535
_GREY_16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# 16-bit grey is scaled to 8 bits this many pixels at a time: 4 MiB of uint32 whatever the size.
_BAND_PIXELS = 1 << 20
_WHITE = (255, 255, 255)


def decode_photo(
    path: str | Path,
    *,
    draft_size: tuple[int, int] | None = DEFAULT_DRAFT_SIZE,
    raw_preview_any_size: bool = False,
) -> Image.Image:
    """Decode the photo at `path` to an 8-bit RGB image, turned upright as its EXIF says.

    Transparent parts are shown over white; the first frame of an animation or the first page
    of a multi-page TIFF is used.

    `draft_size` (width, height, upright): the image is made smaller, but never smaller than
    that on either side, because nothing is lost when the whole photo is then squashed to the
    model's input size. A JPEG decodes at 1/2, 1/4 or 1/8 scale, several times faster for
    camera-sized photos; every format is then shrunk by the largest whole factor that keeps
    both sides at least `draft_size` (Image.reduce: the mean of each factor x factor box), so
    a batch of large photos holds only small images. Pass None for full resolution (to crop
    a small region, say).

    A camera RAW file (see core/photos/raw.py) is decoded from its embedded JPEG preview when that is
    at least `draft_size`, else demosaiced at half size; with `draft_size` None, demosaiced at
    full size. `raw_preview_any_size`: its preview whatever its size (thumbnails: fast).

    Raises PhotoError for anything that is not a readable regular file (a missing file, a
    folder, a named pipe, a symbolic-link loop, ...), an empty, truncated or corrupt file, a
    file that is not an image birdid reads, one larger than Pillow's decompression-bomb limit,
    and any other exception the decoder raises on the file (MemoryError included).
    """
    path = Path(path)
    with _WarningsLogged(path, logging.WARNING), open_regular_file(path) as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise PhotoError(path, "the file is empty.")
        try:
            if path.suffix.lower() in RAW_SUFFIXES:
                image = decode_raw(file, draft_size, any_preview=raw_preview_any_size)
                return _reduced(image, draft_size)
            return _decode(file, draft_size)
        except Exception as error:  # whatever a decoder raises on a file is that file's problem
            problem = raw_problem(error) or _decoder_problem(error)
    # Raised outside the except clause: as its __context__ the decoder's exception would keep
    # the decoder's frames, and the images in them, alive as long as the PhotoError is kept.
    raise PhotoError(path, problem)


def _decode(file, draft_size: tuple[int, int] | None) -> Image.Image:
    with Image.open(file, formats=_PILLOW_FORMATS) as source:
        if draft_size is not None and isinstance(source, JpegImagePlugin.JpegImageFile):
            source.draft("RGB", _stored_orientation_size(source, draft_size))
        source.load()  # decode everything now, so a truncated file fails here
        ImageOps.exif_transpose(source, in_place=True)
        # A new image: `source` is unusable once the `with` closes it.
        image = _to_8bit(source)
    image = _reduced(image, draft_size)
    return image if image.mode == "RGB" else image.convert("RGB")


def _reduced(image: Image.Image, draft_size: tuple[int, int] | None) -> Image.Image:
    """`image` shrunk by the largest whole factor that keeps both sides at least `draft_size`."""
    if draft_size is not None:
        factor = min(image.width // max(1, draft_size[0]), image.height // max(1, draft_size[1]))
        if factor >= 2:
            image = image.reduce(factor)  # of grey: the same pixels as reducing its RGB
    return image


def _decoder_problem(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "this is not an image birdid can read."
    if isinstance(error, Image.DecompressionBombError):
        return _too_large_problem(error)
    if isinstance(error, MemoryError):
        return "there is not enough memory to decode this image."
    if isinstance(error, OSError) and error.errno is not None:
        return problem_from_os_error(error)  # from the file system (EIO, say), not from Pillow
    if isinstance(error, (OSError, EOFError, SyntaxError, ValueError)):
        # What Pillow's readers raise for damaged data: OSError "image file is truncated",
        # EOFError or SyntaxError from a half-read header, ValueError from a bad field.
        return _damaged_problem(error)
    # Anything else is a decoder failing on data it did not expect (Pillow raises TypeError
    # for a TIFF tag of the wrong type): named, so a report of it can be traced.
    detail = " ".join(str(error).split())[:200].rstrip(".")
    return f"the image could not be read ({type(error).__name__}{': ' + detail if detail else ''})."


def _stored_orientation_size(image: Image.Image, upright_size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) in the file's stored orientation that becomes `upright_size` once
    the EXIF orientation is applied: swapped for the orientations that turn by 90 degrees."""
    orientation = image.getexif().get(0x0112, 1)  # 0x0112: EXIF Orientation
    width, height = upright_size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _to_8bit(image: Image.Image) -> Image.Image:
    """A new 8-bit image, "RGB" or grey "L", of a loaded `image` of any Pillow mode;
    transparency over white. Grey stays grey so that it is reduced at a third of the memory;
    _decode turns it into RGB last."""
    if image.mode in _GREY_16_MODES:
        # Pillow's own conversion to "L" clips at 255 instead of scaling 16-bit values.
        # Mode "I" is how Pillow may hold 16-bit grey data too, so it is read as 0..65535.
        return _grey16_to_grey8(image)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")  # also applies a palette's or grey PNG's transparency
        on_white = Image.new("RGB", rgba.size, _WHITE)
        on_white.paste(rgba, mask=rgba.getchannel("A"))
        return on_white
    if image.mode in ("RGB", "L"):
        # The same pixels in a plain Image, not a copy: a 100-megapixel photo would otherwise
        # be held twice for a moment. Closing the opened file's image object only drops its own
        # reference to them.
        return image._new(image.im)
    # "1", "P" without transparency, "CMYK" (Pillow's plain formula, no ICC profile),
    # "YCbCr", "LAB", "HSV", and "F" (clipped to 0..255).
    return image.convert("RGB")


def _grey16_to_grey8(image: Image.Image) -> Image.Image:
    """An "L" image of round(value / 257) of a 16-bit grey image, values clipped to 0..65535.
    A band of rows at a time, so memory beyond the result stays at a few MiB."""
    width, height = image.size
    grey8 = np.empty((height, width), np.uint8)
    rows = max(1, _BAND_PIXELS // max(1, width))
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        band = np.asarray(image.crop((0, top, width, bottom)))  # [rows, W]: uint16, or int32 for "I"
        if band.dtype.kind == "i":
            band = band.clip(0, _MAX_16_BIT)
        band = band.astype(np.uint32)  # room for + 128
        band += 128
        band //= 257  # round(value / 257): no ties exist
        grey8[top:bottom] = band
    return Image.fromarray(grey8)  # fromarray of a 2-D uint8 array: "L"


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


# --- Warnings while decoding -------------------------------------------------------------------
#
# Pillow warns through the warnings module ("Corrupt EXIF data", DecompressionBombWarning for
# 90 to 179 megapixels, "Metadata Warning, ..."), which writes to stderr with no file name, and
# only the first time for each message. Decoding runs on several threads, and
# warnings.catch_warnings is process-wide, so it cannot say which file a warning was about.
# Instead, a showwarning hook sends a warning to the list of the thread's decode in progress,
# if any, and the decode logs that list as one line naming its file. An "always" filter for the
# decoders' modules lets a warning through for every file, not just the first. Outside a
# decode, the hook passes a warning on as before, once per message and place like Python's
# "default" action.
#
# Pillow's libtiff decoder silences libtiff's warnings itself (TIFFSetWarningHandler(NULL)),
# but libtiff's error messages ("ZIPDecode: ZLib error") still go to the C stderr; the file
# fails with a PhotoError all the same. Routing those would take a libtiff error handler set
# through ctypes, or redirecting file descriptor 2, which other threads write to: neither done.

_DECODER_MODULES = r"(PIL|pillow_heif)(\.|$)"
_DECODER_NAMES = {"PIL": "Pillow", "pillow_heif": "pillow-heif"}
_decoding = threading.local()  # .warnings: the list of the thread's decode in progress, or None
_hook_lock = threading.Lock()
_passed_on = warnings.showwarning  # the showwarning the hook replaced (taken again when it goes in)
_shown_outside: set[tuple] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    collected = getattr(_decoding, "warnings", None)
    if collected is not None:
        collected.append((_warned_by(filename, category), str(message)))
        return
    if _warned_by(filename, None) is not None:
        key = (str(message), category, filename, lineno)
        if key in _shown_outside:
            return
        _shown_outside.add(key)
    _passed_on(message, category, filename, lineno, file, line)


def _warned_by(filename: str, category) -> str | None:
    """"Pillow" for a warning raised in Pillow's code, and so on; else the category's name."""
    for part in Path(filename).parts:
        if part in _DECODER_NAMES:
            return _DECODER_NAMES[part]
    return None if category is None else category.__name__


def _route_decoder_warnings() -> None:
    """Put the hook and the filter in place, again if someone (pytest, each test) replaced them."""
    global _passed_on
    if warnings.showwarning is _show_warning and _has_decoder_filter():
        return
    with _hook_lock:
        if warnings.showwarning is not _show_warning:
            _passed_on = warnings.showwarning
            warnings.showwarning = _show_warning
        if not _has_decoder_filter():
            warnings.filterwarnings("always", module=_DECODER_MODULES)


def _has_decoder_filter() -> bool:
    return any(
        action == "always" and module is not None and module.pattern == _DECODER_MODULES
        for action, _message, _category, module, _lineno in warnings.filters
    )


class _WarningsLogged:
    """Around the decode of one file: its warnings become one log line naming it, at `level`.
    "PATH: Pillow warned: Corrupt EXIF data. Expecting to read 12 bytes but only got 6." """

    def __init__(self, path: Path, level: int) -> None:
        self.path = path
        self.level = level

    def __enter__(self) -> None:
        _route_decoder_warnings()
        self.outer = getattr(_decoding, "warnings", None)
        self.collected = _decoding.warnings = []

    def __exit__(self, *exc) -> None:
        _decoding.warnings = self.outer
        parts = []
        for source, text in self.collected:
            part = f"{source} warned: {' '.join(text.split())[:300].rstrip('. ')}"
            if part not in parts:
                parts.append(part)
        if parts:
            log.log(self.level, "%s: %s.", self.path, "; ".join(parts))


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
    absent or unreadable. Reads the header only, not the pixels (but see PNG below). Never
    raises: a file whose metadata cannot be read gives (None, None, None), and decode_photo
    says what is wrong with it."""
    path = Path(path)
    try:
        # DEBUG: decode_photo reads the same EXIF and logs the same warnings for the file.
        with _WarningsLogged(path, logging.DEBUG), open_regular_file(path) as file:
            if path.suffix.lower() in RAW_SUFFIXES:
                taken, gps = raw_metadata(file)
                return _iso_date(taken), _gps_degrees(gps, 2, 1, "S"), _gps_degrees(gps, 4, 3, "W")
            # For a PNG without an eXIf chunk before its pixels, getexif decodes all of them
            # to look for one after.
            with Image.open(file, formats=_PILLOW_FORMATS) as image:
                exif = image.getexif()
                taken = exif.get_ifd(_EXIF_IFD).get(_DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME)
                gps = exif.get_ifd(_GPS_IFD)
                return _iso_date(taken), _gps_degrees(gps, 2, 1, "S"), _gps_degrees(gps, 4, 3, "W")
    except Exception:  # PhotoError, and whatever a reader raises on a damaged header
        return None, None, None


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
    if not math.isfinite(value):  # a zero denominator in the file
        return None
    return -value if str(gps.get(ref_tag, "")).upper().startswith(negative_ref) else value


def decode_thumbnail(path: str | Path, side: int) -> Image.Image:
    """The photo, upright, fitted in a square of `side` pixels, decoded at a reduced scale where
    the format allows: what thumbnail grids and strips show."""
    image = decode_photo(path, draft_size=(side, side), raw_preview_any_size=True)
    image.thumbnail((side, side))
    return image
