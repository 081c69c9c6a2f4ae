"""The one thumbnail cache: small JPEGs of the person's photos in the data folder, for the Library
tab's grid, the map's hover and the Identify tab's strip alike.

A thumbnail is named by the photo's path, size and modification time, so a changed photo gets a
new one. It is written whole or not at all (a temporary file renamed into place): two windows, or
a grid and the map, asking for one photo at once each write a complete file and the last rename
wins, and a thumbnail is never read half-written. It is read back through the regular-file
opener, like any file another program could have put there; one that cannot be read is made again.

The cache is kept under CACHE_LIMIT_BYTES: a thumbnail is marked used (its modification time)
each time it is asked for, and every few hundred new ones the least recently used are deleted
until the cache is back under nine tenths of the limit. A million-photo library would otherwise
leave ~20 GB of thumbnails behind it.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import PhotoError
from birdid_app.core.files import read_regular_file
from birdid_app.core.paths import data_dir
from birdid_app.core.photos.photo import decode_thumbnail

THUMBNAIL_SIDE = 256  # pixels: twice the largest grid cell (128), sharp on high-DPI screens
_MAX_BYTES = 4_000_000  # a 256-pixel JPEG is ~20 KB; anything this large is not one of ours
_QUALITY = 85
CACHE_LIMIT_BYTES = 2_000_000_000  # ~100,000 thumbnails of ~20 KB
_PRUNE_EVERY = 256  # thumbnails made between two looks at the cache's size
_prune_lock = threading.Lock()  # the grid, the map and the strip make thumbnails on several threads
_made_since_prune = 0


def cache_path(photo: Path) -> Path:
    """Where the thumbnail of `photo` is kept. Raises OSError when the photo cannot be looked at."""
    status = photo.stat()
    key = hashlib.sha1(f"{photo}|{status.st_size}|{status.st_mtime_ns}".encode()).hexdigest()
    return data_dir() / "thumbnails" / f"{key}.jpg"


def thumbnail_file(photo: Path, *, skip_decoding: Callable[[], bool] = lambda: False) -> Path | None:
    """The kept thumbnail of `photo`, made first when there is none, unless `skip_decoding()`
    says the caller no longer wants it (the mouse has left the map's point): then None.
    Raises PhotoError or OSError when the photo cannot be read."""
    cached = cache_path(photo)
    if cached.is_file():
        _mark_used(cached)
    else:
        if skip_decoding():
            return None
        _keep(decode_thumbnail(photo, THUMBNAIL_SIDE), cached)
    return cached


def thumbnail(photo: Path) -> Image.Image:
    """The thumbnail of `photo` as an RGB image, from the cache or made and kept. Raises
    PhotoError or OSError when the photo cannot be read."""
    cached = thumbnail_file(photo)
    assert cached is not None  # nothing skips decoding here
    try:
        data = read_regular_file(cached, _MAX_BYTES, "a thumbnail", PhotoError)
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as kept:
            return kept.convert("RGB")
    except (PhotoError, OSError, Image.DecompressionBombError):
        image = decode_thumbnail(photo, THUMBNAIL_SIDE)  # damaged or replaced: made again
        _keep(image, cached)
        return image


def _keep(image: Image.Image, cached: Path) -> None:
    global _made_since_prune
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cached, "wb") as out:
        image.convert("RGB").save(out, format="JPEG", quality=_QUALITY)
    with _prune_lock:
        _made_since_prune += 1
        if _made_since_prune < _PRUNE_EVERY:
            return
        _made_since_prune = 0
        prune(cached.parent)


def _mark_used(cached: Path) -> None:
    try:
        os.utime(cached)
    except OSError:
        pass  # a read-only data folder: the thumbnail still serves, it just ages


def prune(folder: Path, limit_bytes: int | None = None) -> int:
    """Delete the least recently used thumbnails in `folder` until it holds at most nine tenths of
    `limit_bytes` (CACHE_LIMIT_BYTES unless given), if it holds more. Returns how many went."""
    limit_bytes = CACHE_LIMIT_BYTES if limit_bytes is None else limit_bytes
    kept = []  # (last used in ns, bytes, path)
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".jpg") and entry.is_file(follow_symlinks=False):
                    status = entry.stat(follow_symlinks=False)
                    kept.append((status.st_mtime_ns, status.st_size, entry.path))
    except OSError:
        return 0
    total = sum(size for _, size, _ in kept)
    if total <= limit_bytes:
        return 0
    deleted = 0
    for _, size, path in sorted(kept):
        if total <= limit_bytes * 9 // 10:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        total -= size
        deleted += 1
    return deleted

