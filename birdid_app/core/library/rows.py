"""Writing what indexing found into the library: the photos as decoded and identified, in one
transaction a batch (store_rows, the desktop indexer's and `birdid library import`'s), what
planning an index found moved, gone or paired, and each photo's answer with the range prior
brought up to date without the image model (refresh_place_answers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from birdid_app.core.library.library import Library
from birdid_app.core.library.places import photo_where
from birdid_app.core.library.scan import _inside_any
from birdid_app.core.library.schema import TOP_SPECIES, _utc_now

if TYPE_CHECKING:
    from PIL import Image

    from birdid_app.core.model.inference import Identification
    from birdid_app.core.places.place import Where
    from birdid_app.core.places.range_prior import PlaceAnswer, RangePrior


@dataclass(frozen=True)
class _Work:
    path: Path
    size: int
    mtime_ns: int
    fingerprint: str | None  # None until the decoder threads compute it (see plan)
    file_changed: bool  # new or changed at its path: every model's identification of it is stale


@dataclass(frozen=True)
class _Decoded:
    image: Image.Image | None  # the RGB PIL image (as `prepare` left it), or None when the photo could not be read
    metadata: tuple[str | None, float | None, float | None]  # taken_at, latitude, longitude
    error: str | None  # the sentence saying why it could not be read
    fingerprint: str | None  # None when the file's bytes could not be read at all
    vanished: bool = False  # deleted since the scan: not an error, the next run sees it gone
    keywords: tuple[str, ...] = ()  # what an editor (or the camera) already tagged it with
    grey: Image.Image | None = None  # a grey copy to score sharpness on, while culling is on


@dataclass
class IndexSummary:
    scanned: int = 0
    embedded: int = 0
    renamed: int = 0
    removed: int = 0
    failed: int = 0
    unchanged: int = 0


def store_rows(
    library: Library,
    model_name: str,
    rows: list[tuple[_Work, _Decoded, Identification | None]],
    *,
    pairs: dict[str, str],
    species_names: dict[str, str],
    summary: IndexSummary,
    place_answers: list[PlaceAnswer | None] | None = None,
    geomodel_sha256: str | None = None,
    sharpness: list[float | None] | None = None,
) -> None:
    """Write photos as decoded and identified (`rows` of work, decoded result, Identification or
    None) into the library in one transaction, counting them in `summary`: the desktop indexer's
    commit, and `birdid library import`'s for rows computed elsewhere (core/library/shards.py).
    `pairs` maps a RAW path to the JPEG beside it; `species_names` maps lower-case names of the
    model's species to the names, for keywords that become labels. `place_answers`, beside
    `rows`: each photo's core.range_prior.PlaceAnswer (None where no place was known), from the
    range model whose SHA-256 is `geomodel_sha256`. `sharpness`, beside `rows`: each photo's
    sharpness on the bird (core/photos/sharpness.py), None where it was not scored."""
    vectors_ids: list[int] = []
    vectors: list[np.ndarray] = []
    place_answers = place_answers if place_answers is not None else [None] * len(rows)
    scores = sharpness if sharpness is not None else [None] * len(rows)
    with library.db:  # one transaction: the whole batch, or none of it
        db = library.db
        for (work, result, identification), place_answer, score in zip(rows, place_answers, scores, strict=True):
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
            if score is not None or work.file_changed:  # a changed file's old score described the old content
                db.execute("UPDATE photos SET sharpness = ? WHERE id = ?", (score, photo_id))
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
                where = cast("Where", place_answer.where)
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
    library.vectors_stored(model_name, vectors_ids, vectors)


def apply_plan(library: Library, folders: list[Path], renames: list[tuple[str, int, int, int]], removed: list[int],
               pairs: dict[str, str]) -> None:
    """Write what planning an index found, in one transaction: photos moved or renamed
    (`renames`: new path, size, mtime_ns, id), photos gone (`removed` ids), and the companions
    as found now under `folders` (`pairs`: RAW path -> the JPEG beside it): those of photos
    already in the library at once, the others when their photo is stored (store_rows)."""
    with library.db:
        library.db.executemany("UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE id = ?", renames)
        library.db.executemany("DELETE FROM photos WHERE id = ?", [(pid,) for pid in removed])
        paired = set(pairs.values())
        gone = [(p,) for (p,) in library.db.execute("SELECT path FROM companions")
                if p not in paired and _inside_any(Path(p), folders)]
        library.db.executemany("DELETE FROM companions WHERE path = ?", gone)
        library.db.executemany(
            "INSERT INTO companions (path, photo_id) SELECT ?, id FROM photos WHERE path = ? "
            "ON CONFLICT (path) DO UPDATE SET photo_id = excluded.photo_id",
            [(companion, raw) for raw, companion in pairs.items()],
        )
    library.vectors_removed(removed)


def refresh_place_answers(
    library: Library,
    model_name: str,
    range_prior: RangePrior,
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
    stale: list[tuple[int, Where | None]] = []
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
        embeddings = library.stored_embeddings(model_name, ids, weight.shape[1])  # [n, d]
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


def _label_from_keywords(db: sqlite3.Connection, photo_id: int, keywords: tuple[str, ...], species_names: dict[str, str]) -> None:
    """Label the photo with the first of its keywords that names one of the model's species,
    unless it has a label already (the person's own always wins)."""
    named = next((species_names[k.casefold()] for k in keywords if k.casefold() in species_names), None)
    if named is not None:
        db.execute(
            "INSERT INTO labels (photo_id, species, set_at, source) VALUES (?, ?, ?, 'keywords') "
            "ON CONFLICT (photo_id) DO NOTHING",
            (photo_id, named, _utc_now()),
        )
