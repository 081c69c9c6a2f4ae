"""Species as keywords for photo editors, for a whole library: what `birdid keywords write` and
the Library tab's "Write keywords" both do. Each photo gets the person's label, else the model's
top species when it is likely enough, written by core/sidecar.py (merged, atomic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES, Library


@dataclass
class KeywordsSummary:
    written: int = 0  # photos whose keywords were written (a species, or birdid's taken away)
    with_species: int = 0
    failed: int = 0


def write_library_keywords(
    library: Library,
    *,
    min_probability: float,
    confirmed_only: bool,
    style: str,
    root: str,
    embed: bool,
    on_error: Callable[[str], None],
    should_stop: Callable[[], bool] = lambda: False,
) -> KeywordsSummary:
    """Write every readable photo's keywords; a sidecar that cannot be written is `on_error`'s
    sentence and the others carry on. "not a bird" and "unknown species" labels, and a top species
    below `min_probability`, take away the keywords birdid wrote before."""
    from birdid_app.core.sidecar import SidecarError, write_keywords  # exiv2: only when asked

    summary = KeywordsSummary()
    model = library.reading_model() or ""
    for photo in library.all_photos():
        if should_stop():
            break
        if photo.error is not None:
            continue
        if photo.label is not None:
            species = None if photo.label in (NOT_A_BIRD, UNKNOWN_SPECIES) else photo.label
            confirmed = True
        elif not confirmed_only and photo.species and photo.species[0][1] >= min_probability:
            species, confirmed = photo.species[0][0], False
        else:
            species, confirmed = None, False
        try:
            write_keywords(photo.path, species, model=model, probability=dict(photo.species).get(species),
                           confirmed=confirmed, root=root, style=style, embed=embed)
        except SidecarError as error:
            summary.failed += 1
            on_error(str(error))
            continue
        summary.written += 1
        summary.with_species += species is not None
    return summary
