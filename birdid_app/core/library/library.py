"""The photo library: a person's own photos, identified once, searchable by similarity and species.

One SQLite file (WAL mode) holds, per photo: where it is, its size and mtime, a content
fingerprint, capture date and GPS from EXIF, or the error that stopped it from being read; and,
per photo and per model, the embedding and top-5 species that model gave it. Embeddings of two
models are never compared: a library is always read through one model (`Library.model`), and
indexing with a model fills in only what that model lacks.

Indexing commits in batches, one transaction each, so a process killed at any moment leaves a
consistent file and loses at most the batch under way; the next run sees what is done (same size
and mtime, and an identification by this model) and carries on. One indexer runs on a library at
a time (`IndexLock`); a second waits, or is told that another is running.

The embeddings are also held in memory as one matrix (`VectorIndex`) for exact cosine search.
"""

from __future__ import annotations

import csv
import errno
import functools
import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK
from typing import TYPE_CHECKING

import numpy as np

from birdid_app.core.atomic import atomic_write
from birdid_app.core.csv_cells import text_cell
from birdid_app.core.errors import BirdidError, PhotoError
from birdid_app.core.files import open_regular_file, problem_from_os_error
from birdid_app.core.paths import data_dir
from birdid_app.core.photo import IMAGE_SUFFIXES, decode_photo, photo_metadata
from birdid_app.core.raw import RAW_SUFFIXES
from birdid_app.core.vectors import VectorIndex

if TYPE_CHECKING:
    from PIL import Image

LIBRARY_VARIABLE = "BIRDID_LIBRARY"
SCHEMA_VERSION = 5
TOP_SPECIES = 5
BATCH_SIZE = 8  # photos per forward pass and per committed transaction
FINGERPRINT_SAMPLE = 256 * 1024  # bytes read from the start and from the end of a file
BUSY_TIMEOUT_SECONDS = 30  # how long a connection waits for another process's write to finish
_VECTOR_LOAD_ROWS = 65_536  # embeddings read per step when the index is loaded (200 MB at 768-d)
_SQL_VARIABLES = 900  # ids per "IN (...)": SQLite before 3.32 allows at most 999 variables

_SCHEMA_V1 = [
    """CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        taken_at TEXT,
        latitude REAL,
        longitude REAL,
        model TEXT,
        error TEXT,
        embedding BLOB
    )""",
    "CREATE INDEX photos_by_fingerprint ON photos (fingerprint)",
    """CREATE TABLE predictions (
        photo_id INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        species TEXT NOT NULL,
        probability REAL NOT NULL,
        PRIMARY KEY (photo_id, rank)
    )""",
    "CREATE INDEX predictions_by_species ON predictions (species, rank, probability)",
]
# Version 2: each embedding and prediction belongs to the model that made it (version 1 kept one
# per photo, so a second model's rows overwrote or mixed with the first's), and a photo that
# cannot be read at all is kept with its error and no fingerprint. SQLite's way to change
# columns: build the new table, copy, drop the old, rename (foreign keys are off meanwhile).
_V1_TO_V2 = [
    """CREATE TABLE photos_v2 (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        fingerprint TEXT,  -- NULL when the file could not be read at all (retried every run)
        taken_at TEXT,
        latitude REAL,
        longitude REAL,
        error TEXT  -- why the photo could not be read or decoded; the same for every model
    )""",
    "INSERT INTO photos_v2 SELECT id, path, size, mtime_ns, fingerprint, taken_at, latitude, longitude, error "
    "FROM photos",
    """CREATE TABLE identifications (
        photo_id INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        embedding BLOB NOT NULL,  -- float32 [embedding_dim], as the model gave it
        PRIMARY KEY (photo_id, model)
    )""",
    "INSERT INTO identifications SELECT id, model, embedding FROM photos "
    "WHERE model IS NOT NULL AND embedding IS NOT NULL",
    """CREATE TABLE predictions_v2 (
        photo_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        rank INTEGER NOT NULL,
        species TEXT NOT NULL,
        probability REAL NOT NULL,
        PRIMARY KEY (photo_id, model, rank),
        FOREIGN KEY (photo_id, model) REFERENCES identifications (photo_id, model) ON DELETE CASCADE
    )""",
    "INSERT INTO predictions_v2 SELECT predictions.photo_id, photos.model, rank, species, probability "
    "FROM predictions JOIN photos ON photos.id = predictions.photo_id "
    "WHERE photos.model IS NOT NULL AND photos.embedding IS NOT NULL",
    "DROP TABLE predictions",
    "DROP TABLE photos",
    "ALTER TABLE photos_v2 RENAME TO photos",
    "ALTER TABLE predictions_v2 RENAME TO predictions",
    "CREATE INDEX photos_by_fingerprint ON photos (fingerprint)",
    "CREATE INDEX identifications_by_model ON identifications (model)",
    "CREATE INDEX predictions_by_species ON predictions (model, species, rank, probability)",
]
# Version 3: the person's own labels, apart from any model's predictions. Keyed by photo, so a
# label survives re-indexing (a changed file keeps its row), a model change and a rename.
_V2_TO_V3 = [
    """CREATE TABLE labels (
        photo_id INTEGER PRIMARY KEY REFERENCES photos (id) ON DELETE CASCADE,
        species TEXT NOT NULL,  -- a species name, or NOT_A_BIRD, or UNKNOWN_SPECIES
        set_at TEXT NOT NULL,  -- when, ISO 8601 in UTC
        source TEXT NOT NULL  -- "person", or "keywords" (taken from the photo's own keywords)
    )""",
    "CREATE INDEX labels_by_species ON labels (species)",
]
# Version 4: a RAW file and a JPEG (or HEIF) of the same name in the same folder are one photo:
# the RAW is its row, identified once, and the other path is kept as its companion.
_V3_TO_V4 = [
    """CREATE TABLE companions (
        path TEXT PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE
    )""",
    "CREATE INDEX companions_by_photo ON companions (photo_id)",
]
# Version 5: where and when. Places a person set for a folder or a photo (the range prior's place
# before the photo's GPS), and each identification's answer with the range prior beside the
# picture's own: the place and week used, and its top species (core/range_prior.py).
_V4_TO_V5 = [
    """CREATE TABLE assigned_places (
        path TEXT PRIMARY KEY,  -- a folder (every photo under it) or a photo
        latitude REAL NOT NULL,
        longitude REAL NOT NULL,
        name TEXT,  -- what the person typed or picked, for showing
        set_at TEXT NOT NULL
    )""",
    """CREATE TABLE place_answers (
        photo_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        latitude REAL NOT NULL,
        longitude REAL NOT NULL,
        week INTEGER NOT NULL,  -- BirdNET's 1..48, or 0 for the whole year
        source TEXT NOT NULL,  -- where the place came from: photo, folder, person, settings
        geomodel TEXT NOT NULL,  -- the range model's SHA-256
        PRIMARY KEY (photo_id, model),
        FOREIGN KEY (photo_id, model) REFERENCES identifications (photo_id, model) ON DELETE CASCADE
    )""",
    """CREATE TABLE place_predictions (
        photo_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        rank INTEGER NOT NULL,
        species TEXT NOT NULL,
        probability REAL NOT NULL,  -- picture and range prior combined
        expected REAL,  -- the range model's value there and then; NULL without a prior for it
        PRIMARY KEY (photo_id, model, rank),
        FOREIGN KEY (photo_id, model) REFERENCES place_answers (photo_id, model) ON DELETE CASCADE
    )""",
    "CREATE INDEX place_predictions_by_species ON place_predictions (model, species, rank, probability)",
]
# Version N's schema is reached from N-1 by MIGRATIONS[N]; version 1 is _SCHEMA_V1 from nothing.
MIGRATIONS: dict[int, list[str]] = {1: _SCHEMA_V1, 2: _V1_TO_V2, 3: _V2_TO_V3, 4: _V3_TO_V4, 5: _V4_TO_V5}
RANKINGS = ("picture", "place")  # what find reads: the picture's own answer, or the one with the range prior
# What a camera writes beside a RAW file as the same picture.
COMPANION_SUFFIXES = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".hif"})
# Labels for what is not one of the model's species.
NOT_A_BIRD = "not a bird"
UNKNOWN_SPECIES = "unknown species"
LABEL_SOURCES = ("person", "keywords")


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


