"""Culling: each burst's frames by sharpness on the bird, the best one suggested, and the person's
pick, reject and rating, kept in the library and written to XMP for their editor.

Sharpness is stored per photo by indexing (rows.py, from core/photos/sharpness.py) or later by
`birdid cull`; the cull (schema.py's `culls` table) is the person's, like a label: re-indexing
keeps it. The keys are Lightroom's and darktable's: P pick, X reject, 1-5 stars, 0 clears.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from birdid_app.core.library.database import _guarded, rows_for_ids
from birdid_app.core.library.library import Library
from birdid_app.core.library.scan import resolved, why_not_written
from birdid_app.core.library.schema import LibraryPhoto, _utc_now

if TYPE_CHECKING:
    from birdid_app.core.photos.sidecar import SidecarStyle

REJECTED = -1  # the rating of a rejected photo, as xmp:Rating has it
CULL_SOURCES = ("person", "birdid")  # who set a cull: the person, or `birdid cull --write`
CULL_KEYS = ("P", "X", "0", "1", "2", "3", "4", "5")


@dataclass(frozen=True)
class Cull:
    rating: int = 0  # -1 rejected, 0 no stars, 1..5 stars
    picked: bool = False

    @property
    def rejected(self) -> bool:
        return self.rating == REJECTED

    @property
    def empty(self) -> bool:
        return self.rating == 0 and not self.picked

    def describe(self) -> str:
        """A few characters for a thumbnail: "Pick", "Reject", stars, or ""."""
        parts = ["Pick"] if self.picked else []
        if self.rejected:
            parts.append("Reject")
        elif self.rating:
            parts.append("★" * self.rating)
        return " ".join(parts)


def cull_after_key(cull: Cull, key: str) -> Cull:
    """The cull after the person presses `key` (one of CULL_KEYS): P picks (and takes a reject
    back), X rejects (and takes a pick back), 1-5 give stars (a rejected photo is no longer
    rejected), 0 clears the rating and the pick."""
    key = key.upper()
    if key == "P":
        return Cull(0 if cull.rejected else cull.rating, True)
    if key == "X":
        return Cull(REJECTED, False)
    if key == "0":
        return Cull()
    if key in ("1", "2", "3", "4", "5"):
        return replace(cull, rating=int(key))
    raise ValueError(f"{key!r} is not a culling key; the keys are {', '.join(CULL_KEYS)}.")


@_guarded
def set_sharpness(library: Library, scores: dict[int, float]) -> None:
    """Store each photo's sharpness on the bird (photo id -> score), in one transaction."""
    with library.db:
        library.db.executemany("UPDATE photos SET sharpness = ? WHERE id = ?",
                               [(float(score), pid) for pid, score in scores.items()])


@_guarded
def sharpness_of(library: Library, ids: Iterable[int]) -> dict[int, float | None]:
    """Each photo's stored sharpness; None where it has not been scored."""
    return dict(rows_for_ids(library.db, "SELECT id, sharpness FROM photos WHERE id IN ({ids})", list(ids)))


@_guarded
def set_cull(library: Library, photo_ids: Iterable[int], cull: Cull, *, source: str = "person") -> None:
    """Set (or, for an empty cull, clear) the cull of each photo, in one transaction."""
    if source not in CULL_SOURCES:
        raise ValueError(f"A cull is set by one of {CULL_SOURCES}, not {source!r}.")
    ids = [(pid,) for pid in photo_ids]
    with library.db:
        if cull.empty:
            library.db.executemany("DELETE FROM culls WHERE photo_id = ?", ids)
            return
        library.db.executemany(
            "INSERT INTO culls (photo_id, rating, picked, set_at, source) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (photo_id) DO UPDATE SET rating = excluded.rating, picked = excluded.picked, "
            "set_at = excluded.set_at, source = excluded.source",
            [(pid, cull.rating, int(cull.picked), _utc_now(), source) for (pid,) in ids],
        )


@_guarded
def culls(library: Library, ids: Iterable[int] | None = None) -> dict[int, Cull]:
    """The cull of each photo that has one (of `ids`, or all)."""
    sql = "SELECT photo_id, rating, picked FROM culls"
    # The ids asked for only: a grid of 50 results need not read a large library's every cull.
    rows = library.db.execute(sql) if ids is None else rows_for_ids(library.db, sql + " WHERE photo_id IN ({ids})", list(ids))
    return {pid: Cull(rating, bool(picked)) for pid, rating, picked in rows}


@dataclass(frozen=True)
class Frame:
    photo: LibraryPhoto
    sharpness: float | None  # None: not scored yet
    cull: Cull | None  # the cull already set; None when none is

    @property
    def top_probability(self) -> float:
        return self.photo.species[0][1] if self.photo.species else 0.0


@dataclass(frozen=True)
class Burst:
    frames: tuple[Frame, ...]  # in time order
    best: int | None  # the suggested frame's photo id

    def others(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.photo.id != self.best]


def best_frame(frames: Iterable[Frame]) -> int | None:
    """The photo id of the sharpest frame; between equally sharp frames, the one the model is
    surer of. Unscored frames come after every scored one; None for no frames."""
    ranked = sorted(frames, key=lambda f: (f.sharpness is not None, f.sharpness or 0.0, f.top_probability), reverse=True)
    return ranked[0].photo.id if ranked else None


def bursts_for_culling(library: Library, seconds: float | None = None, threshold: float | None = None) -> list[Burst]:
    """The library's bursts (Library.burst_groups), each frame with its sharpness and cull, and the
    suggested best frame among those the person has not rejected."""
    groups = library.burst_groups(seconds, threshold)
    ids = [photo.id for group in groups for photo in group]
    scores, set_culls = sharpness_of(library, ids), culls(library, ids)
    bursts = []
    for group in groups:
        frames = tuple(Frame(photo, scores.get(photo.id), set_culls.get(photo.id)) for photo in group)
        # A frame the person rejected is never suggested: --write would otherwise reject all the others too.
        bursts.append(Burst(frames, best_frame(f for f in frames if f.cull is None or not f.cull.rejected)))
    return bursts


@dataclass
class CullWritten:
    written: list[int]  # photo ids whose cull is now in the library and their sidecar
    problems: list[str]  # one sentence each for the photos that could not be written


def write_cull(library: Library, photos: dict[int, Path], cull: Cull, *, style: SidecarStyle,
               source: str = "person", should_stop: Callable[[], bool] = lambda: False) -> CullWritten:
    """Set `cull` on `photos` (id -> path): each sidecar through core/photos/sidecar.py's merging
    writer, then the library for those whose sidecar was written (so the two agree, and a photo
    whose sidecar failed is tried again next time). A sidecar that cannot be written, or a photo
    outside the library's folders, is one sentence in `problems`; the others carry on."""
    from birdid_app.core.photos.sidecar import SidecarError
    from birdid_app.core.photos.sidecar import write_cull as write_sidecar_cull

    folders = [folder for folder in (resolved(f) for f in library.folders()) if folder is not None]
    done = CullWritten([], [])
    for pid, path in photos.items():
        if should_stop():
            break
        problem = why_not_written(Path(path), folders, "its cull was not written")
        if problem is not None:
            done.problems.append(problem)
            continue
        try:
            write_sidecar_cull(path, cull.rating, cull.picked, style=style)
        except SidecarError as error:
            done.problems.append(str(error))
            continue
        done.written.append(pid)
    set_cull(library, done.written, cull, source=source)
    return done
