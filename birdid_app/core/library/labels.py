"""A person's labels beyond setting them (library.py): what a typed species name means among the
species of the library, and the labels of some photos kept and put back (the window's Undo)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from birdid_app.core.library.database import _guarded
from birdid_app.core.library.library import Library
from birdid_app.core.library.schema import TOP_SPECIES
from birdid_app.core.model.species_names import SpeciesSearch, names_beside


class StoredLabel(NamedTuple):
    species: str
    set_at: str
    source: str


@_guarded
def library_species(library: Library) -> list[str]:
    """Every species the library names: in a label, or among the reading model's top answers."""
    rows = library.db.execute(
        "SELECT species FROM labels UNION SELECT species FROM predictions WHERE model = ? AND rank <= ? ORDER BY 1",
        (library.reading_model(), TOP_SPECIES),
    )
    return [species for (species,) in rows]


def species_meant(library: Library, text: str) -> str | list[str]:
    """The species `text` names among the library's (by any part of any of its names: the model's,
    the eBird English, the scientific; core.model.species_names.SpeciesSearch), or the several it
    could mean. A text that fits none is returned as typed: a search for it finds no photo."""
    chosen = SpeciesSearch(names_beside(library_species(library))).chosen(text)
    return chosen if chosen != [] else library.species_named(text)


@_guarded
def stored_labels(library: Library, photo_ids: Iterable[int]) -> dict[int, StoredLabel | None]:
    """Each photo's label as stored (None: it has none): what restore_labels puts back."""
    ids = [int(photo_id) for photo_id in photo_ids]
    found: dict[int, StoredLabel | None] = dict.fromkeys(ids)
    for start in range(0, len(ids), 500):  # SQLite's limit on the parameters of one statement
        chunk = ids[start : start + 500]
        found.update(
            (photo_id, StoredLabel(species, set_at, source))
            for photo_id, species, set_at, source in library.db.execute(
                f"SELECT photo_id, species, set_at, source FROM labels WHERE photo_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        )
    return found


@_guarded
def restore_labels(library: Library, labels: Mapping[int, StoredLabel | None]) -> None:
    """Put the photos' labels back as stored_labels read them, in one transaction: a label as it
    was (species, when, by whom), none where there was none. A photo gone since is skipped."""
    with library.db:
        library.db.executemany("DELETE FROM labels WHERE photo_id = ?", [(int(pid),) for pid in labels])
        library.db.executemany(
            "INSERT INTO labels (photo_id, species, set_at, source) "
            "SELECT id, ?, ?, ? FROM photos WHERE id = ?",
            [(label.species, label.set_at, label.source, int(pid)) for pid, label in labels.items() if label],
        )
