"""The library file as SQLite sees it: where it is, opening it (read-only where it may not be
written), and turning SQLite's word for a damaged or read-only file into one sentence."""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK
from typing import Any, Concatenate, ParamSpec, TypeVar

from birdid_app.core.files import problem_from_os_error
from birdid_app.core.library.errors import LibraryDamaged, LibraryError, LibraryReadOnly
from birdid_app.core.library.schema import SCHEMA_VERSION, migrate, schema_version
from birdid_app.core.paths import data_dir

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")

LIBRARY_VARIABLE = "BIRDID_LIBRARY"
BUSY_TIMEOUT_SECONDS = 30  # how long a connection waits for another process's write to finish
SQL_VARIABLES = 900  # ids per "IN (...)": SQLite before 3.32 allows at most 999 variables


def rows_for_ids(db: sqlite3.Connection, sql: str, ids: Sequence[int], first: tuple = ()) -> Iterator[tuple]:
    """The rows of `sql`, whose "{ids}" stands for the marks of an id list, run over `ids` in
    chunks SQLite accepts; `first` are the parameters before the ids."""
    for start in range(0, len(ids), SQL_VARIABLES):
        chunk = list(ids[start : start + SQL_VARIABLES])
        yield from db.execute(sql.format(ids=",".join("?" * len(chunk))), (*first, *chunk))


def default_library_path() -> Path:
    override = os.environ.get(LIBRARY_VARIABLE)
    return Path(override) if override else data_dir() / "library.sqlite3"


def _damage_detail(error: sqlite3.DatabaseError) -> str | None:
    """What is wrong with the file, when `error` says the file is damaged; None for the errors a
    sound file gives too (locked, busy, a full disk)."""
    name = getattr(error, "sqlite_errorname", "")
    text = str(error)
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text or "not a database" in text:
        return text
    return None


def _read_only_error(error: sqlite3.DatabaseError) -> bool:
    """Whether `error` is SQLite refusing to write a library opened read-only."""
    return getattr(error, "sqlite_errorname", "").startswith("SQLITE_READONLY") or "readonly database" in str(error)


def _library_file_exists(path: Path) -> bool:
    """Whether there is a library file at `path`. Raises LibraryError naming it when something
    else is there: SQLite would wait for ever on the first read of a named pipe, and a device or
    a folder is no library either."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as error:
        problem = problem_from_os_error(error).rstrip(".")
        raise LibraryError(f"The library {path} cannot be opened ({problem}).") from None
    if S_ISREG(mode):
        return True
    if S_ISDIR(mode):
        kind = "a folder"
    elif S_ISFIFO(mode):
        kind = "a named pipe"
    elif S_ISSOCK(mode):
        kind = "a socket"
    elif S_ISCHR(mode) or S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "not a regular file"
    raise LibraryError(f"The library {path} is {kind}, not a library file: move it aside or choose another library file.")


def _journal_in_use(path: Path) -> bool:
    """Whether the library's WAL journal may hold commits the file itself does not yet: a -shm
    file beside it (a connection is open, or one ended without cleaning up), or a -wal that is
    not empty."""
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    try:
        return shm.exists() or (wal.exists() and wal.stat().st_size > 0)
    except OSError:
        return True


def _writable(path: Path) -> bool:
    """Whether this process may write the library file and make its journal files beside it."""
    effective = os.access in os.supports_effective_ids
    return all(os.access(where, os.W_OK, effective_ids=effective) for where in (path, path.parent))


def _guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Turns SQLite's word for a damaged file, raised anywhere in `method`, into LibraryDamaged:
    one sentence saying what to do instead of a traceback. `method` is a Library's, or that of
    an object whose `library` is the Library it works on (an IndexJob)."""

    @functools.wraps(method)
    def guarded(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            library: Any = getattr(self, "library", self)
            if _read_only_error(error):
                raise LibraryReadOnly(library.path) from None
            detail = _damage_detail(error)
            if detail is None:
                raise
            raise LibraryDamaged(library.path, detail) from None

    return guarded


def connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """A connection to the library file at `path`: read-only (`read_only`) without making any
    file beside it where it can be helped."""
    if not read_only:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    uri = f"{path.absolute().as_uri()}?mode=ro"
    # A read-only connection reads a WAL file through its -shm file, and makes one where there
    # is none, with the library's own read-only mode, which would then stop the next writer
    # once the library is writable again. With no -shm, and no -wal with anything in it, the
    # file itself holds every commit: it is read as it stands (immutable), making nothing.
    if not _journal_in_use(path):
        return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        db.execute("PRAGMA user_version").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK):
            raise
    # A folder no one may write (so no writer is at work): its last checkpoint, as it stands.
    return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=BUSY_TIMEOUT_SECONDS)


def prepare(db: sqlite3.Connection, path: Path, read_only: bool) -> None:
    """Make the connection `db` to the library at `path` ready: WAL mode and the current schema
    for a writer; for a reader, a schema it can read as it stands."""
    if read_only:
        db.execute("PRAGMA query_only = ON")
        if schema_version(db, path) != SCHEMA_VERSION:
            raise LibraryError(
                f"The library {path} is read-only and this birdid must update it first: "
                "make the file and its folder writable, then open it once."
            )
        db.execute("PRAGMA foreign_keys = ON")
        return
    # WAL lets searches read while the indexer writes. The mode is kept in the file, so only
    # a new library changes it; changing it needs a moment alone with the file, which a
    # second process opening a new library at the same time may hold: wait and try again.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    migrate(db, path)
    # After the migration: with foreign keys on, its DROP TABLE would delete the rows it copies.
    db.execute("PRAGMA foreign_keys = ON")
