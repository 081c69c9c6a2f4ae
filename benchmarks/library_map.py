"""How long the map of a library takes: the first time (read, reduce, lay out, keep) and after.

A real library file of N photos whose embeddings look like a birder's (700 species with Zipf
counts, each photo its species' direction plus noise, 1024 values as the base model gives), the
map made by `core.library_map.library_map` as the window and `birdid map` make it, then again
from what was kept, then drawn as `birdid map` draws it, then with --added photos more (placed
among the kept points, not laid out again).

    .venv/bin/python benchmarks/library_map.py [--photos 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from birdid_app.core.library import Library
from birdid_app.core.library import map as maps
from machine import cpu_flags, machine_description  # benchmarks/machine.py

MODEL = "hiera_abswin_base_mim-intermediate-eu-common"
DIM = 1024


def library_like(path: Path, count: int, seed: int = 0, first: int = 0) -> None:
    """`count` photos (ids from `first` + 1) with library-like embeddings; the same species
    directions whatever the seed, so later photos belong with earlier ones."""
    centres = np.random.default_rng(0).normal(size=(700, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    species = (rng.zipf(1.5, first + count) - 1) % 700
    with Library(path, model=MODEL) as library, library.db:
        for start in range(first, first + count, 10_000):
            rows = range(start, min(start + 10_000, first + count))
            noise = rng.normal(size=(len(rows), DIM)).astype(np.float32) * 0.8
            vectors = centres[species[start : start + len(rows)]] + noise  # [rows, DIM]
            library.db.executemany(
                "INSERT INTO photos (id, path, size, mtime_ns, fingerprint) VALUES (?, ?, 1, 1, 'f')",
                ((i + 1, f"/photos/{i:07}.jpg") for i in rows),
            )
            library.db.executemany(
                "INSERT INTO identifications (photo_id, model, embedding) VALUES (?, ?, ?)",
                ((i + 1, MODEL, vectors[i - start].tobytes()) for i in rows),
            )
            library.db.executemany(
                "INSERT INTO predictions (photo_id, model, rank, species, probability) VALUES (?, ?, 1, ?, 0.9)",
                ((i + 1, MODEL, f"species {species[i]}") for i in rows),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--added", type=int, default=500, help="photos added after the first map")
    args = parser.parse_args()
    print(machine_description(), f"(load average {os.getloadavg()[0]:.2f} at the start)")
    print(cpu_flags())
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "library.sqlite3"
        library_like(path, args.photos)
        # openTSNE (with scikit-learn and scipy) loads with the first map a process makes: timed
        # apart, or it would count as reducing the embeddings.
        loading = time.perf_counter()
        maps._open_tsne()
        loading = time.perf_counter() - loading
        stages: list[tuple[str, float]] = []
        started = time.perf_counter()

        def stage(text: str) -> None:
            stages.append((text, time.perf_counter() - started))

        first_shown: list[float] = []  # when the window would first draw the layout taking shape

        def shown(points) -> None:
            if not first_shown:
                first_shown.append(time.perf_counter() - started)

        with Library(path, model=MODEL) as library:
            first = time.perf_counter()
            laid_out = maps.library_map(library, on_stage=stage, on_progress=shown)
            first = time.perf_counter() - first
        with Library(path, model=MODEL) as library:  # a new process's view: nothing in memory
            again = time.perf_counter()
            kept = maps.library_map(library)
            again = time.perf_counter() - again
            drawn = time.perf_counter()
            maps.draw_map(kept, maps.point_keys(library, kept, "species"))
            drawn = time.perf_counter() - drawn
        assert np.array_equal(kept.points, laid_out.points)
        library_like(path, args.added, seed=1, first=args.photos)
        with Library(path, model=MODEL) as library:
            placed = time.perf_counter()
            grown = maps.library_map(library)
            placed = time.perf_counter() - placed
        assert len(grown.ids) == args.photos + args.added
        print(f"\n{args.photos:,} photos, {DIM}-d embeddings")
        print(f"  {'loading openTSNE, once a process':44} {loading:7.2f} s")
        for (text, at), (_, until) in zip(stages, [*stages[1:], ("end", first)], strict=True):
            print(f"  {text:44} {until - at:7.2f} s")
        print(f"  {'the map, the first time':44} {first:7.2f} s")
        print(f"  {'  first drawn while it takes shape, at':44} {first_shown[0]:7.2f} s")
        print(f"  {'the map again, kept':44} {again:7.2f} s")
        print(f"  {'drawn as birdid map draws it':44} {drawn:7.2f} s")
        print(f"  {f'{args.added:,} photos added, placed among the rest':44} {placed:7.2f} s")
        print(f"  kept in {maps.map_cache_path(path, MODEL).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
