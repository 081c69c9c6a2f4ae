"""Species as keywords for photo editors, for a whole library: what `birdid keywords write` and
the Library tab's "Write keywords" both do. Each photo gets the person's label, else the model's
top species when it is likely enough, written by core/photos/sidecar.py (merged, atomic)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES, Library
from birdid_app.core.library.scan import resolved, why_not_written

if TYPE_CHECKING:
    from birdid_app.core.photos.sidecar import SidecarStyle


@dataclass
class KeywordsSummary:
    written: int = 0  # files written: sidecars, or the JPEGs themselves when embedding
    with_species: int = 0  # of those, the ones given a species (the others had birdid's keywords taken out)
    nothing_to_write: int = 0  # photos with no species to write and no sidecar to take birdid's out of
    not_read: int = 0  # photos the indexer could not read: no species, nothing written
    failed: int = 0  # files that could not be written: on_error's sentences

    def sentence(self, *, files: str, min_probability: float | None) -> str:
        """What was written and what was skipped, and why. `files`: what a file written is called
        ("sidecar", "JPEG"); `min_probability` None: only the person's labels were written."""
        text = f"Keywords written to {_count(self.written, files)}: {self.with_species} with a species"
        cleared = self.written - self.with_species
        text += f", {cleared} with birdid's keywords taken out." if cleared else "."
        if self.nothing_to_write:
            reason = "no label" if min_probability is None else f"no label and no species at {min_probability:.0%} or more"
            text += (f" {_count(self.nothing_to_write, 'photo')} skipped: nothing to write ({reason}, "
                     "or labelled not a bird or unknown species).")
        if self.not_read:
            text += f" {_count(self.not_read, 'photo')} skipped: unreadable when indexed."
        if self.failed:
            text += f" {self.failed} could not be written."
        return text


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def write_library_keywords(
    library: Library,
    *,
    min_probability: float,
    confirmed_only: bool,
    style: SidecarStyle,
    root: str,
    embed: bool,
    on_error: Callable[[str], None],
    should_stop: Callable[[], bool] = lambda: False,
) -> KeywordsSummary:
    """Write every readable photo's keywords; a sidecar that cannot be written is `on_error`'s
    sentence and the others carry on. "not a bird" and "unknown species" labels, and a top species
    below `min_probability`, take away the keywords birdid wrote before. A photo whose path, its
    links followed, is not inside one of the library's folders (a row from a shard made elsewhere)
    is never written to or beside: `on_error`'s sentence too."""
    from birdid_app.core.photos.sidecar import SidecarError, sidecar_path, write_keywords  # exiv2: only when asked

    summary = KeywordsSummary()
    model = library.reading_model() or ""
    folders = [folder for folder in (resolved(f) for f in library.folders()) if folder is not None]
    for photo in library.all_photos():
        if should_stop():
            break
        if photo.error is not None:
            summary.not_read += 1
            continue
        outside = why_not_written(photo.path, folders, "no keywords were written for it")
        if outside is not None:  # a path from a shard made elsewhere, say: never written to
            summary.failed += 1
            on_error(outside)
            continue
        if photo.label is not None:
            species = None if photo.label in (NOT_A_BIRD, UNKNOWN_SPECIES) else photo.label
            confirmed = True
        elif not confirmed_only and photo.species and photo.species[0][1] >= min_probability:
            species, confirmed = photo.species[0][0], False
        else:
            species, confirmed = None, False
        # With no species and no sidecar yet, the writer makes no file: counted as nothing written.
        had_sidecar = embed or os.path.lexists(sidecar_path(photo.path, style))
        try:
            write_keywords(photo.path, species, model=model, probability=None if species is None else dict(photo.species).get(species),
                           confirmed=confirmed, root=root, style=style, embed=embed)
        except SidecarError as error:
            summary.failed += 1
            on_error(str(error))
            continue
        if species is None and not had_sidecar:
            summary.nothing_to_write += 1
            continue
        summary.written += 1
        summary.with_species += species is not None
    return summary


