"""Exact top-k search latency: birdid's VectorIndex beside plain numpy and faiss's IndexFlatIP.

For each size, random unit vectors (768-d float32, seeded) are searched with the same queries by
all three, one query at a time, alternating which goes first, so machine noise hits all alike;
then the ids each returned are compared. faiss comes from the `bench` extra
(`.venv/bin/pip install -e ".[bench]"`); without it that row is left out.
Run: `.venv/bin/python benchmarks/search_latency.py [--sizes 10000 100000 1000000] [--queries 50] [--k 20]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

from birdid_app.core.vectors import VectorIndex
from machine import machine_description  # benchmarks/machine.py

DIM = 768
# Rows generated and normalised per step, so building 1M rows makes no second 3 GB temporary.
GENERATE_CHUNK_ROWS = 65_536

# faiss's OpenMP threads otherwise spin for a while after each search, taking the cores that
# numpy's BLAS threads need for the next method's search; set before faiss loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import faiss
except ImportError:  # the bench extra is not installed: compare with numpy only
    faiss = None


def library_versions() -> str:
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    faiss_version = faiss.__version__ if faiss is not None else "not installed"
    return (
        f"Python {platform.python_version()}, numpy {np.__version__} "
        f"(BLAS: {blas.get('name')} {blas.get('version')}), faiss {faiss_version}"
    )


def random_unit_vectors(count: int, seed: int) -> np.ndarray:
    """[count, DIM] float32 rows, each of length 1, built in place chunk by chunk."""
    rng = np.random.default_rng(seed)
    vectors = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, GENERATE_CHUNK_ROWS):
        chunk = vectors[start : start + GENERATE_CHUNK_ROWS]
        rng.standard_normal(chunk.shape, dtype=np.float32, out=chunk)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
    return vectors


def numpy_brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = matrix @ query
    return np.argsort(-scores)[:k].tolist()


def faiss_flat_index(vectors: np.ndarray):
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)  # faiss keeps its own copy of the rows
    return index


def faiss_search(index, query: np.ndarray, k: int) -> list[int]:
    _, found = index.search(query[None, :], k)
    return found[0].tolist()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run_size(count: int, queries: np.ndarray, k: int, seed: int) -> None:
    started = time.perf_counter()
    vectors = random_unit_vectors(count, seed)
    generated = time.perf_counter()
    index = VectorIndex.from_arrays(np.arange(count), vectors)
    indexed = time.perf_counter()
    methods: dict[str, tuple[Callable[[np.ndarray], list[int]], int]] = {
        "VectorIndex.search": (lambda q: [id for id, _ in index.search(q, k)], index.nbytes()),
        "numpy matvec+argsort": (lambda q: numpy_brute_force(vectors, q, k), vectors.nbytes),
    }
    setup = f"generate {generated - started:.1f} s, VectorIndex.from_arrays {indexed - generated:.1f} s"
    if faiss is not None:
        flat = faiss_flat_index(vectors)
        setup += f", faiss add {time.perf_counter() - indexed:.1f} s"
        methods["faiss IndexFlatIP"] = (lambda q: faiss_search(flat, q, k), flat.ntotal * flat.d * 4)
    print(f"\n{count:,} vectors ({setup}; load average {os.getloadavg()[0]:.2f})")

    names = list(methods)
    for name in names:  # warm up: first calls fault pages in and start BLAS threads
        methods[name][0](queries[0])
    times: dict[str, list[float]] = {name: [] for name in names}
    found: dict[str, list[list[int]]] = {name: [] for name in names}
    for position, query in enumerate(queries):
        rotation = position % len(names)
        for name in names[rotation:] + names[:rotation]:
            start = time.perf_counter()
            ids = methods[name][0](query)
            times[name].append(time.perf_counter() - start)
            found[name].append(ids)

    print(f"{'size':>10}  {'method':<22} {'median ms':>10} {'p95 ms':>9} {'memory MB':>10}")
    for name in names:
        milliseconds = [seconds * 1e3 for seconds in times[name]]
        # The index's own bytes are read after the searches: its float16 copy exists by then.
        memory_mb = (index.nbytes() if name == "VectorIndex.search" else methods[name][1]) / 2**20
        print(
            f"{count:>10,}  {name:<22} {statistics.median(milliseconds):>10.2f} "
            f"{percentile(milliseconds, 0.95):>9.2f} {memory_mb:>10.1f}"
        )
    reference = found[names[0]]
    for name in names[1:]:
        agree = sum(a == b for a, b in zip(reference, found[name], strict=True))
        verdict = "OK" if agree == len(queries) else "MISMATCH"
        print(f"check: {name} gives the same top-{k} ids as {names[0]}: {agree}/{len(queries)}, {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"machine: {machine_description()}")
    print(f"libraries: {library_versions()}")
    print(f"exact top-{args.k} by cosine, {DIM}-d float32, {args.queries} single queries per size")
    queries = random_unit_vectors(args.queries, seed=args.seed + 1)  # never rows of the index
    for count in args.sizes:
        run_size(count, queries, args.k, args.seed)
        gc.collect()  # the previous size's three copies go before the next size is built
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"\npeak resident memory: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
