"""Near-duplicate groups at scale: the exact all-pairs scan (VectorIndex.all_pairs_groups)
beside the clustered one (birdid_app.core.library.groups.near_duplicate_groups), and burst groups.

The data is built to look like a photo library's embeddings (seeded, 768-d float32 unit rows):
- 700 species in 60 families: a family centre f and a species' own direction r, both random
  unit vectors, give the species centre c = unit(0.5 f + 0.87 r), so two species of one family
  have cosine ~0.25 (a Willow Warbler and a Chiffchaff), of two families ~0;
- photos per species follow a Zipf law (exponent 1: a robin is photographed far more than a
  wryneck); a photo is x = a c + sqrt(1 - a^2) n with a uniform in [0.6, 0.85] (its cosine to
  the species centre) and n a random unit direction: pose, light and background;
- 30% of photos come in bursts of 2 to 8 frames of one scene: frame k = unit(x0 + e n_k), with
  e uniform in [0.1, 0.3] per burst, so frames of one burst have cosine 0.92 to 0.99 to each
  other; 1% more photos are re-saved copies (cosine ~0.9995 to the original);
- bursts' frames are 0.1 s apart (10 frames/s), scenes minutes apart, for the bursts row.
The statistics printed under "data" check the model against those figures. The worst case is
printed too: random directions (no clusters at all), where clustering cannot prune anything.

Each method runs on the same rows; "same groups" compares their groups as lists. Run:
`.venv/bin/python benchmarks/near_duplicates.py [--sizes 10000 20000 100000] [--exact-at-largest]`.
Without --exact-at-largest, the exact method's time at the largest size is extrapolated from its
two smaller sizes as O(N^2) and labelled so.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from birdid_app.core.library import groups
from birdid_app.core.library.groups import burst_groups, near_duplicate_groups
from birdid_app.core.library.vectors import VectorIndex
from machine import cpu_flags, machine_description  # benchmarks/machine.py

DIM = 768
SPECIES = 700
FAMILIES = 60
THRESHOLDS = (0.95, 0.90)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def library_like(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(ids [count], vectors [count, DIM] float32 unit rows, capture seconds [count], facts)."""
    rng = np.random.default_rng(seed)
    families = unit(rng.standard_normal((FAMILIES, DIM)))
    centres = unit(0.5 * families[rng.integers(0, FAMILIES, SPECIES)] + 0.87 * unit(rng.standard_normal((SPECIES, DIM))))
    weights = 1.0 / np.arange(1, SPECIES + 1)
    weights /= weights.sum()
    vectors = np.empty((count, DIM), dtype=np.float32)
    species = np.empty(count, dtype=np.int64)
    seconds = np.empty(count, dtype=np.float64)
    burst_of = np.full(count, -1, dtype=np.int64)
    row, clock, bursts = 0, 1.7e9, 0
    while row < count:
        kind = rng.random()
        # A scene is a burst with probability p, of 5 frames on average: 5p / (5p + 1 - p) = 30%.
        frames = int(rng.integers(2, 9)) if kind < 0.3 / 3.8 else 1
        frames = min(frames, count - row)
        s = rng.choice(SPECIES, p=weights)
        a = rng.uniform(0.6, 0.85)
        base = a * centres[s] + np.sqrt(1 - a * a) * unit(rng.standard_normal(DIM))
        clock += rng.uniform(60, 3600)
        if frames > 1:
            spread = rng.uniform(0.1, 0.3)
            block = unit(base + spread * unit(rng.standard_normal((frames, DIM))))
            burst_of[row : row + frames] = bursts
            bursts += 1
        elif rng.random() < 0.01 and row + 2 <= count:  # a re-saved copy beside the original
            frames = 2
            block = unit(base + 0.03 * unit(rng.standard_normal((2, DIM))))
        else:
            block = unit(base[None, :])
        vectors[row : row + frames] = block
        species[row : row + frames] = s
        seconds[row : row + frames] = clock + 0.1 * np.arange(frames)
        row += frames
    ids = rng.permutation(count).astype(np.int64) + 1
    return ids, vectors, seconds, {"species": species, "centres": centres, "burst_of": burst_of}


