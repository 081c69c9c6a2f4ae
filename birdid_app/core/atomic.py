"""Writing a file so that its name only ever holds the old contents or the complete new ones.

The new contents go to a hidden temporary file in the same folder (a rename is only atomic within
one file system), are flushed to the disk, and then take the real name in one os.replace. If
anything goes wrong on the way, the temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_ATTEMPTS = 100  # names already taken in a row before giving up: only ever reached by a bug


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", *, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """`with atomic_write(path) as out: out.write(...)`: `path` gets what was written once the
    block ends without an exception, and nothing at all otherwise.

    mode is "w" (text, in `encoding`, with `newline` as open() takes it) or "wb" (bytes). A new
    file gets the permissions an ordinary open() would give it; a replaced file keeps its own.
    An OSError about creating or renaming the file names `path`, not the temporary file."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes text ('w') or bytes ('wb'), not {mode!r}")
    path = Path(path)
    created, temporary = _create_beside(path)
    descriptor: int | None = created
    try:
        with contextlib.suppress(OSError):  # a file we may not chmod is still written
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        text = mode == "w"
        with os.fdopen(created, mode, encoding=encoding if text else None, newline=newline if text else None) as handle:
            descriptor = None  # the file object closes it now
            yield handle
            handle.flush()
            # Without this a power cut just after the rename can leave an empty file behind.
            os.fsync(handle.fileno())
        try:
            os.replace(temporary, path)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None
    except BaseException:
        if descriptor is not None:
            os.close(descriptor)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty, hidden file next to `path`, open for writing: (descriptor, its path).
    Not tempfile.mkstemp: that makes the file readable by its owner only, and an exported
    picture or CSV should be as readable as any other file the person saves."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
    for _ in range(_ATTEMPTS):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None
    raise FileExistsError(f"no free temporary name beside {path}")


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable. Windows cannot open a folder for this, and there the
    rename is journalled by NTFS anyway."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
