"""What goes wrong with a library file, as the sentences a person reads."""

from __future__ import annotations

from pathlib import Path

from birdid_app.core.errors import BirdidError


class LibraryError(BirdidError):
    """The library file cannot be used (newer schema, missing, several models and none chosen)."""


class LibraryDamaged(LibraryError):
    """The library file is not a database, or its pages are damaged. The photos are untouched;
    `rebuild_library` sets the file aside and starts a new one."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = Path(path)
        self.detail = detail
        super().__init__(
            f"The library {self.path} is damaged ({detail}). Your photos are untouched: rebuild it with "
            "`birdid index --rebuild` (or Rebuild in the Library tab), which keeps the damaged file beside it."
        )


class LibraryReadOnly(LibraryError):
    """The library file, or the folder it is in, may not be written: it can be read, not changed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(
            f"The library {self.path} is read-only: make the file and its folder writable to change it, "
            "or choose another library file."
        )


class IndexerBusy(LibraryError):
    """Another process (or window) is indexing this library."""
