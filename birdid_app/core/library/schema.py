"""The library file's tables, each version's migration from the one before, and the names its
rows use.

One SQLite file (WAL mode) holds, per photo: where it is, its size and mtime, a content
fingerprint, capture date and GPS from EXIF, or the error that stopped it from being read; and,
per photo and per model, the embedding and top-5 species that model gave it. Embeddings of two
models are never compared: a library is always read through one model (`Library.model`), and
indexing with a model fills in only what that model lacks.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from birdid_app.core.library.errors import LibraryError

SCHEMA_VERSION = 6
TOP_SPECIES = 5
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
# picture's own: the place and week used, and its top species (core/places/range_prior.py).
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
# Version 6: culling. Each photo's sharpness on the bird (core/photos/sharpness.py; NULL until
# scored: photos indexed before are scored by the next index or by `birdid cull`), and the
# person's cull, apart from the photo's content like a label: kept through re-indexing and renames.
_V5_TO_V6 = [
    "ALTER TABLE photos ADD COLUMN sharpness REAL",  # the variance of the Laplacian on the bird
    """CREATE TABLE culls (
        photo_id INTEGER PRIMARY KEY REFERENCES photos (id) ON DELETE CASCADE,
        rating INTEGER NOT NULL CHECK (rating BETWEEN -1 AND 5),  -- -1 rejected, 0 no stars, 1..5 stars
        picked INTEGER NOT NULL CHECK (picked IN (0, 1)),
        set_at TEXT NOT NULL,  -- when, ISO 8601 in UTC
        source TEXT NOT NULL  -- "person", or "birdid" (`birdid cull --write` rejected it)
    )""",
]
# Version N's schema is reached from N-1 by MIGRATIONS[N]; version 1 is _SCHEMA_V1 from nothing.
MIGRATIONS: dict[int, list[str]] = {1: _SCHEMA_V1, 2: _V1_TO_V2, 3: _V2_TO_V3, 4: _V3_TO_V4, 5: _V4_TO_V5,
                                    6: _V5_TO_V6}
RANKINGS = ("picture", "place")  # what find reads: the picture's own answer, or the one with the range prior
# Labels for what is not one of the model's species.
NOT_A_BIRD = "not a bird"
UNKNOWN_SPECIES = "unknown species"
LABEL_SOURCES = ("person", "keywords")


@dataclass(frozen=True)
class LibraryPhoto:
    """A photo as the library holds it, read through one model."""

    id: int
    path: Path
    taken_at: str | None
    latitude: float | None
    longitude: float | None
    species: tuple[tuple[str, float], ...]  # the reading model's top-5, most likely first
    model: str | None  # the model those species are from; None when it has not identified this photo
    error: str | None
    label: str | None = None  # the person's own: a species, NOT_A_BIRD or UNKNOWN_SPECIES; None if unset


def _utc_now() -> str:
    """When a label was set: ISO 8601, in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def schema_version(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of the library `db` (at `path`, for the sentence); LibraryError for
    one made by a newer birdid."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LibraryError(f"The library {path} was made by a newer birdid (schema {version}).")
    return version


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the library `db` (at `path`) to SCHEMA_VERSION, in one transaction."""
    if schema_version(db, path) == SCHEMA_VERSION:
        return
    # An explicit transaction: Python's sqlite3 would run CREATE TABLE outside one, and a
    # process killed half-way would leave half a schema (the kill test caught that).
    # IMMEDIATE takes the write lock first, waiting out another process that is creating or
    # migrating the same file; the version is read again under the lock, as that process
    # may have done the work meanwhile.
    db.execute("BEGIN IMMEDIATE")
    try:
        for step in range(schema_version(db, path) + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {step}")
    except BaseException:
        db.rollback()
        raise
    db.commit()
