"""The photo library: a person's own photos, identified once, searchable by similarity and species.

One SQLite file (WAL mode) holds, per photo: where it is, its size and mtime, a content
fingerprint, capture date and GPS from EXIF, the embedding, the top-5 species and the model that
made them, or the error that stopped it. Indexing commits in batches, one transaction each, so a
process killed at any moment leaves a consistent file and loses at most the batch under way;
the next run sees what is done (same size and mtime) and carries on.

The embeddings are also held in memory as one matrix (`VectorIndex`) for exact cosine search.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from birdid_app.core.errors import BirdidError, PhotoError
from birdid_app.core.paths import data_dir
from birdid_app.core.photo import IMAGE_SUFFIXES, decode_photo, photo_metadata
from birdid_app.core.vectors import VectorIndex

LIBRARY_VARIABLE = "BIRDID_LIBRARY"
SCHEMA_VERSION = 1
TOP_SPECIES = 5
BATCH_SIZE = 8  # photos per forward pass and per committed transaction
FINGERPRINT_SAMPLE = 256 * 1024  # bytes read from the start and from the end of a file

_SCHEMA = [
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
# Version N's schema is reached from N-1 by MIGRATIONS[N]; version 1 is _SCHEMA from nothing.
MIGRATIONS: dict[int, list[str]] = {1: _SCHEMA}


class LibraryError(BirdidError):
    """The library file cannot be used (newer schema, damaged)."""


@dataclass(frozen=True)
class LibraryPhoto:
    id: int
    path: Path
    taken_at: str | None
    latitude: float | None
    longitude: float | None
    species: tuple[tuple[str, float], ...]  # top-5, most likely first
    model: str | None
    error: str | None


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
    recognise a moved or renamed photo without reading all of it."""
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_SAMPLE))
        if size > 2 * FINGERPRINT_SAMPLE:
            handle.seek(-FINGERPRINT_SAMPLE, os.SEEK_END)
            digest.update(handle.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()


class Library:
    """The library file. One instance is the one writer; open it in the thread that uses it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_library_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
        self.db.execute("PRAGMA foreign_keys = ON")
        self._migrate()
        self._vectors: VectorIndex | None = None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LibraryError(f"The library {self.path} was made by a newer birdid (schema {version}).")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            # An explicit transaction: Python's sqlite3 would run CREATE TABLE outside one, and a
            # process killed half-way would leave half a schema (the kill test caught that).
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[step]:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {step}")
            except BaseException:
                self.db.rollback()
                raise
            self.db.commit()

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # --- folders -----------------------------------------------------------------------------

    def folders(self) -> list[Path]:
        return [Path(p) for (p,) in self.db.execute("SELECT path FROM folders ORDER BY path")]

    def add_folder(self, folder: Path) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO folders (path) VALUES (?)", (str(Path(folder).resolve()),))

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

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def photo(self, photo_id: int) -> LibraryPhoto:
        return self._photos([photo_id])[photo_id]

    def photo_by_path(self, path: Path) -> LibraryPhoto | None:
        row = self.db.execute("SELECT id FROM photos WHERE path = ?", (str(Path(path).resolve()),)).fetchone()
        return self.photo(row[0]) if row else None

    def vectors(self) -> VectorIndex:
        """Every stored embedding as one in-memory matrix, loaded on first use, then kept in step."""
        if self._vectors is None:
            rows = self.db.execute("SELECT id, embedding FROM photos WHERE embedding IS NOT NULL").fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            self._vectors = VectorIndex.from_arrays(ids, matrix) if len(rows) else VectorIndex()
        return self._vectors

    def similar(self, embedding: np.ndarray, k: int, exclude: Iterable[int] = ()) -> list[tuple[LibraryPhoto, float]]:
        hits = self.vectors().search(np.asarray(embedding, dtype=np.float32), k, exclude=exclude)
        photos = self._photos([pid for pid, _ in hits])
        return [(photos[pid], score) for pid, score in hits]

    def similar_to_photo(self, photo_id: int, k: int) -> list[tuple[LibraryPhoto, float]]:
        return self.similar(self.vectors().vector(photo_id), k, exclude=[photo_id])

    def find_species(self, species: str, *, in_top: int = 1) -> list[tuple[LibraryPhoto, float]]:
        """Photos whose top prediction (or one of the top `in_top`) is `species`, most likely first."""
        rows = self.db.execute(
            "SELECT photo_id, probability FROM predictions WHERE species = ? AND rank <= ? "
            "ORDER BY probability DESC, photo_id",
            (species, in_top),
        ).fetchall()
        photos = self._photos([pid for pid, _ in rows])
        return [(photos[pid], probability) for pid, probability in rows]

    def species_counts(self) -> list[tuple[str, int]]:
        """How many photos each species is the top prediction of, most first."""
        return self.db.execute(
            "SELECT species, COUNT(*) FROM predictions WHERE rank = 1 GROUP BY species ORDER BY 2 DESC, 1"
        ).fetchall()

    def duplicate_groups(self, threshold: float) -> list[list[LibraryPhoto]]:
        groups = self.vectors().near_duplicate_groups(threshold)
        photos = self._photos([pid for group in groups for pid in group])
        return [[photos[pid] for pid in group] for group in groups]

    def export_csv(self, destination: Path) -> int:
        """path, date, GPS, top-5 species and probabilities, model, error; one row per photo."""
        header = ["path", "taken_at", "latitude", "longitude"]
        for rank in range(1, TOP_SPECIES + 1):
            header += [f"species_{rank}", f"probability_{rank}"]
        header += ["model", "error"]
        ids = [pid for (pid,) in self.db.execute("SELECT id FROM photos ORDER BY path")]
        photos = self._photos(ids)
        partial = Path(destination).with_name(f".{Path(destination).name}.partial")
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for pid in ids:
                p = photos[pid]
                row = [str(p.path), p.taken_at or "", _blank(p.latitude), _blank(p.longitude)]
                for rank in range(TOP_SPECIES):
                    name, probability = p.species[rank] if rank < len(p.species) else ("", None)
                    row += [name, "" if probability is None else f"{probability:.6f}"]
                writer.writerow(row + [p.model or "", p.error or ""])
        partial.replace(destination)
        return len(ids)

    def _photos(self, ids: list[int]) -> dict[int, LibraryPhoto]:
        if not ids:
            return {}
        found: dict[int, LibraryPhoto] = {}
        species: dict[int, list[tuple[str, float]]] = {pid: [] for pid in ids}
        for start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for pid, name, probability in self.db.execute(
                f"SELECT photo_id, species, probability FROM predictions WHERE photo_id IN ({marks}) "
                "ORDER BY photo_id, rank",
                chunk,
            ):
                species[pid].append((name, probability))
            for pid, path, taken_at, lat, lon, model, error in self.db.execute(
                f"SELECT id, path, taken_at, latitude, longitude, model, error FROM photos WHERE id IN ({marks})",
                chunk,
            ):
                found[pid] = LibraryPhoto(pid, Path(path), taken_at, lat, lon, tuple(species[pid]), model, error)
        return found

    # --- writing (the indexer's) -------------------------------------------------------------

    def _known(self) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, fingerprint) of every photo in the index."""
        return {
            path: (pid, size, mtime, fp)
            for pid, path, size, mtime, fp in self.db.execute("SELECT id, path, size, mtime_ns, fingerprint FROM photos")
        }


@dataclass(frozen=True)
class _Work:
    path: Path
    size: int
    mtime_ns: int
    fingerprint: str | None  # None until the decoder threads compute it (see plan)


class IndexJob:
    """Indexing the library's folders, one batch at a time, so that whoever runs it (the engine
    thread, between interactive requests; or the command line) decides when the next batch goes.

    `classify(images) -> list of core Identification` runs the model. Decoding of the next batch
    runs on a small thread pool while the current one is in the model."""

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
    ) -> None:
        self.library = library
        self.classify = classify
        self.model_name = model_name
        self.progress = progress
        self.batch_size = batch_size
        self.decode_size = decode_size
        self.summary = IndexSummary()
        self.pending: list[_Work] = []
        self.done = 0
        self._pool = ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="birdid-decode")
        self._next: list[Future] | None = None
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

    def plan(self, found: tuple[list[Path], dict] | None = None) -> IndexSummary:
        """Scan the folders (unless `found` holds a scan already made) and work out the least to
        do: unchanged files are skipped, moved or renamed ones re-pointed, deleted ones dropped,
        new or changed ones queued."""
        if found is None:
            folders = self.library.folders()
            found = (folders, dict(_scan(folders)))
        folders, found = found
        known = self.library._known()
        self.summary.scanned = len(found)
        missing = {path: row for path, row in known.items() if path not in found and _inside_any(Path(path), folders)}
        by_fingerprint = {row[3]: (path, row) for path, row in missing.items()}
        missing_sizes = {row[1] for row in missing.values()}
        renames: list[tuple[str, int, int, int]] = []
        for path, (size, mtime) in sorted(found.items()):
            row = known.get(path)
            if row is not None and row[1] == size and row[2] == mtime:
                self.summary.unchanged += 1
                continue
            fp = None
            # Only a new path the size of a photo that went missing can be that photo moved: read
            # its fingerprint now. Every other file's is read later by the decoder threads, so a
            # first index of a big folder does not read half a megabyte per photo on this thread.
            if row is None and size in missing_sizes:
                try:
                    fp = fingerprint(Path(path), size)
                except OSError:
                    continue  # vanished or unreadable since the scan: the next run sees it again
                if fp in by_fingerprint:
                    old_path, old_row = by_fingerprint.pop(fp)
                    del missing[old_path]
                    renames.append((path, size, mtime, old_row[0]))
                    continue
            self.pending.append(_Work(Path(path), size, mtime, fp))  # new, or changed at its path
        with self.library.db:
            self.library.db.executemany(
                "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE id = ?", renames
            )
            self.library.db.executemany("DELETE FROM photos WHERE id = ?", [(row[0],) for row in missing.values()])
        if self.library._vectors is not None:
            self.library._vectors.remove([row[0] for row in missing.values()])
        self.summary.renamed = len(renames)
        self.summary.removed = len(missing)
        self._started = time.monotonic()
        return self.summary

    @property
    def total(self) -> int:
        return self.done + len(self.pending)

    def finished(self) -> bool:
        return not self.pending or self.cancelled.is_set()

    # --- running -----------------------------------------------------------------------------

    def step(self) -> bool:
        """Decode, identify and commit one batch; True while work remains."""
        if self.finished():
            self.close()
            return False
        batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        decoded = self._next if self._next is not None else self._decode(batch)
        self._next = self._decode(self.pending[: self.batch_size]) if self.pending else None
        results = [future.result() for future in decoded]
        images = [image for image, _, _, _ in results if image is not None]
        identifications = iter(self.classify(images) if images else [])
        rows = []
        for work, (image, metadata, error, fp) in zip(batch, results, strict=True):
            identification = next(identifications) if image is not None else None
            if fp is None:
                continue  # vanished or unreadable since the scan: the next run sees it again
            rows.append((replace(work, fingerprint=fp), metadata, error, identification))
        self._commit(rows)
        self.done += len(batch)
        self._report(str(batch[-1].path))
        if self.finished():
            self.close()
            return False
        return True

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

    def _decode(self, batch: list[_Work]) -> list[Future]:
        return [self._pool.submit(_decode_for_index, work, self.decode_size) for work in batch]

    def _commit(self, rows) -> None:
        vectors_ids, vectors = [], []
        with self.library.db:  # one transaction: the whole batch, or none of it
            db = self.library.db
            for work, metadata, error, identification in rows:
                taken_at, latitude, longitude = metadata
                # A changed file keeps its row (and id): the upsert below rewrites it.
                embedding = identification.embedding.astype(np.float32).tobytes() if identification else None
                cursor = db.execute(
                    "INSERT INTO photos (path, size, mtime_ns, fingerprint, taken_at, latitude, longitude, model, "
                    "error, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                    "fingerprint = excluded.fingerprint, taken_at = excluded.taken_at, latitude = excluded.latitude, "
                    "longitude = excluded.longitude, model = excluded.model, error = excluded.error, "
                    "embedding = excluded.embedding RETURNING id",
                    (str(work.path), work.size, work.mtime_ns, work.fingerprint, taken_at, latitude, longitude,
                     self.model_name if identification else None, error, embedding),
                )
                photo_id = cursor.fetchone()[0]
                db.execute("DELETE FROM predictions WHERE photo_id = ?", (photo_id,))
                if identification is None:
                    self.summary.failed += 1
                    continue
                self.summary.embedded += 1
                db.executemany(
                    "INSERT INTO predictions (photo_id, rank, species, probability) VALUES (?, ?, ?, ?)",
                    [(photo_id, rank, s.name, s.probability)
                     for rank, s in enumerate(identification.ranked(TOP_SPECIES), start=1)],
                )
                vectors_ids.append(photo_id)
                vectors.append(identification.embedding)
        if self.library._vectors is not None and vectors_ids:
            self.library._vectors.upsert(np.asarray(vectors_ids), np.stack(vectors))

    def _report(self, current: str) -> None:
        if self.progress is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.done / elapsed
        left = len(self.pending) / rate if rate > 0 else None
        self.progress(IndexProgress(self.done, self.total, rate, left, current))


def _decode_for_index(work: _Work, size: tuple[int, int]):
    """(image or None, (taken_at, latitude, longitude), error or None, fingerprint or None when
    the file cannot be read at all), on a decoder thread."""
    try:
        fp = work.fingerprint or fingerprint(work.path, work.size)
    except OSError:
        return None, (None, None, None), None, None
    try:
        metadata = photo_metadata(work.path)
        return decode_photo(work.path, draft_size=size), metadata, None, fp
    except PhotoError as error:
        return None, (None, None, None), str(error), fp


def _scan(folders: list[Path], should_stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, tuple[int, int]]]:
    """(resolved path, (size, mtime_ns)) of every photo under the folders. Follows symbolic links
    but visits each real folder once (no loops); unreadable folders and files that vanish while
    scanning are passed over. Stops at the next folder once `should_stop()` says so."""
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
                path = Path(root) / name
                try:
                    info = path.stat()
                    resolved = str(path.resolve())
                except OSError:
                    continue
                yield resolved, (info.st_size, info.st_mtime_ns)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _inside_any(path: Path, folders: list[Path]) -> bool:
    return any(_inside(path, folder) for folder in folders)


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
