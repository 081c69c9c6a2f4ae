"""Camera RAW files (CR2, CR3, NEF, ARW, DNG, ORF, RAF, RW2, PEF), decoded with rawpy (LibRaw).

`photo.decode_photo` and `photo.photo_metadata` send a file here by its suffix; this module
turns it into an upright 8-bit RGB image, and reads its capture date and GPS position. Whatever
LibRaw raises becomes a problem sentence through `raw_problem`, so a damaged RAW is one line like
any other bad photo.

Nearly every camera stores a JPEG preview beside the sensor data, rendered by the camera with
its own colour. Decoding that JPEG costs milliseconds; demosaicing the sensor data costs most
of a second or more (benchmarks/raw_decode.py). So where the preview is large enough for what is
asked of it, it is what is decoded.
"""

from __future__ import annotations

import io
from typing import BinaryIO, cast

import numpy as np
import rawpy
from PIL import Image, ImageOps, JpegImagePlugin, TiffImagePlugin

RAW_SUFFIXES = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".raf", ".rw2", ".pef"})
"""Lower-case suffixes of the camera RAW files birdid reads."""

# LibRaw's flip (sizes.flip) -> the EXIF orientation that means the same turn.
_EXIF_ORIENTATION_OF_FLIP = {0: 1, 3: 3, 5: 8, 6: 6}
_EXIF_ORIENTATION = 0x0112

# A preview whose width / height differs from the sensor image's by more than this is letterboxed
# or cropped (some cameras write a 16:9 preview of a 3:2 photo): not the same picture.
_ASPECT_TOLERANCE = 0.03

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATE_TIME_ORIGINAL = 0x9003
_DATE_TIME = 0x0132


def decode_raw(file: BinaryIO, draft_size: tuple[int, int] | None, *, any_preview: bool = False) -> Image.Image:
    """The RAW image in `file`, upright, as an 8-bit RGB image at least `draft_size` (width,
    height) on each side where the file allows (the caller then reduces it as for any photo).

    With `draft_size`: the embedded preview when it is at least that large, else a half-size
    demosaic (each 2 x 2 Bayer block becomes one pixel: no interpolation, about 4 times faster).
    `any_preview`: the preview whatever its size (thumbnails). With `draft_size` None: a
    full-resolution demosaic, for a region to be cropped out at the sensor's own detail.

    A preview Pillow cannot decode is passed over for the sensor data. Raises rawpy's
    LibRawError (see `raw_problem`) for damaged sensor data or a file LibRaw cannot read.
    """
    # rawpy reads the whole file into memory from a file object: LibRaw never sees the path,
    # so open_regular_file's checks hold. Opening reads the header only: the sensor data is
    # unpacked by postprocess, after its size has been checked.
    with rawpy.imread(file) as raw:
        if draft_size is not None:
            preview = _preview(raw, None if any_preview else draft_size)
            if preview is not None:
                return preview
        _refuse_too_many_pixels(raw.sizes)
        pixels = raw.postprocess(
            half_size=draft_size is not None,
            use_camera_wb=True,  # the white balance the photographer saw on the camera
            output_bps=8,
        )  # [H, W, 3] uint8, already turned by LibRaw as sizes.flip says
    return Image.fromarray(pixels)


class RawTooLarge(Exception):
    """The RAW's header claims more pixels than `max_raw_pixels` allows; see `raw_problem`."""

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        super().__init__(f"{pixels} pixels")