def data_statistics(vectors: np.ndarray, facts: dict, seed: int) -> str:
    rng = np.random.default_rng(seed)
    species, centres, burst_of = facts["species"], facts["centres"], facts["burst_of"]
    sample = rng.choice(vectors.shape[0], 2000, replace=False)
    to_centre = np.einsum("ij,ij->i", vectors[sample], centres[species[sample]])
    a, b = rng.choice(vectors.shape[0], (2, 20000))
    pair = np.einsum("ij,ij->i", vectors[a], vectors[b])
    same = species[a] == species[b]
    burst_rows = np.flatnonzero(burst_of >= 0)
    consecutive = burst_rows[:-1][burst_of[burst_rows[:-1]] == burst_of[burst_rows[1:]]]
    frame_pairs = np.einsum("ij,ij->i", vectors[consecutive], vectors[consecutive + 1])
    off = centres @ centres.T
    off = off[~np.eye(SPECIES, dtype=bool)]
    return (
        f"data: cosine to own species centre {np.percentile(to_centre, 5):.2f}-{np.percentile(to_centre, 95):.2f} "
        f"(5-95%); species centres to each other: median {np.median(off):.2f}, 99% {np.percentile(off, 99):.2f}; "
        f"two photos of one species: median {np.median(pair[same]) if same.any() else float('nan'):.2f}, "
        f"of two species: median {np.median(pair[~same]):.2f}, 99.9% {np.percentile(pair[~same], 99.9):.2f}; "
        f"consecutive frames of a burst: {np.percentile(frame_pairs, 5):.3f}-{np.percentile(frame_pairs, 95):.3f}; "
        f"photos in bursts: {burst_rows.shape[0] / vectors.shape[0]:.0%}"
    )


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 100_000])
    parser.add_argument("--exact-at-largest", action="store_true", help="also run the exact scan at the largest size")
    parser.add_argument("--worst-case", type=int, default=20_000, metavar="N", help="random rows for the worst case (0: skip)")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    print(f"machine: {machine_description()}; {cpu_flags()}")
    products = "bfloat16 (torch)" if groups._bfloat16_is_faster() else "float32 (numpy)"  # torch imported here, untimed
    print(f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}; the fast method's products: {products}")
    ids, vectors, seconds, facts = library_like(sizes[-1], seed=1)
    print(data_statistics(vectors, facts, seed=2))
    print(f"\n{'rows':>8} {'threshold':>9} {'exact s':>9} {'fast s':>8} {'speed-up':>8} {'groups':>7} {'in groups':>9}  check")
    exact_times: dict[float, list[tuple[int, float]]] = {t: [] for t in THRESHOLDS}
    for size in sizes:
        for threshold in THRESHOLDS:
            sub_ids, sub_vectors = ids[:size], vectors[:size]
            fast_s, fast = timed(near_duplicate_groups, sub_ids, sub_vectors, threshold)
            members = sum(len(g) for g in fast)
            if size != sizes[-1] or args.exact_at_largest or len(sizes) < 3:
                index = VectorIndex.from_arrays(sub_ids, sub_vectors)
                exact_s, exact = timed(index.all_pairs_groups, threshold)
                exact_times[threshold].append((size, exact_s))
                check = "OK, same groups" if exact == fast else "MISMATCH"
                exact_text = f"{exact_s:9.2f}"
            else:
                (n1, t1), (n2, t2) = exact_times[threshold][-2:]
                exponent = np.log(t2 / t1) / np.log(n2 / n1)
                exact_s = t2 * (size / n2) ** 2
                exact_text = f"~{exact_s:8.0f}"
                check = (f"exact not run: its time is extrapolated as N^2 from {n1:,} and {n2:,} rows "
                         f"(measured exponent {exponent:.2f}); --exact-at-largest runs it")
            print(f"{size:>8,} {threshold:>9.2f} {exact_text} {fast_s:8.2f} {exact_s / fast_s:7.1f}x "
                  f"{len(fast):>7,} {members:>9,}  {check}")

    print(f"\nworst case: {args.worst_case:,} random directions (no clusters, nothing can be pruned)")
    if args.worst_case:
        rng = np.random.default_rng(3)
        random_rows = rng.standard_normal((args.worst_case, DIM), dtype=np.float32)
        random_rows /= np.linalg.norm(random_rows, axis=1, keepdims=True)
        random_ids = np.arange(args.worst_case, dtype=np.int64)
        for threshold in THRESHOLDS:
            fast_s, fast = timed(near_duplicate_groups, random_ids, random_rows, threshold)
            exact_s, exact = timed(VectorIndex.from_arrays(random_ids, random_rows).all_pairs_groups, threshold)
            check = "OK, same groups" if exact == fast else "MISMATCH"
            print(f"{args.worst_case:>8,} {threshold:>9.2f} {exact_s:9.2f} {fast_s:8.2f} {exact_s / fast_s:7.1f}x "
                  f"{len(fast):>7,} {sum(len(g) for g in fast):>9,}  {check}")

    print(f"\nbursts (within 2 s, cosine >= 0.85) of {sizes[-1]:,} photos with capture times:")
    burst_s, bursts = timed(burst_groups, ids, seconds, vectors)
    made = facts["burst_of"]
    true_bursts = len(np.unique(made[made >= 0]))
    print(f"  {burst_s:.2f} s: {len(bursts):,} bursts found, {true_bursts:,} made "
          f"(re-saved copies, taken at once, count as bursts of 2 too)")


if __name__ == "__main__":
    main()
