"""`birdid index --engine ray`: the library's index job on Ray Data, for archives no one machine
indexes in time. Ray comes with the `cluster` extra; only this module imports it.

The pipeline (each stage streams into the next, so no stage holds the whole archive):
  the driver walks the folders (names, sizes, times) and leaves out what the shards in DIR or the
  library already hold (core.shards.is_done: the local indexer's rule)
  -> ray.data.from_items: one row per photo to do
  -> map_batches(decode_batch), Ray tasks on CPU workers: fingerprint, EXIF, keywords, and the
     picture squashed to the model's input (uint8, 442 KB at 384x384), as the desktop's decoder
     threads do
  -> map_batches(Embedder), a pool of actors that each load the model once, on a GPU each
     (`num_gpus_per_worker`) or on CPUs
  -> write_parquet(DIR): shard files; `birdid library import DIR` merges them into a library.
Ray retries a task, and restarts an actor, whose worker died (Ray Data's defaults for
map_batches: max_restarts=-1, max_task_retries=-1), so a killed worker costs time, not rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from birdid_app.core.errors import BirdidError
from birdid_app.core.library import _pair_companions, _scan, shards

# Photos per decode task and per forward pass on a worker; the forward batch is the indexer's.
DECODE_BATCH = 16
EMBED_BATCH = 8


@dataclass
class RayIndexSummary:
    scanned: int  # photos found in the folders
    already_done: int  # left out: in the shards or the library already
    written: int  # rows written to new shards (embedded or recorded as unreadable)
    skipped_shards: list[str]  # sentences: existing shards that could not be read


def plan_ray_index(folders: Sequence[Path], shard_dir: Path, model_name: str,
                   library_known: dict | None = None) -> tuple[list[dict], int, int, list[str]]:
    """The photos to do, as from_items rows, and (scanned, already done, unreadable shards)."""
    found: dict[str, tuple[int, int]] = {}
    folder_of: dict[str, str] = {}
    for folder in folders:
        for path, stat in _scan([folder]):
            found.setdefault(path, stat)
            folder_of.setdefault(path, str(folder))
    found, pairs = _pair_companions(found)
    known = shards.known_rows(shards.shard_files([shard_dir]), model_name) if shard_dir.is_dir() else shards.ShardRead()
    library_known = library_known or {}
    todo, done = [], 0
    for path, (size, mtime_ns) in sorted(found.items()):
        in_library = library_known.get(path)
        library_row = None if in_library is None else {
            "size": in_library[1], "mtime_ns": in_library[2], "fingerprint": in_library[3],
            "identified": bool(in_library[4]), "error": in_library[5]}
        if shards.is_done(known.rows.get(path), size, mtime_ns) or shards.is_done(library_row, size, mtime_ns):
            done += 1
            continue
        todo.append({"path": path, "size": size, "mtime_ns": mtime_ns, "folder": folder_of[path],
                     "companion": pairs.get(path, "")})
    return todo, len(found), done, [why for _, why in known.skipped]


def run_ray_index(
    folders: Sequence[Path],
    shard_dir: Path,
    model_path: Path,
    model_name: str,
    input_size: tuple[int, int],
    *,
    address: str | None = None,
    num_gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    workers: int | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    read_keywords: bool = True,
    library_known: dict | None = None,
    on_plan: Callable[[int, int, int], None] | None = None,
) -> RayIndexSummary:
    """Index `folders` into Parquet shards in `shard_dir` on the Ray cluster at `address` (None:
    the one this process is connected to, else a new local one).

    `workers`: at most this many model actors (default: as many as the cluster's GPUs hold at
    `num_gpus_per_worker` each, or on CPUs as many as fit in all CPUs but one at `cpus_per_worker`
    each, so decoding always has a CPU; torch in an actor runs `cpus_per_worker` threads).
    Decoding runs in Ray tasks of one CPU each, apart from the model's actors. `on_plan(scanned, already_done, to_do)` is called before any Ray work
    starts."""
    todo, scanned, done, skipped = plan_ray_index(folders, shard_dir, model_name, library_known)
    if on_plan is not None:
        on_plan(scanned, done, len(todo))
    if not todo:
        return RayIndexSummary(scanned, done, 0, skipped)
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 0)
    if cpus_per_worker >= cpus:
        raise BirdidError(
            f"Each model worker would take all {cpus:g} CPUs of the Ray cluster, leaving none to decode "
            f"photos: give --cpus-per-worker less than {cpus:g}."
        )
    if workers is None:  # as many as the cluster has room for, one CPU kept for decoding
        if num_gpus_per_worker > 0:
            workers = max(1, int(resources.get("GPU", 0) // num_gpus_per_worker))
        else:
            workers = max(1, int((cpus - 1) // cpus_per_worker))
    shard_dir.mkdir(parents=True, exist_ok=True)
    gpus: dict[str, Any] = {"num_gpus": num_gpus_per_worker} if num_gpus_per_worker > 0 else {}
    dataset = (
        ray.data.from_items(todo, override_num_blocks=max(1, min(len(todo) // DECODE_BATCH, 1000)))
        # ray's types take fn as a one-argument callable: they cannot see fn_kwargs filling the rest.
        .map_batches(shards.decode_batch, batch_size=DECODE_BATCH, batch_format="numpy",  # type: ignore[arg-type]
                     num_cpus=1, fn_kwargs={"input_size": tuple(input_size), "read_keywords": read_keywords})
        .map_batches(
            shards.Embedder, batch_size=EMBED_BATCH, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
            num_cpus=cpus_per_worker, **gpus,
            fn_constructor_kwargs={"model_path": os.fspath(model_path), "model_name": model_name,
                                   "device": "cuda" if num_gpus_per_worker > 0 else device,
                                   "precision": precision},
        )
    )
    before = set(shard_dir.glob("*.parquet"))
    dataset.write_parquet(os.fspath(shard_dir))
    written = 0
    for file in set(shard_dir.glob("*.parquet")) - before:
        written += shards.pq.read_metadata(file).num_rows
    return RayIndexSummary(scanned, done, written, skipped)