def max_raw_pixels() -> int | None:
    """The most pixels birdid demosaics: the limit Pillow refuses other photos beyond (twice
    Image.MAX_IMAGE_PIXELS, about 179 megapixels; the largest cameras make 150). None: no limit,
    as for Pillow when MAX_IMAGE_PIXELS is None. Read at each decode, so both move together."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def _refuse_too_many_pixels(sizes) -> None:
    """Raise RawTooLarge when the header's sensor or output size is beyond `max_raw_pixels`:
    LibRaw would allocate it all (16 bits a pixel, then 3 channels) before finding that a file
    of a few KB holds no such data (a 132 KB DNG claiming 40000 x 26000 took 4.7 GB)."""
    limit = max_raw_pixels()
    pixels = max(sizes.raw_width * sizes.raw_height, sizes.width * sizes.height, sizes.iwidth * sizes.iheight)
    if limit is not None and pixels > limit:
        raise RawTooLarge(pixels)


def _preview(raw: rawpy.RawPy, draft_size: tuple[int, int] | None) -> Image.Image | None:
    """The embedded preview, upright, if there is one that shows the whole photo and is at
    least `draft_size` (upright width, height); None means demosaic instead."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    orientation = _EXIF_ORIENTATION_OF_FLIP.get(raw.sizes.flip, 1)
    image: Image.Image
    if thumb.format == rawpy.ThumbFormat.JPEG:  # data: the JPEG file's bytes
        try:
            image = Image.open(io.BytesIO(cast(bytes, thumb.data)), formats=("JPEG",))
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            return None  # a damaged or oversized preview: the sensor data may well be whole
        # LibRaw writes an EXIF header carrying the RAW's orientation in front of a preview that
        # has none, and leaves a preview's own EXIF in place: either way the JPEG's own tag,
        # where there is one, is the one that matches its pixels.
        orientation = image.getexif().get(_EXIF_ORIENTATION, orientation)
    else:  # ThumbFormat.BITMAP: [H, W, 3] uint8, stored like the sensor data
        image = Image.fromarray(cast(np.ndarray, thumb.data))
    turned = orientation in (5, 6, 7, 8)
    stored_width, stored_height = image.size
    upright = (stored_height, stored_width) if turned else (stored_width, stored_height)
    if not _same_picture(image.size, raw.sizes):
        return None
    if draft_size is not None and (upright[0] < draft_size[0] or upright[1] < draft_size[1]):
        return None
    if isinstance(image, JpegImagePlugin.JpegImageFile) and draft_size is not None:
        stored_draft = (draft_size[1], draft_size[0]) if turned else draft_size
        image.draft("RGB", stored_draft)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError):
        return None  # a truncated preview: the sensor data may well be whole
    # The JPEG's own tag is replaced by the one chosen above, then applied.
    image.getexif()[_EXIF_ORIENTATION] = orientation
    image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _same_picture(preview_size: tuple[int, int], sizes) -> bool:
    """Whether a preview of `preview_size` (stored) has the sensor image's shape, in either
    orientation: previews are stored turned or not, depending on the camera."""
    sensor = sizes.width / max(1, sizes.height)
    preview = preview_size[0] / max(1, preview_size[1])
    return any(abs(preview / shape - 1) <= _ASPECT_TOLERANCE for shape in (sensor, 1 / sensor))


def raw_problem(error: Exception) -> str | None:
    """The problem sentence for an exception from rawpy (or RawTooLarge), or None for any other."""
    if isinstance(error, RawTooLarge):
        limit = max_raw_pixels() or 0
        return (f"the RAW image is too large to decode safely ({error.pixels / 1e6:.0f} megapixels, "
                f"more than the {limit / 1e6:.0f} birdid decodes).")
    if not isinstance(error, rawpy.LibRawError):
        return None
    if isinstance(error, rawpy.LibRawFileUnsupportedError):
        return "this is not a RAW file LibRaw can read (a damaged file, or a camera it does not know)."
    if isinstance(error, (rawpy.LibRawUnsufficientMemoryError, rawpy.LibRawMemPoolOverflowError)):
        return "there is not enough memory to decode this RAW image."
    if isinstance(error, rawpy.LibRawTooBigError):
        return "the RAW image is too large to decode safely."
    if isinstance(error, rawpy.LibRawIOError):
        # LibRaw's IO error is a read past the end of the data: a truncated file.
        return "the RAW data is truncated or damaged."
    if isinstance(error, rawpy.LibRawDataError):
        return "the RAW data is damaged."
    detail = " ".join(str(error).split())[:200].rstrip(".")
    return f"the RAW image could not be decoded ({type(error).__name__}{': ' + detail if detail else ''})."


def raw_metadata(file: BinaryIO) -> tuple[str | None, dict]:
    """(capture date as EXIF writes it, "YYYY:MM:DD HH:MM:SS", GPS IFD as a tag -> value dict)
    of the RAW in `file`; None and {} when absent.

    Most RAW formats (CR2, NEF, ARW, DNG, PEF, and ORF and RW2 under their own magic numbers)
    are TIFF files: their EXIF and GPS IFDs are read directly, a few KiB wherever they lie.
    The others (CR3, RAF) give only the date, from LibRaw, which reads the sensor data first.
    """
    header = file.read(8)
    if len(header) == 8 and header[:2] in (b"II", b"MM"):
        # ORF ("IIRO"), RW2 ("IIU\0") are TIFF with another magic number in bytes 2-3.
        magic = b"*\x00" if header[:2] == b"II" else b"\x00*"
        return _tiff_metadata(file, header[:2] + magic + header[4:])
    file.seek(0)
    with rawpy.imread(file) as raw:
        taken = raw.other.timestamp  # local time, as the camera's clock said
    return (taken.strftime("%Y:%m:%d %H:%M:%S") if taken.timestamp() > 0 else None), {}


def _tiff_metadata(file: BinaryIO, header: bytes) -> tuple[str | None, dict]:
    ifd0 = _ifd_at(file, header, TiffImagePlugin.ImageFileDirectory_v2(header).next)
    exif = _ifd_at(file, header, ifd0.get(_EXIF_IFD))
    gps = _ifd_at(file, header, ifd0.get(_GPS_IFD))
    return exif.get(_DATE_TIME_ORIGINAL) or ifd0.get(_DATE_TIME), dict(gps)


def _ifd_at(file: BinaryIO, header: bytes, offset) -> TiffImagePlugin.ImageFileDirectory_v2:
    ifd = TiffImagePlugin.ImageFileDirectory_v2(header)
    if isinstance(offset, int) and offset > 0:
        file.seek(offset)
        ifd.load(file)
    return ifd

