"""The photo library: a person's own photos, identified once, searchable by similarity and species.

`Library` is the library file (schema.py) opened (database.py), and every question asked of it
and every change a person makes to it (folders, labels, places). Indexing writes it through
rows.py, driven by index_job.py; rebuild.py starts a damaged one again.

The embeddings are also held in memory as one matrix (`VectorIndex`) for exact cosine search.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from birdid_app.core.library.database import (
    _damage_detail,
    _guarded,
    _library_file_exists,
    _writable,
    connect,
    default_library_path,
    prepare,
    rows_for_ids,
)
from birdid_app.core.library.errors import LibraryDamaged, LibraryError, LibraryReadOnly
from birdid_app.core.library.export import write_photos_csv
from birdid_app.core.library.places import place_set_for
from birdid_app.core.library.scan import _inside
from birdid_app.core.library.schema import (
    LABEL_SOURCES,
    RANKINGS,
    UNKNOWN_SPECIES,
    LibraryPhoto,
    _utc_now,
)
from birdid_app.core.library.vectors import VectorIndex

_VECTOR_LOAD_ROWS = 65_536  # embeddings read per step when the index is loaded (200 MB at 768-d)


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
            self.db = connect(self.path, self.read_only)
        except sqlite3.DatabaseError as error:
            raise LibraryError(f"The library {self.path} cannot be opened ({error}).") from None
        try:
            prepare(self.db, self.path, self.read_only)
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

    def close(self) -> None:
        self.db.close()

    def require_writable(self) -> None:
        """Raise LibraryReadOnly, naming the file, if this library was opened read-only: before a
        job that writes, so it stops before any work rather than at its first write."""
        if self.read_only:
            raise LibraryReadOnly(self.path)

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_guarded
    def data_version(self) -> int:
        """SQLite's count of this file's changes made through other connections (PRAGMA
        data_version): a reader compares two to learn whether the indexer has committed since."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

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
        self.vectors_removed(gone)
        return len(gone)

    # --- reading -----------------------------------------------------------------------------

    @_guarded
    def count(self) -> int:
        """Photos in the library, read or not, whatever model identified them."""
        return self.db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def photo(self, photo_id: int) -> LibraryPhoto:
        return self._photos([photo_id])[photo_id]

    @_guarded
    def paths_by_id(self, ids: Iterable[int] | None = None) -> dict[int, Path]:
        """photo id -> its path, for the photos `ids` that are in the library (every photo for
        None), without reading their predictions."""
        if ids is None:
            return {pid: Path(path) for pid, path in self.db.execute("SELECT id, path FROM photos")}
        rows = rows_for_ids(self.db, "SELECT id, path FROM photos WHERE id IN ({ids})", [int(pid) for pid in ids])
        return {pid: Path(path) for pid, path in rows}

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
                    read_back = functools.partial(self.stored_embeddings, model, dim=matrix.shape[1])
                    index = VectorIndex(matrix.shape[1], exact_rows=read_back)
                    index.reserve(count)
                index.upsert(ids, matrix)
            self._vectors = index if index is not None else VectorIndex()
            self._vectors_model = model
        return self._vectors

    def invalidate_vectors(self) -> None:
        """Drop the embeddings held in memory, so the next search reads them from the file again
        (another connection, the indexer's, has changed them)."""
        self._vectors = None

    def vectors_removed(self, ids: list[int]) -> None:
        """Keep the index in memory, if loaded, in step with photos deleted from the file."""
        if self._vectors is not None:
            self._vectors.remove(ids)

    def vectors_stored(self, model: str, ids: list[int], embeddings: list[np.ndarray]) -> None:
        """Keep the index in memory, if loaded for `model`, in step with embeddings [d] by `model`
        just committed for photos `ids`."""
        if self._vectors is not None and self._vectors_model == model and ids:
            self._vectors.upsert(np.asarray(ids), np.stack(embeddings))

    @_guarded
    def embedding_width(self, model: str) -> int | None:
        """How many values the embeddings by `model` here have; None when it has identified none."""
        stored = self.db.execute(
            "SELECT length(embedding) FROM identifications WHERE model = ? LIMIT 1", (model,)).fetchone()
        return None if stored is None else stored[0] // 4

    def stored_embeddings(self, model: str | None, ids: np.ndarray, dim: int) -> np.ndarray:
        """The float32 embeddings [n, dim] by `model` of photos `ids` [n], in that order; a row of
        NaN for a photo that has none (removed since the index was loaded)."""
        vectors = np.full((ids.shape[0], dim), np.nan, dtype=np.float32)
        row_of = {photo_id: row for row, photo_id in enumerate(ids.tolist())}
        for photo_id, embedding in rows_for_ids(
            self.db, "SELECT photo_id, embedding FROM identifications WHERE model = ? AND photo_id IN ({ids})",
            list(row_of), first=(model,),
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
        embeddings = self.stored_embeddings(self._vectors_model, ids, index.dim)
        return embeddings[np.isfinite(embeddings).all(axis=1)]  # a photo removed meanwhile is left out

    @_guarded
    def top_species(self, model: str | None) -> dict[int, str]:
        """photo id -> the top species `model` gave it, for every photo `model` identified."""
        return dict(self.db.execute(
            "SELECT photo_id, species FROM predictions WHERE model = ? AND rank = 1", (model,)
        ).fetchall())

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
        0.85), chained in time (core/library/groups.py's burst_groups); each group in time order, groups
        by their first frame. Photos without a capture date that can be read, or not identified
        by the reading model, are left out."""
        from birdid_app.core.library.groups import BURST_SECONDS, BURST_THRESHOLD, burst_groups, capture_seconds

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
        return write_photos_csv(destination, self.all_photos())

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
    def known(self, model: str) -> dict[str, tuple[int, int, int, str | None, bool, str | None]]:
        """path -> (id, size, mtime_ns, fingerprint, identified by `model`, error) of every photo."""
        return {
            path: (pid, size, mtime, fp, bool(identified), error)
            for pid, path, size, mtime, fp, error, identified in self.db.execute(
                "SELECT id, path, size, mtime_ns, fingerprint, error, "
                "EXISTS (SELECT 1 FROM identifications WHERE photo_id = photos.id AND model = ?) FROM photos",
                (model,),
            )
        }
