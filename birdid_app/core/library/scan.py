"""Finding the photos in a library's folders: walking them, pairing a RAW file with the JPEG the
camera wrote beside it, and the cheap fingerprint that recognises a moved or renamed photo."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from birdid_app.core.files import open_regular_file
from birdid_app.core.photos.photo import IMAGE_SUFFIXES
from birdid_app.core.photos.raw import RAW_SUFFIXES

# What a camera writes beside a RAW file as the same picture.
COMPANION_SUFFIXES = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".hif"})
FINGERPRINT_SAMPLE = 256 * 1024  # bytes read from the start and from the end of a file


def fingerprint(path: Path, size: int) -> str:
    """Identifies a file's content cheaply: its size and its first and last 256 KiB. Enough to
    recognise a moved or renamed photo without reading all of it. Raises PhotoError for a file
    that is not a regular file or cannot be read (a named pipe never blocks it)."""
    digest = hashlib.sha256(str(size).encode())
    with open_regular_file(path) as handle:
        digest.update(handle.read(FINGERPRINT_SAMPLE))
        if size > 2 * FINGERPRINT_SAMPLE:
            handle.seek(-FINGERPRINT_SAMPLE, os.SEEK_END)
            digest.update(handle.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()


def _scan(folders: list[Path], should_stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, tuple[int, int]]]:
    """(path, (size, mtime_ns)) of every file with a photo's name under the folders. A path is
    the one the file has inside its folder: a symbolic link to a photo elsewhere is stored under
    the link's name, so removing the folder removes it. Follows linked folders but visits each
    real folder once (no loops); unreadable folders are passed over; anything with a photo's name
    is listed, even a named pipe or a file that cannot be read, so it is recorded with its error."""
    seen: set[tuple[int, int]] = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder, followlinks=True, onerror=lambda _: None):
            if should_stop():
                return
            try:
                stat = os.stat(root)
            except OSError:
                dirs[:] = []
                continue
            if (stat.st_dev, stat.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((stat.st_dev, stat.st_ino))
            for name in files:
                if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                path = os.path.join(root, name)
                try:
                    info = os.stat(path)  # the photo's size and mtime, through a link
                except OSError:
                    try:
                        info = os.lstat(path)  # a dangling or looping link: recorded with its error
                    except OSError:
                        continue  # vanished since the folder was listed
                yield path, (info.st_size, info.st_mtime_ns)


def _pair_companions(found: dict[str, tuple[int, int]]) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """(found without the JPEGs that have a RAW of the same name beside them, RAW path -> that
    JPEG). The RAW is the photo; the JPEG is the same picture as the camera rendered it."""
    by_stem: dict[tuple[str, str], list[str]] = {}
    for path in found:
        head, name = os.path.split(path)
        stem, suffix = os.path.splitext(name)
        by_stem.setdefault((head, stem.casefold()), []).append(path)
    pairs: dict[str, str] = {}
    for paths in by_stem.values():
        raws = [p for p in paths if os.path.splitext(p)[1].lower() in RAW_SUFFIXES]
        others = sorted(p for p in paths if os.path.splitext(p)[1].lower() in COMPANION_SUFFIXES)
        if len(raws) == 1 and others:
            pairs[raws[0]] = others[0]
    companions = set(pairs.values())
    return {p: info for p, info in found.items() if p not in companions}, pairs


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def resolved(path: Path) -> Path | None:
    """`path` with its links followed, or None when it cannot be (a NUL character, a loop of links)."""
    try:
        return Path(os.path.realpath(path, strict=False))
    except (OSError, ValueError):
        return None


def why_not_written(path: Path, folders: list[Path], not_done: str) -> str | None:
    """Why birdid will not write beside or into the photo `path` (keywords, a cull): not a full
    path, or, once its links are followed, not strictly inside one of the library's `folders`
    (resolved: its sidecar is beside it). `not_done` says what was not written, as "no keywords
    were written for it". None when it may be written."""
    text = str(path)
    if not text or text == "." or "\0" in text or not path.is_absolute():
        return (f"A photo in the library has the path {text[:200]!r}, which is not a full path, so {not_done}; "
                "index its folder again to replace it.")
    real = resolved(path)
    if real is None or not any(folder in real.parents for folder in folders):
        return (f"{text}: This photo is not inside a folder of the library, so {not_done}; "
                "add its folder to the library to write it.")
    return None


def _inside_any(path: Path, folders: list[Path]) -> bool:
    return any(_inside(path, folder) for folder in folders)
