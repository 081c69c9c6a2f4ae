"""The library as a CSV file: one row per photo, for a spreadsheet."""

from __future__ import annotations

import csv
from pathlib import Path

from birdid_app.core.atomic import atomic_write
from birdid_app.core.csv_cells import text_cell
from birdid_app.core.library.schema import TOP_SPECIES, LibraryPhoto


def write_photos_csv(destination: Path, photos: list[LibraryPhoto]) -> int:
    """Write `photos` to `destination` (atomically), one row each: path, date, GPS, top-5 species
    and probabilities, model, error, the person's label. Returns how many rows."""
    header = ["path", "taken_at", "latitude", "longitude"]
    for rank in range(1, TOP_SPECIES + 1):
        header += [f"species_{rank}", f"probability_{rank}"]
    header += ["model", "error", "label"]
    with atomic_write(destination, "w", newline="") as handle:  # csv writes its own line ends
        writer = csv.writer(handle)
        writer.writerow(header)
        for p in photos:
            # Text from files and shards as text_cell makes it safe; numbers birdid formats itself.
            row = [text_cell(str(p.path)), text_cell(p.taken_at), _blank(p.latitude), _blank(p.longitude)]
            for rank in range(TOP_SPECIES):
                name, probability = p.species[rank] if rank < len(p.species) else ("", None)
                row += [text_cell(name), "" if probability is None else f"{probability:.6f}"]
            writer.writerow(row + [text_cell(p.model), text_cell(p.error), text_cell(p.label)])
    return len(photos)


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
