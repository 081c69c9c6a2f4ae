"""Exact top-k search latency and memory: birdid's VectorIndex beside plain numpy and faiss's IndexFlatIP.

For each size, random unit vectors (768-d float32, seeded) are searched with the same queries by
every method, one query at a time, alternating which goes first, so machine noise hits all alike;
then the ids each returned are compared with a full float32 scan (numpy). Methods:
- "VectorIndex in memory": float32 rows held (and, from 50k rows, a float16 copy searched first);
- "VectorIndex f16+disk": what the library uses, float16 rows only (from 50k rows), the first
  pass's candidates read back in float32 from a file (os.pread per row, as the library reads them
  from SQLite);
- numpy matvec + argsort, faiss IndexFlatIP (from the `bench` extra:
  `.venv/bin/pip install -e ".[bench]"`; without it that row is left out).
"memory MB" is the arrays each method holds. Last, the largest size is loaded by the
f16+disk index in a fresh process, which prints its resident memory (RSS) before and after.
Run: `.venv/bin/python benchmarks/search_latency.py [--sizes 10000 100000 1000000] [--queries 50] [--k 20]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from birdid_app.core.library.vectors import VectorIndex
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


class RowsOnDisk:
    """Float32 rows [count, DIM] in a file, read back a few at a time with os.pread (no mapping,
    so the rows read never count as this process's resident memory)."""

    def __init__(self, path: str) -> None:
        self.handle = os.open(path, os.O_RDONLY)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        row_bytes = DIM * 4
        rows = [os.pread(self.handle, row_bytes, int(id) * row_bytes) for id in ids.tolist()]
        return np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), DIM)


def write_rows(vectors: np.ndarray, directory: str) -> str:
    path = os.path.join(directory, f"rows-{vectors.shape[0]}.f32")
    vectors.tofile(path)
    return path


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


def run_size(count: int, queries: np.ndarray, k: int, seed: int, scratch: str) -> str:
    """Searches `count` rows by every method; returns the path of the rows written to disk."""
    started = time.perf_counter()
    vectors = random_unit_vectors(count, seed)
    generated = time.perf_counter()
    index = VectorIndex.from_arrays(np.arange(count), vectors)
    indexed = time.perf_counter()
    rows_path = write_rows(vectors, scratch)
    compact = VectorIndex.from_arrays(np.arange(count), vectors, exact_rows=RowsOnDisk(rows_path))
    compacted = time.perf_counter()
    methods: dict[str, tuple[Callable[[np.ndarray], list[int]], int]] = {
        "numpy matvec+argsort": (lambda q: numpy_brute_force(vectors, q, k), vectors.nbytes),
        "VectorIndex in memory": (lambda q: [id for id, _ in index.search(q, k)], index.nbytes()),
        "VectorIndex f16+disk": (lambda q: [id for id, _ in compact.search(q, k)], compact.nbytes()),
    }
    setup = (f"generate {generated - started:.1f} s, VectorIndex.from_arrays {indexed - generated:.1f} s, "
             f"f16+disk {compacted - indexed:.1f} s")
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
        # The indexes' own bytes are read after the searches: the float16 copy exists by then.
        memory_mb = {"VectorIndex in memory": index.nbytes(), "VectorIndex f16+disk": compact.nbytes()}.get(
            name, methods[name][1]) / 2**20
        print(
            f"{count:>10,}  {name:<22} {statistics.median(milliseconds):>10.2f} "
            f"{percentile(milliseconds, 0.95):>9.2f} {memory_mb:>10.1f}"
        )
    reference = found[names[0]]
    for name in names[1:]:
        agree = sum(a == b for a, b in zip(reference, found[name], strict=True))
        verdict = "OK" if agree == len(queries) else "MISMATCH"
        print(f"check: {name} gives the same top-{k} ids as {names[0]}: {agree}/{len(queries)}, {verdict}")
    return rows_path


# Run in a fresh process: load `count` rows from the file into the f16+disk index in chunks (as the
# library reads SQLite), search, and print resident memory at each step (VmRSS, this moment's).
RESIDENT = """
import sys, time, numpy as np
sys.path.insert(0, {benchmarks!r})
from search_latency import DIM, GENERATE_CHUNK_ROWS, RowsOnDisk, random_unit_vectors
from birdid_app.core.library.vectors import VectorIndex
def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
count, rows_path, k = {count}, {rows_path!r}, {k}
import torch  # the window and the commands have it loaded anyway; the first pass runs on it
before = rss_mb()
index = VectorIndex(DIM, exact_rows=RowsOnDisk(rows_path))
index.reserve(count)
with open(rows_path, "rb") as rows:
    for start in range(0, count, GENERATE_CHUNK_ROWS):
        chunk = np.frombuffer(rows.read(GENERATE_CHUNK_ROWS * DIM * 4), dtype=np.float32).reshape(-1, DIM)
        index.upsert(np.arange(start, start + chunk.shape[0]), chunk)
del chunk  # the last chunk read; the library's loader drops its own when it returns
loaded = rss_mb()
queries = random_unit_vectors(20, seed=12345)
times = []
for query in queries:
    started = time.perf_counter()
    index.search(query, k)
    times.append(time.perf_counter() - started)
print(f"  resident before loading (python, numpy, torch): {{before:,.0f}} MB")
print(f"  resident after loading {{count:,}} rows:           {{loaded:,.0f}} MB")
print(f"  resident after 20 searches:                     {{rss_mb():,.0f}} MB "
      f"(the index's own growth: {{rss_mb() - before:,.0f}} MB; median search {{sorted(times)[10] * 1e3:.1f}} ms)")
"""


def resident_memory(count: int, rows_path: str, k: int) -> None:
    print(f"\nresident memory of a fresh process holding {count:,} rows in the f16+disk index:")
    code = RESIDENT.format(benchmarks=os.path.dirname(os.path.abspath(__file__)), count=count, rows_path=rows_path, k=k)
    subprocess.run([sys.executable, "-c", code], check=True)


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
    with tempfile.TemporaryDirectory() as scratch:
        for count in args.sizes:
            rows_path = run_size(count, queries, args.k, args.seed, scratch)
            gc.collect()  # the previous size's copies go before the next size is built
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        print(f"\npeak resident memory of this process (every method's copy at once): {peak_mb:,.0f} MB")
        resident_memory(args.sizes[-1], rows_path, args.k)


if __name__ == "__main__":
    main()