@dataclass(frozen=True)
class LibraryPhoto:
    id: int
    path: Path
    taken_at: str | None
    latitude: float | None
    longitude: float | None
    species: tuple[tuple[str, float], ...]  # the reading model's top-5, most likely first
    model: str | None  # the model those species are from; None when it has not identified this photo
    error: str | None
    label: str | None = None  # the person's own: a species, NOT_A_BIRD or UNKNOWN_SPECIES; None if unset


@dataclass(frozen=True)
class IndexProgress:
    done: int
    total: int
    photos_per_second: float
    seconds_left: float | None
    current: str


@dataclass
class IndexSummary:
    scanned: int = 0
    embedded: int = 0
    renamed: int = 0
    removed: int = 0
    failed: int = 0
    unchanged: int = 0


def default_library_path() -> Path:
    override = os.environ.get(LIBRARY_VARIABLE)
    return Path(override) if override else data_dir() / "library.sqlite3"


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


def _guarded(method):
    """Turns SQLite's word for a damaged file, raised anywhere in `method`, into LibraryDamaged:
    one sentence saying what to do instead of a traceback."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            library = self if isinstance(self, Library) else self.library
            if _read_only_error(error):
                raise LibraryReadOnly(library.path) from None
            detail = _damage_detail(error)
            if detail is None:
                raise
            raise LibraryDamaged(library.path, detail) from None

    return guarded


class Library:
    """The library file. One instance is the one writer; open it in the thread that uses it.

    `model` is the model whose identifications are read (searches, species, export). None means
    the only model that has identified photos in this library; with several, name one.
    `create=False` opens an existing library only (readers must not leave an empty file behind)
    and raises LibraryError when there is none.

    A library whose file or folder this process may not write is opened read-only (`read_only`):
    searches and exports work, and anything that would change it raises LibraryReadOnly.
    """

    def __init__(self, path: Path | None = None, *, model: str | None = None, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_library_path()
        self.model = model
        exists = _library_file_exists(self.path)
        if not create and not exists:
            raise LibraryError(
                f"There is no library at {self.path} yet: index a folder first (birdid index FOLDER)."
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = exists and not _writable(self.path)
        try:
            self.db = self._connect()
        except sqlite3.DatabaseError as error:
            raise LibraryError(f"The library {self.path} cannot be opened ({error}).") from None
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            self.db.close()
            detail = _damage_detail(error)
            if detail is None:
                raise LibraryError(f"The library {self.path} cannot be opened ({error}).") from None
            raise LibraryDamaged(self.path, detail) from None
        except BaseException:
            self.db.close()
            raise
        self._vectors: VectorIndex | None = None
        self._vectors_model: str | None = None

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        # A read-only connection reads a WAL file through its -shm file, and makes one where there
        # is none, with the library's own read-only mode, which would then stop the next writer
        # once the library is writable again. With no -shm, and no -wal with anything in it, the
        # file itself holds every commit: it is read as it stands (immutable), making nothing.
        if not _journal_in_use(self.path):
            return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            db.execute("PRAGMA user_version").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if os.access(self.path.parent, os.W_OK):
                raise
        # A folder no one may write (so no writer is at work): its last checkpoint, as it stands.
        return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=BUSY_TIMEOUT_SECONDS)

    def _open(self) -> None:
        if self.read_only:
            self.db.execute("PRAGMA query_only = ON")
            if self._schema_version() != SCHEMA_VERSION:
                raise LibraryError(
                    f"The library {self.path} is read-only and this birdid must update it first: "
                    "make the file and its folder writable, then open it once."
                )
            self.db.execute("PRAGMA foreign_keys = ON")
            return
        # WAL lets searches read while the indexer writes. The mode is kept in the file, so only
        # a new library changes it; changing it needs a moment alone with the file, which a
        # second process opening a new library at the same time may hold: wait and try again.
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
        self._migrate()
        # After the migration: with foreign keys on, its DROP TABLE would delete the rows it copies.
        self.db.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        self.db.close()

    def require_writable(self) -> None:
        """Raise LibraryReadOnly, naming the file, if this library was opened read-only: before a
        job that writes, so it stops before any work rather than at its first write."""
        if self.read_only:
            raise LibraryReadOnly(self.path)

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _schema_version(self) -> int:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LibraryError(f"The library {self.path} was made by a newer birdid (schema {version}).")
        return version

    def _migrate(self) -> None:
        if self._schema_version() == SCHEMA_VERSION:
            return
        # An explicit transaction: Python's sqlite3 would run CREATE TABLE outside one, and a
        # process killed half-way would leave half a schema (the kill test caught that).
        # IMMEDIATE takes the write lock first, waiting out another process that is creating or
        # migrating the same file; the version is read again under the lock, as that process
        # may have done the work meanwhile.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for step in range(self._schema_version() + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {step}")
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    @_guarded
    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @_guarded
    def check_not_damaged(self) -> None:
        """Read every page once (SQLite's quick_check) and raise LibraryDamaged if any is bad.
        Linear in the file's size: run before a long job, not before every search."""
        problems = [row[0] for row in self.db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise LibraryDamaged(self.path, "; ".join(problems))

    # --- models ------------------------------------------------------------------------------

    @_guarded
    def models(self) -> list[tuple[str, int]]:
        """(model, photos it has identified) for every model with identifications here."""
        return self.db.execute(
            "SELECT model, COUNT(*) FROM identifications GROUP BY model ORDER BY 2 DESC, 1"
        ).fetchall()

    def reading_model(self) -> str | None:
        """The model whose identifications are read: `model`, or the only one in the library
        (None in an empty library)."""
        if self.model is not None:
            return self.model
        models = self.models()
        if len(models) > 1:
            named = ", ".join(f"{name} ({count} photos)" for name, count in models)
            raise LibraryError(
                f"The library {self.path} holds identifications by several models ({named}): "
                "say which to use with --model."
            )
        return models[0][0] if models else None

    # --- folders -----------------------------------------------------------------------------

    @_guarded
    def folders(self) -> list[Path]:
        return [Path(p) for (p,) in self.db.execute("SELECT path FROM folders ORDER BY path")]

    @_guarded
    def add_folder(self, folder: Path) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO folders (path) VALUES (?)", (str(Path(folder).resolve()),))

    @_guarded
    def remove_folder(self, folder: Path) -> int:
        """Forget a folder and the photos found in it; returns how many photos left the index."""
        folder = Path(folder).resolve()
        gone = [pid for pid, path in self.db.execute("SELECT id, path FROM photos") if _inside(Path(path), folder)]
        with self.db:
            self.db.execute("DELETE FROM folders WHERE path = ?", (str(folder),))
            self.db.executemany("DELETE FROM photos WHERE id = ?", [(pid,) for pid in gone])
        if self._vectors is not None:
            self._vectors.remove(gone)
        return len(gone)

    # --- reading -----------------------------------------------------------------------------

    @_guarded
    def count(self) -> int:
        """Photos in the library, read or not, whatever model identified them."""
        return self.db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def photo(self, photo_id: int) -> LibraryPhoto:
        return self._photos([photo_id])[photo_id]

    @_guarded
    def photo_by_path(self, path: Path) -> LibraryPhoto | None:
        """The photo stored under `path`: as given (made absolute), or with symbolic links resolved.
        Photos are stored under the path they have inside their folder, links not followed."""
        path = Path(path)
        candidates = dict.fromkeys([str(Path(os.path.abspath(path))), str(path.resolve())])
        for candidate in candidates:
            row = self.db.execute(
                "SELECT id FROM photos WHERE path = ? UNION ALL SELECT photo_id FROM companions WHERE path = ?",
                (candidate, candidate),
            ).fetchone()
            if row:
                return self.photo(row[0])
        return None

    @_guarded
    def all_photos(self) -> list[LibraryPhoto]:
        """Every photo, by path."""
        ids = [pid for (pid,) in self.db.execute("SELECT id FROM photos ORDER BY path")]
        photos = self._photos(ids)
        return [photos[pid] for pid in ids]

    @_guarded
    def companions(self, photo_id: int) -> list[Path]:
        """The other files of the same picture (the JPEG beside a RAW)."""
        return [Path(p) for (p,) in self.db.execute("SELECT path FROM companions WHERE photo_id = ? ORDER BY path",
                                                     (photo_id,))]

    def has_embedding(self, photo_id: int) -> bool:
        return photo_id in self.vectors()

    @_guarded
    def vectors(self) -> VectorIndex:
        """The reading model's embeddings as one in-memory index, loaded on first use, then kept in step.

        They are read in chunks, so loading never holds every row twice; a large library's index
        keeps them in float16 and reads its search candidates back from this file in float32.
        """
        model = self.reading_model()
        if self._vectors is None or self._vectors_model != model:
            self._vectors = None  # the old model's rows go before the new ones are read
            count = self.db.execute("SELECT COUNT(*) FROM identifications WHERE model = ?", (model,)).fetchone()[0]
            cursor = self.db.execute("SELECT photo_id, embedding FROM identifications WHERE model = ?", (model,))
            index = None
            while rows := cursor.fetchmany(_VECTOR_LOAD_ROWS):
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                if index is None:
                    read_back = functools.partial(self._embeddings, model, dim=matrix.shape[1])
                    index = VectorIndex(matrix.shape[1], exact_rows=read_back)
                    index.reserve(count)
                index.upsert(ids, matrix)
            self._vectors = index if index is not None else VectorIndex()
            self._vectors_model = model
        return self._vectors

    def _embeddings(self, model: str | None, ids: np.ndarray, dim: int) -> np.ndarray:
        """The float32 embeddings [n, dim] by `model` of photos `ids` [n], in that order; a row of
        NaN for a photo that has none (removed since the index was loaded)."""
        vectors = np.full((ids.shape[0], dim), np.nan, dtype=np.float32)
        row_of = {photo_id: row for row, photo_id in enumerate(ids.tolist())}
        id_list = list(row_of)
        for start in range(0, len(id_list), _SQL_VARIABLES):
            chunk = id_list[start : start + _SQL_VARIABLES]
            for photo_id, embedding in self.db.execute(
                f"SELECT photo_id, embedding FROM identifications WHERE model = ? "
                f"AND photo_id IN ({','.join('?' * len(chunk))})",
                (model, *chunk),
            ):
                vectors[row_of[photo_id]] = np.frombuffer(embedding, dtype=np.float32)
        return vectors

    def similar(self, embedding: np.ndarray, k: int, exclude: Iterable[int] = ()) -> list[tuple[LibraryPhoto, float]]:
        """The k photos whose embeddings by the reading model are most like `embedding`, which
        must come from that same model."""
        index = self.vectors()
        embedding = np.asarray(embedding, dtype=np.float32)
        if len(index) and embedding.shape != (index.dim,):
            raise LibraryError(
                f"The library's embeddings by {self._vectors_model} have {index.dim} values, the photo's "
                f"{embedding.size}: it was identified by another model."
            )
        hits = index.search(embedding, k, exclude=exclude)
        photos = self._photos([pid for pid, _ in hits])
        return [(photos[pid], score) for pid, score in hits]

    def similar_to_photo(self, photo_id: int, k: int) -> list[tuple[LibraryPhoto, float]]:
        return self.similar(self.vectors().vector(photo_id), k, exclude=[photo_id])

    @_guarded
    def find_species(
        self, species: str, *, in_top: int = 1, confirmed_only: bool = False, ranking: str = "picture"
    ) -> list[tuple[LibraryPhoto, float | None]]:
        """Photos of `species`: first those the person labelled so (marked by their `label`,
        with the model's probability for it when it has one), then those whose top prediction (or
        one of the top `in_top`) it is, most likely first, leaving out photos labelled otherwise.
        `ranking` "place" reads the answers ranked with the range prior (photos indexed without
        a place or a range model have none, so are not found that way)."""
        if ranking not in RANKINGS:
            raise ValueError(f"ranking is one of {RANKINGS}, not {ranking!r}")
        table = "predictions" if ranking == "picture" else "place_predictions"
        model = self.reading_model()
        confirmed = self.db.execute(
            f"SELECT labels.photo_id, answer.probability FROM labels LEFT JOIN {table} AS answer "
            "ON answer.photo_id = labels.photo_id AND answer.model = ? AND answer.species = labels.species "
            "WHERE labels.species = ? ORDER BY answer.probability DESC, labels.photo_id",
            (model, species),
        ).fetchall()
        predicted = [] if confirmed_only else self.db.execute(
            f"SELECT photo_id, probability FROM {table} AS answer WHERE model = ? AND species = ? AND rank <= ? "
            "AND NOT EXISTS (SELECT 1 FROM labels WHERE labels.photo_id = answer.photo_id) "
            "ORDER BY probability DESC, photo_id",
            (model, species, in_top),
        ).fetchall()
        rows = confirmed + predicted
        photos = self._photos([pid for pid, _ in rows])
        return [(photos[pid], probability) for pid, probability in rows]

    @_guarded
    def species_named(self, text: str) -> str:
        """`text` as the library spells that species (in labels or predictions), whatever its
        case; `text` itself when no photo has it."""
        text = text.strip()
        for query in (
            "SELECT species FROM labels WHERE species = ? COLLATE NOCASE LIMIT 1",
            "SELECT species FROM predictions WHERE species = ? COLLATE NOCASE LIMIT 1",
        ):
            row = self.db.execute(query, (text,)).fetchone()
            if row:
                return row[0]
        return text

    # --- places a person set ------------------------------------------------------------------

    @_guarded
    def set_assigned_place(self, path: Path, latitude: float, longitude: float, name: str | None = None) -> None:
        """Say where the photos under a folder (or one photo) were taken: the range prior's place
        for them before their own GPS. The caller checks the position (core.place)."""
        with self.db:
            self.db.execute(
                "INSERT INTO assigned_places (path, latitude, longitude, name, set_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET latitude = excluded.latitude, longitude = excluded.longitude, "
                "name = excluded.name, set_at = excluded.set_at",
                (str(path), float(latitude), float(longitude), name, _utc_now()),
            )

    @_guarded
    def clear_assigned_place(self, path: Path) -> bool:
        with self.db:
            return self.db.execute("DELETE FROM assigned_places WHERE path = ?", (str(path),)).rowcount > 0

    @_guarded
    def assigned_places(self) -> dict[str, tuple[float, float, str | None]]:
        """path (a folder or a photo) -> (latitude, longitude, name) of every place a person set."""
        return {path: (lat, lon, name) for path, lat, lon, name in self.db.execute(
            "SELECT path, latitude, longitude, name FROM assigned_places"
        )}

    def assigned_place_for(self, path: Path, places: dict | None = None) -> tuple[float, float, str | None, str] | None:
        """place_set_for(`path`) among this library's places; `places`: assigned_places() already
        read, for a caller asking about many photos."""
        return place_set_for(self.assigned_places() if places is None else places, path)

    @_guarded
    def place_answer(self, photo_id: int) -> tuple[dict, list[tuple[str, float, float | None]]] | None:
        """What the range prior said when the reading model indexed the photo: ({latitude,
        longitude, week, source}, [(species, combined probability, expected)] most likely first),
        or None when it was indexed without a place or a range model."""
        model = self.reading_model()
        row = self.db.execute(
            "SELECT latitude, longitude, week, source FROM place_answers WHERE photo_id = ? AND model = ?",
            (photo_id, model),
        ).fetchone()
        if row is None:
            return None
        species = self.db.execute(
            "SELECT species, probability, expected FROM place_predictions WHERE photo_id = ? AND model = ? ORDER BY rank",
            (photo_id, model),
        ).fetchall()
        return dict(zip(("latitude", "longitude", "week", "source"), row, strict=True)), species

    # --- the person's labels -----------------------------------------------------------------

    @_guarded
    def set_label(self, photo_id: int, species: str | None, *, source: str = "person") -> None:
        """Label a photo (None clears its label). `species` is the caller's to check against the
        model's names; NOT_A_BIRD and UNKNOWN_SPECIES are always allowed."""
        if species is not None:
            self.set_labels([photo_id], species, source=source)
            return
        with self.db:
            self.db.execute("DELETE FROM labels WHERE photo_id = ?", (photo_id,))

    @_guarded
    def set_labels(self, photo_ids: Iterable[int], species: str, *, source: str = "person") -> None:
        """Label many photos with the same species, in one transaction (the map's lasso)."""
        if source not in LABEL_SOURCES:
            raise ValueError(f"a label comes from one of {LABEL_SOURCES}, not {source!r}")
        now = _utc_now()
        with self.db:
            self.db.executemany(
                "INSERT INTO labels (photo_id, species, set_at, source) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (photo_id) DO UPDATE SET species = excluded.species, set_at = excluded.set_at, "
                "source = excluded.source",
                ((int(photo_id), species, now, source) for photo_id in photo_ids),
            )

    @_guarded
    def labels(self) -> dict[int, tuple[str, str, str]]:
        """photo id -> (species, set_at, source) of every labelled photo."""
        return {pid: (species, set_at, source) for pid, species, set_at, source in self.db.execute(
            "SELECT photo_id, species, set_at, source FROM labels"
        )}

    @_guarded
    def labelled_photos(self) -> list[LibraryPhoto]:
        """Every labelled photo with its label, capture date and GPS, by path, in one query (the life
        list reads them all). Their `species` is () and `model` None: no model's predictions are read,
        so this works whichever models identified the library, or none."""
        return [
            LibraryPhoto(pid, Path(path), taken_at, latitude, longitude, (), None, error, label)
            for pid, path, taken_at, latitude, longitude, error, label in self.db.execute(
                "SELECT photos.id, photos.path, photos.taken_at, photos.latitude, photos.longitude, photos.error, "
                "labels.species FROM labels JOIN photos ON photos.id = labels.photo_id ORDER BY photos.path"
            )
        ]

    def labelled_vectors(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The photos the person labelled with a species or as not a bird (an "unknown species"
        label says nothing about what the photo is) that the reading model has identified:
        (ids [n], embeddings [n, d] float32, labels), what `core.trust.neighbour_vote` votes with."""
        index = self.vectors()
        labelled = [(pid, species) for pid, (species, _, _) in sorted(self.labels().items())
                    if species != UNKNOWN_SPECIES and pid in index]
        ids = np.array([pid for pid, _ in labelled], dtype=np.int64)
        vectors = index.vectors_of(ids) if len(ids) else np.zeros((0, index.dim), dtype=np.float32)
        return ids, vectors, [species for _, species in labelled]

    def sample_embeddings(self, count: int, *, seed: int = 0) -> np.ndarray:
        """The embeddings [min(count, n), d] float32 of a fixed random sample of the library's
        identified photos, as the model gave them (not normalised, unlike the index's: the
        classifier's logits are computed from them)."""
        index = self.vectors()
        ids = index.ids()
        if len(ids) > count:
            ids = np.sort(np.random.default_rng(seed).choice(ids, size=count, replace=False))
        embeddings = self._embeddings(self._vectors_model, ids, index.dim)
        return embeddings[np.isfinite(embeddings).all(axis=1)]  # a photo removed meanwhile is left out

    @_guarded
    def species_counts(self) -> list[tuple[str, int]]:
        """How many photos each species is the top prediction of, most first."""
        return self.db.execute(
            "SELECT species, COUNT(*) FROM predictions WHERE model = ? AND rank = 1 GROUP BY species ORDER BY 2 DESC, 1",
            (self.reading_model(),),
        ).fetchall()

    def duplicate_groups(self, threshold: float) -> list[list[LibraryPhoto]]:
        groups = self.vectors().near_duplicate_groups(threshold)
        photos = self._photos([pid for group in groups for pid in group])
        return [[photos[pid] for pid in group] for group in groups]

    @_guarded
    def burst_groups(self, seconds: float | None = None, threshold: float | None = None) -> list[list[LibraryPhoto]]:
        """Bursts: photos taken within `seconds` (default BURST_SECONDS, 2) of one another and
        alike (cosine of the reading model's embeddings >= `threshold`, default BURST_THRESHOLD,
        0.85), chained in time (core/groups.py's burst_groups); each group in time order, groups
        by their first frame. Photos without a capture date that can be read, or not identified
        by the reading model, are left out."""
        from birdid_app.core.groups import BURST_SECONDS, BURST_THRESHOLD, burst_groups, capture_seconds

        seconds = BURST_SECONDS if seconds is None else float(seconds)
        threshold = BURST_THRESHOLD if threshold is None else float(threshold)
        model = self.reading_model()
        dated = [
            (pid, when)
            for pid, taken_at in self.db.execute(
                "SELECT photos.id, photos.taken_at FROM photos JOIN identifications "
                "ON identifications.photo_id = photos.id AND identifications.model = ? "
                "WHERE photos.taken_at IS NOT NULL",
                (model,),
            )
            if (when := capture_seconds(taken_at)) is not None
        ]
        if len(dated) < 2:
            return []
        ids = np.array([pid for pid, _ in dated], dtype=np.int64)
        times = np.array([when for _, when in dated], dtype=np.float64)
        # Only photos with another one within `seconds` can be in a burst: read just their embeddings.
        order = np.argsort(times, kind="stable")
        gaps = np.diff(times[order])
        near = np.zeros(len(order), dtype=bool)
        near[:-1] |= gaps <= seconds
        near[1:] |= gaps <= seconds
        ids, times = ids[order][near], times[order][near]
        if ids.shape[0] < 2:
            return []
        vectors = self.vectors().vectors_of(ids)
        groups = burst_groups(ids, times, vectors, seconds=seconds, threshold=threshold)
        photos = self._photos([pid for group in groups for pid in group])
        return [[photos[pid] for pid in group] for group in groups]

    @_guarded
    def export_csv(self, destination: Path) -> int:
        """path, date, GPS, top-5 species and probabilities, model, error, the person's label;
        one row per photo."""
        header = ["path", "taken_at", "latitude", "longitude"]
        for rank in range(1, TOP_SPECIES + 1):
            header += [f"species_{rank}", f"probability_{rank}"]
        header += ["model", "error", "label"]
        ids = [pid for (pid,) in self.db.execute("SELECT id FROM photos ORDER BY path")]
        photos = self._photos(ids)
        with atomic_write(destination, "w", newline="") as handle:  # csv writes its own line ends
            writer = csv.writer(handle)
            writer.writerow(header)
            for pid in ids:
                p = photos[pid]
                # Text from files and shards as text_cell makes it safe; numbers birdid formats itself.
                row = [text_cell(str(p.path)), text_cell(p.taken_at), _blank(p.latitude), _blank(p.longitude)]
                for rank in range(TOP_SPECIES):
                    name, probability = p.species[rank] if rank < len(p.species) else ("", None)
                    row += [text_cell(name), "" if probability is None else f"{probability:.6f}"]
                writer.writerow(row + [text_cell(p.model), text_cell(p.error), text_cell(p.label)])
        return len(ids)

    @_guarded
    def _photos(self, ids: list[int]) -> dict[int, LibraryPhoto]:
        if not ids:
            return {}
        model = self.reading_model()
        found: dict[int, LibraryPhoto] = {}
        species: dict[int, list[tuple[str, float]]] = {pid: [] for pid in ids}
        for start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for pid, name, probability in self.db.execute(
                f"SELECT photo_id, species, probability FROM predictions WHERE model = ? AND photo_id IN ({marks}) "
                "ORDER BY photo_id, rank",
                [model, *chunk],
            ):
                species[pid].append((name, probability))
            for pid, path, taken_at, lat, lon, error, label in self.db.execute(
                "SELECT id, path, taken_at, latitude, longitude, error, "
                "(SELECT species FROM labels WHERE labels.photo_id = photos.id) "
                f"FROM photos WHERE id IN ({marks})",
                chunk,
            ):
                by = model if species[pid] else None
                found[pid] = LibraryPhoto(pid, Path(path), taken_at, lat, lon, tuple(species[pid]), by, error, label)
        return found

    # --- writing (the indexer's) -------------------------------------------------------------

    @_guarded
    def _known(self, model: str) -> dict[str, tuple[int, int, int, str | None, bool, str | None]]:
        """path -> (id, size, mtime_ns, fingerprint, identified by `model`, error) of every photo."""
        return {
            path: (pid, size, mtime, fp, bool(identified), error)
            for pid, path, size, mtime, fp, error, identified in self.db.execute(
                "SELECT id, path, size, mtime_ns, fingerprint, error, "
                "EXISTS (SELECT 1 FROM identifications WHERE photo_id = photos.id AND model = ?) FROM photos",
                (model,),
            )
        }


def rebuild_library(path: Path) -> tuple[Path, list[Path]]:
    """Set a damaged library file aside and start a new one with the same folders, as far as
    they can still be read from it. Returns (where the damaged file now is, the folders kept).
    The photos themselves are never touched; indexing the folders again fills the new library."""
    path = Path(path)
    folders: list[Path] = []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS) as old:
            folders = [Path(p) for (p,) in old.execute("SELECT path FROM folders ORDER BY path")]
    except sqlite3.Error:
        pass  # the folders page is damaged too: the person names the folders again
    kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    number = 2
    while kept.exists():
        kept = kept.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{number}")
        number += 1
    if path.exists():
        os.replace(path, kept)
    for suffix in ("-wal", "-shm"):  # the damaged file's journal belongs with it, not with the new one
        journal = path.with_name(path.name + suffix)
        if journal.exists():
            os.replace(journal, kept.with_name(kept.name + suffix))
    with Library(path) as fresh:
        for folder in folders:
            fresh.add_folder(folder)
    return kept, folders


class IndexLock:
    """Only one indexer per library: an exclusive lock on `<library>.lock`, held while indexing.
    The operating system drops it when the process ends, however it ends, so a crash or a kill
    never leaves the library locked. (Not the database file itself: SQLite locks that one.)"""

    def __init__(self, library_path: Path) -> None:
        self.path = Path(library_path).with_name(Path(library_path).name + ".lock")
        self._handle = None

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


if os.name == "nt":
    import msvcrt

    def _try_lock(handle) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _lock(handle) -> None:
        while not _try_lock(handle):
            time.sleep(0.2)
else:
    import fcntl

    def _try_lock(handle) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise

    def _lock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # Ctrl+C interrupts the wait


@dataclass(frozen=True)
class _Work:
    path: Path
    size: int
    mtime_ns: int
    fingerprint: str | None  # None until the decoder threads compute it (see plan)
    file_changed: bool  # new or changed at its path: every model's identification of it is stale


@dataclass(frozen=True)
class _Decoded:
    image: object  # the RGB PIL image, or None when the photo could not be read
    metadata: tuple[str | None, float | None, float | None]  # taken_at, latitude, longitude
    error: str | None  # the sentence saying why it could not be read
    fingerprint: str | None  # None when the file's bytes could not be read at all
    vanished: bool = False  # deleted since the scan: not an error, the next run sees it gone
    keywords: tuple[str, ...] = ()  # what an editor (or the camera) already tagged it with


_NO_METADATA = (None, None, None)


@dataclass
class _OpenBatch:
    """A batch of photos decoded and being identified; committed in one transaction when done."""

    works: list[_Work]
    results: list[_Decoded]
    identified: dict[int, object]  # index in the batch -> its Identification


class IndexJob:
    """Indexing the library's folders with one model, one batch at a time, so that whoever runs
    it (the engine thread, between interactive requests; or the command line) decides when the
    next batch goes.

    `classify(images) -> list of core Identification` runs the model. Decoding of the next batch
    runs on a small thread pool while the current one is in the model.

    Creating a job takes the library's IndexLock: `wait_for_lock` blocks (calling `on_wait`
    first) while another indexer holds it; otherwise IndexerBusy is raised."""

    def __init__(
        self,
        library: Library,
        classify: Callable[[list], list],
        model_name: str,
        *,
        progress: Callable[[IndexProgress], None] | None = None,
        batch_size: int = BATCH_SIZE,
        decoders: int = 2,
        decode_size: tuple[int, int] = (384, 384),
        wait_for_lock: bool = False,
        on_wait: Callable[[], None] | None = None,
        species_names: Iterable[str] = (),
        range_prior=None,
        home_place: tuple[float, float] | None = None,
        prepare: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.library = library
        # Run on each decoded photo on the decoder threads, beside the model's forward: the
        # squash to the model's input size (~8 ms a 1000x750 draft) would otherwise wait in line
        # before each batch's forward on the indexing thread.
        self.prepare = prepare
        # core.range_prior.RangePrior, or None: with it, each photo with a place (its folder's or
        # its own set by the person, its GPS, else `home_place`) also gets the answer ranked
        # with what lives there that week, stored beside the picture's own.
        self.range_prior = range_prior
        self.home_place = home_place
        self.classify = classify
        # The model's species by lower-case name: a photo's own keyword that names one of them
        # becomes its label (source "keywords"), so years of keywording in an editor count.
        self.species_names = {name.casefold(): name for name in species_names}
        self.model_name = model_name
        self.progress = progress
        self.batch_size = batch_size
        self.decode_size = decode_size
        self.summary = IndexSummary()
        self.pending: list[_Work] = []
        self.done = 0
        library.require_writable()  # before the lock, whose file is made beside the library
        self._lock = IndexLock(library.path)
        self._lock.acquire(wait=wait_for_lock, on_wait=on_wait)
        self._pool = ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="birdid-decode",
                                        initializer=_decode_below_the_model)
        self._next: list[Future] | None = None
        self._batch: _OpenBatch | None = None  # the batch being identified, not yet committed
        self._pairs: dict[str, str] = {}  # RAW path -> the JPEG beside it, as planned
        self._scanning: Future | None = None
        self._started = time.monotonic()
        self.cancelled = threading.Event()

    # --- planning ----------------------------------------------------------------------------

    def start_scan(self) -> None:
        """Walk the folders on a pool thread; `plan_when_scanned` then plans from what it found.
        A big tree on a slow disk takes a while to walk, and the thread that runs this job must
        stay free for interactive requests meanwhile."""
        folders = self.library.folders()
        self._scanning = self._pool.submit(lambda: (folders, dict(_scan(folders, self.cancelled.is_set))))

    def plan_when_scanned(self, timeout: float) -> IndexSummary | None:
        """The plan, once the scan started by `start_scan` has finished; None if it is still
        walking after `timeout` seconds."""
        try:
            folders, found = self._scanning.result(timeout=timeout)
        except FutureTimeout:
            return None
        return self.plan(found=(folders, found))

    @_guarded
    def plan(self, found: tuple[list[Path], dict] | None = None) -> IndexSummary:
        """Scan the folders (unless `found` holds a scan already made) and work out the least to
        do: unchanged files this model has identified (or that could not be decoded) are skipped,
        moved or renamed ones re-pointed, deleted ones dropped, and new, changed, unreadable and
        not-yet-identified-by-this-model ones queued. A damaged library raises LibraryDamaged
        here, before any work, rather than part-way."""
        self.library.check_not_damaged()
        if found is None:
            folders = self.library.folders()
            found = (folders, dict(_scan(folders)))
        folders, found = found
        found, pairs = _pair_companions(found)
        known = self.library._known(self.model_name)
        self.summary.scanned = len(found)
        self.pending = []
        missing = {path: row for path, row in known.items() if path not in found and _inside_any(Path(path), folders)}
        by_fingerprint = {row[3]: (path, row) for path, row in missing.items() if row[3] is not None}
        missing_sizes = {row[1] for row in missing.values()}
        renames: list[tuple[str, int, int, int]] = []
        for path, (size, mtime) in sorted(found.items()):
            row = known.get(path)
            if row is not None and row[1] == size and row[2] == mtime and row[3] is not None:
                _, _, _, _, identified, error = row
                if identified or error is not None:
                    self.summary.unchanged += 1
                    continue
                # Unchanged, but this model has not identified it yet (another model did).
                self.pending.append(_Work(Path(path), size, mtime, row[3], file_changed=False))
                continue
            fp = None
            # Only a new path the size of a photo that went missing can be that photo moved: read
            # its fingerprint now. Every other file's is read later by the decoder threads, so a
            # first index of a big folder does not read half a megabyte per photo on this thread.
            if row is None and size in missing_sizes:
                try:
                    fp = fingerprint(Path(path), size)
                except PhotoError:
                    fp = None  # recorded with its error by the decoder threads
                if fp is not None and fp in by_fingerprint:
                    old_path, old_row = by_fingerprint.pop(fp)
                    del missing[old_path]
                    renames.append((path, size, mtime, old_row[0]))
                    if not old_row[4] and old_row[5] is None:  # moved, and this model lacks it
                        self.pending.append(_Work(Path(path), size, mtime, fp, file_changed=False))
                    continue
            # New, changed at its path, or never read (its fingerprint is missing).
            self.pending.append(_Work(Path(path), size, mtime, fp, file_changed=True))
        with self.library.db:
            self.library.db.executemany(
                "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE id = ?", renames
            )
            self.library.db.executemany("DELETE FROM photos WHERE id = ?", [(row[0],) for row in missing.values()])
            # The companions as found now: those of photos already in the library at once, the
            # others when their photo is committed (_commit).
            paired = set(pairs.values())
            gone = [(p,) for (p,) in self.library.db.execute("SELECT path FROM companions")
                    if p not in paired and _inside_any(Path(p), folders)]
            self.library.db.executemany("DELETE FROM companions WHERE path = ?", gone)
            self.library.db.executemany(
                "INSERT INTO companions (path, photo_id) SELECT ?, id FROM photos WHERE path = ? "
                "ON CONFLICT (path) DO UPDATE SET photo_id = excluded.photo_id",
                [(companion, raw) for raw, companion in pairs.items()],
            )
        self._pairs = pairs
        if self.library._vectors is not None:
            self.library._vectors.remove([row[0] for row in missing.values()])
        self.summary.renamed = len(renames)
        self.summary.removed = len(missing)
        self._started = time.monotonic()
        return self.summary

    @property
    def total(self) -> int:
        return self.done + len(self.pending) + (len(self._batch.works) if self._batch is not None else 0)

    def finished(self) -> bool:
        """Nothing left, or cancelled (a batch identified only in part is then left uncommitted:
        the next run does it)."""
        return (not self.pending and self._batch is None) or self.cancelled.is_set()

    # --- running -----------------------------------------------------------------------------

    @_guarded
    def step(self, photos: int | None = None) -> bool:
        """Identify the next photos and commit each batch once all of it is done; True while
        work remains. With `photos`, at most that many go through the model in this call, so a
        caller that must stay responsive (the window's engine) waits at most one small forward
        between steps; without, a whole batch goes in one forward."""
        if self._batch is None:
            if self.finished():
                self.close()
                return False
            self._batch = self._open_next_batch()
        batch = self._batch
        waiting = [i for i, result in enumerate(batch.results) if result.image is not None and i not in batch.identified]
        now = waiting if photos is None else waiting[:photos]
        if now:
            for i, identification in zip(now, self.classify([batch.results[i].image for i in now]), strict=True):
                batch.identified[i] = identification
        if len(now) < len(waiting):
            return True
        self._batch = None
        rows = [
            (replace(work, fingerprint=result.fingerprint), result, batch.identified.get(i))
            for i, (work, result) in enumerate(zip(batch.works, batch.results, strict=True))
            if not result.vanished  # deleted since the scan: the next run sees it gone
        ]
        self._commit(rows)
        self.done += len(batch.works)
        self._report(str(batch.works[-1].path))
        if self.finished():
            self.close()
            return False
        return True

    def _open_next_batch(self) -> _OpenBatch:
        """The next batch, decoded (it was being decoded while the previous one was identified),
        with the decoding of the one after it started."""
        works, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        decoded = self._next if self._next is not None else self._decode(works)
        self._next = self._decode(self.pending[: self.batch_size]) if self.pending else None
        return _OpenBatch(works, [future.result() for future in decoded], {})

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> IndexSummary:
        if not self.pending and not self.done:
            self.plan()
        while self.step():
            if should_stop():
                self.cancelled.set()
        self.close()
        return self.summary

    def close(self) -> None:
        self.cancelled.set()  # a scan still walking stops at its next folder
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._lock.release()

    def _decode(self, batch: list[_Work]) -> list[Future]:
        read_keywords = bool(self.species_names)
        return [self._pool.submit(_decode_for_index, work, self.decode_size, read_keywords, self.prepare) for work in batch]

    def _commit(self, rows: list[tuple[_Work, _Decoded, object]]) -> None:
        answers = self._place_answers(rows) if self.range_prior is not None else None
        store_rows(self.library, self.model_name, rows, pairs=self._pairs, species_names=self.species_names,
                   summary=self.summary, place_answers=answers,
                   geomodel_sha256=self.range_prior.geomodel.sha256 if self.range_prior is not None else None)

    def _place_answers(self, rows: list[tuple[_Work, _Decoded, object]]) -> list:

        places = self.library.assigned_places()
        answers = []
        for work, result, identification in rows:
            if identification is None:
                answers.append(None)
                continue
            where, _ = photo_where(places, work.path, *result.metadata, home_place=self.home_place)
            answers.append(None if where is None else self.range_prior.answer(identification.probabilities, where))
        return answers

    def _report(self, current: str) -> None:
        if self.progress is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.done / elapsed
        left = len(self.pending) / rate if rate > 0 else None
        self.progress(IndexProgress(self.done, self.total, rate, left, current))


def store_rows(
    library: Library,
    model_name: str,
    rows: list[tuple[_Work, _Decoded, object]],
    *,
    pairs: dict[str, str],
    species_names: dict[str, str],
    summary: IndexSummary,
    place_answers: list | None = None,
    geomodel_sha256: str | None = None,
) -> None:
    """Write photos as decoded and identified (`rows` of work, decoded result, Identification or
    None) into the library in one transaction, counting them in `summary`: the desktop indexer's
    commit, and `birdid library import`'s for rows computed elsewhere (core/shards.py).
    `pairs` maps a RAW path to the JPEG beside it; `species_names` maps lower-case names of the
    model's species to the names, for keywords that become labels. `place_answers`, beside
    `rows`: each photo's core.range_prior.PlaceAnswer (None where no place was known), from the
    range model whose SHA-256 is `geomodel_sha256`."""
    vectors_ids, vectors = [], []
    place_answers = place_answers if place_answers is not None else [None] * len(rows)
    with library.db:  # one transaction: the whole batch, or none of it
        db = library.db
        for (work, result, identification), place_answer in zip(rows, place_answers, strict=True):
            taken_at, latitude, longitude = result.metadata
            # A changed file keeps its row (and id): the upsert below rewrites it.
            photo_id = db.execute(
                "INSERT INTO photos (path, size, mtime_ns, fingerprint, taken_at, latitude, longitude, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "fingerprint = excluded.fingerprint, taken_at = excluded.taken_at, latitude = excluded.latitude, "
                "longitude = excluded.longitude, error = excluded.error RETURNING id",
                (str(work.path), work.size, work.mtime_ns, work.fingerprint, taken_at, latitude, longitude,
                 result.error),
            ).fetchone()[0]
            if str(work.path) in pairs:
                db.execute(
                    "INSERT INTO companions (path, photo_id) VALUES (?, ?) "
                    "ON CONFLICT (path) DO UPDATE SET photo_id = excluded.photo_id",
                    (pairs[str(work.path)], photo_id),
                )
            if work.file_changed:  # every model's identification described the old content
                db.execute("DELETE FROM identifications WHERE photo_id = ?", (photo_id,))
            else:
                db.execute(
                    "DELETE FROM identifications WHERE photo_id = ? AND model = ?", (photo_id, model_name)
                )
            _label_from_keywords(db, photo_id, result.keywords, species_names)
            if identification is None:
                summary.failed += 1
                continue
            summary.embedded += 1
            embedding = identification.embedding.astype(np.float32)
            db.execute(
                "INSERT INTO identifications (photo_id, model, embedding) VALUES (?, ?, ?)",
                (photo_id, model_name, embedding.tobytes()),
            )
            db.executemany(
                "INSERT INTO predictions (photo_id, model, rank, species, probability) VALUES (?, ?, ?, ?, ?)",
                [(photo_id, model_name, rank, s.name, s.probability)
                 for rank, s in enumerate(identification.ranked(TOP_SPECIES), start=1)],
            )
            if place_answer is not None:
                where = place_answer.where
                db.execute(
                    "INSERT INTO place_answers (photo_id, model, latitude, longitude, week, source, geomodel) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (photo_id, model_name, where.latitude, where.longitude, where.week, where.source, geomodel_sha256),
                )
                db.executemany(
                    "INSERT INTO place_predictions (photo_id, model, rank, species, probability, expected) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(photo_id, model_name, rank, s.name, s.probability, s.expected_here)
                     for rank, s in enumerate(place_answer.ranked(TOP_SPECIES), start=1)],
                )
            vectors_ids.append(photo_id)
            vectors.append(embedding)
    if library._vectors is not None and library._vectors_model == model_name and vectors_ids:
        library._vectors.upsert(np.asarray(vectors_ids), np.stack(vectors))


def place_set_for(places: dict[str, tuple[float, float, str | None]], path: Path
                  ) -> tuple[float, float, str | None, str] | None:
    """(latitude, longitude, name, "person" for the photo's own or "folder") of the place set for
    `path` or its nearest folder that has one, among `places` (Library.assigned_places()); None."""
    if not places:
        return None
    path = Path(path)
    for candidate in (path, *path.parents):
        found = places.get(str(candidate))
        if found is not None:
            return (*found, "person" if candidate == path else "folder")
    return None


def photo_where(places: dict, path: Path, taken_at: str | None, latitude, longitude, *,
                home_place: tuple[float, float] | None, option_place: tuple[float, float] | None = None,
                option_date=None):
    """core.place.resolve_where for a photo at `path`, with the place a person set for it or its
    folder among `places` (Library.assigned_places()): (Where or None, notes)."""
    from birdid_app.core.place import resolve_where

    assigned = place_set_for(places, path)
    return resolve_where(
        option_place=option_place, option_date=option_date, photo_taken_at=taken_at, photo_latitude=latitude,
        photo_longitude=longitude, assigned_place=assigned[:2] if assigned else None,
        assigned_source=assigned[3] if assigned else "person", settings_place=home_place,
    )


def refresh_place_answers(
    library: Library,
    model_name: str,
    range_prior,
    head: tuple[np.ndarray, np.ndarray],
    *,
    home_place: tuple[float, float] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    batch: int = 2048,
) -> int:
    """Bring every identified photo's answer with the range prior up to date, without running
    the image model: a range model installed after the photos were indexed, a place set for a
    folder since, a new home place. The picture's probabilities come from the stored embedding
    through the classifier layer `head` (weight [C, d], bias [C]): the same numbers the forward
    gave. Only photos whose place, week, source or range model would change are written.
    Returns how many were."""

    weight, bias = head
    geomodel_sha256 = range_prior.geomodel.sha256
    places = library.assigned_places()
    rows = library.db.execute(
        "SELECT photos.id, photos.path, photos.taken_at, photos.latitude, photos.longitude, "
        "answer.latitude, answer.longitude, answer.week, answer.source, answer.geomodel "
        "FROM identifications JOIN photos ON photos.id = identifications.photo_id "
        "LEFT JOIN place_answers AS answer ON answer.photo_id = identifications.photo_id AND answer.model = ? "
        "WHERE identifications.model = ?",
        (model_name, model_name),
    ).fetchall()
    stale: list[tuple[int, object]] = []  # (photo id, Where or None)
    for pid, path, taken_at, lat, lon, *kept in rows:
        where, _ = photo_where(places, Path(path), taken_at, lat, lon, home_place=home_place)
        now = None if where is None else (where.latitude, where.longitude, where.week, where.source, geomodel_sha256)
        if kept[0] is None and now is None:
            continue
        if now is None or kept[0] is None or tuple(kept) != now:
            stale.append((pid, where))
    written = 0
    for start in range(0, len(stale), batch):
        if should_stop():
            break
        chunk = stale[start : start + batch]
        ids = np.array([pid for pid, _ in chunk], dtype=np.int64)
        embeddings = library._embeddings(model_name, ids, weight.shape[1])  # [n, d]
        logits = embeddings @ weight.T + bias  # [n, C]
        logits -= logits.max(axis=1, keepdims=True)
        pictures = np.exp(logits)
        pictures /= pictures.sum(axis=1, keepdims=True)
        with library.db:
            for (pid, where), picture in zip(chunk, pictures, strict=True):
                library.db.execute("DELETE FROM place_answers WHERE photo_id = ? AND model = ?", (pid, model_name))
                if where is None or not np.all(np.isfinite(picture)):
                    continue
                answer = range_prior.answer(picture.astype(np.float32), where)
                library.db.execute(
                    "INSERT INTO place_answers (photo_id, model, latitude, longitude, week, source, geomodel) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (pid, model_name, where.latitude, where.longitude, where.week, where.source, geomodel_sha256),
                )
                library.db.executemany(
                    "INSERT INTO place_predictions (photo_id, model, rank, species, probability, expected) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(pid, model_name, rank, s.name, s.probability, s.expected_here)
                     for rank, s in enumerate(answer.ranked(TOP_SPECIES), start=1)],
                )
        written += len(chunk)
    return written


def _label_from_keywords(db, photo_id: int, keywords: tuple[str, ...], species_names: dict[str, str]) -> None:
    """Label the photo with the first of its keywords that names one of the model's species,
    unless it has a label already (the person's own always wins)."""
    named = next((species_names[k.casefold()] for k in keywords if k.casefold() in species_names), None)
    if named is not None:
        db.execute(
            "INSERT INTO labels (photo_id, species, set_at, source) VALUES (?, ?, ?, 'keywords') "
            "ON CONFLICT (photo_id) DO NOTHING",
            (photo_id, named, _utc_now()),
        )


DECODER_NICENESS = 10  # how much lower than the model's threads a decoder thread is scheduled (Linux)


def _decode_below_the_model() -> None:
    """Run this decoder thread below the model's (and the window's) threads. On two cores a
    decoder that takes a core from one of torch's threads holds up the whole parallel step until
    it gives it back, so the forward loses twice the decoder's time; below them, it decodes in the
    gaps the forward leaves and otherwise waits. Linux only (a thread's own nice value); elsewhere
    the threads run at the process's priority."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODER_NICENESS)
        except OSError:
            pass  # not allowed here: decoding at the process's priority still works


def _decode_for_index(work: _Work, size: tuple[int, int], read_keywords: bool = False,
                      prepare: Callable[[Image.Image], Image.Image] | None = None) -> _Decoded:
    """The photo decoded for the model (and passed through `prepare`), with its metadata and
    fingerprint, on a decoder thread. Never raises for anything about the file: whatever is wrong
    with it is its recorded error."""
    try:
        fp = work.fingerprint or fingerprint(work.path, work.size)
    except PhotoError as error:
        if not os.path.lexists(work.path):
            return _Decoded(None, _NO_METADATA, None, None, vanished=True)
        return _Decoded(None, _NO_METADATA, str(error), None)
    try:
        image = decode_photo(work.path, draft_size=size)
    except PhotoError as error:
        return _Decoded(None, _NO_METADATA, str(error), fp)
    if prepare is not None:
        image = prepare(image)
    return _Decoded(image, photo_metadata(work.path), None, fp, keywords=_keywords(work.path) if read_keywords else ())


def _keywords(path: Path) -> tuple[str, ...]:
    """The keywords of the photo and its sidecars; none when they cannot be read (an unreadable
    sidecar is the keywords command's to report, not the indexer's)."""
    from birdid_app.core.sidecar import SidecarError, read_keywords  # exiv2: only when indexing

    try:
        return tuple(read_keywords(path))
    except SidecarError:
        return ()


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


def _utc_now() -> str:
    """When a label was set: ISO 8601, in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _inside_any(path: Path, folders: list[Path]) -> bool:
    return any(_inside(path, folder) for folder in folders)


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
