"""One indexer per library at a time: an exclusive lock the operating system drops when the
process ends, however it ends (Windows' msvcrt, elsewhere flock)."""

from __future__ import annotations

import errno
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from birdid_app.core.library.errors import IndexerBusy


class IndexLock:
    """Only one indexer per library: an exclusive lock on `<library>.lock`, held while indexing.
    The operating system drops it when the process ends, however it ends, so a crash or a kill
    never leaves the library locked. (Not the database file itself: SQLite locks that one.)"""

    def __init__(self, library_path: Path) -> None:
        self.path = Path(library_path).with_name(Path(library_path).name + ".lock")
        self._handle: IO[bytes] | None = None

    def acquire(self, *, wait: bool, on_wait: Callable[[], None] | None = None) -> None:
        """Take the lock. If another indexer holds it: with wait, call on_wait() and block until
        it is free; without, raise IndexerBusy."""
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open for as long as the lock
        try:
            if not _try_lock(handle):
                if not wait:
                    raise IndexerBusy(
                        f"Another birdid is indexing the library {self.path.with_suffix('')} right now; "
                        "try again when it has finished."
                    )
                if on_wait is not None:
                    on_wait()
                _lock(handle)
        except BaseException:
            handle.close()
            raise
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None


if sys.platform == "win32":  # (sys.platform, not os.name: the type checker follows it)
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _lock(handle: IO[bytes]) -> None:
        while not _try_lock(handle):
            time.sleep(0.2)
else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise

    def _lock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # Ctrl+C interrupts the wait
