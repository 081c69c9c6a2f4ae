"""Indexing photos/s on a local Ray cluster (`birdid index --engine ray`) beside the local indexer.

Both in one run, on the same folder of camera-size JPEGs and the same base-size Hiera (random
weights, 384x384, fp32, CPU): (a) the desktop indexer (IndexJob into a SQLite library, torch on
every core, decoding on two threads meanwhile); (b) the Ray Data pipeline into Parquet shards on
a local cluster of this machine's cores: model workers of one core each on all cores but one,
which decodes (a worker must leave the decoders a core, or nothing is ever decoded). The Ray figures count from the pipeline's start, model loading in
each worker included, and not Ray's own start-up (printed apart). Then (c) the import of the
shards into a library. docs/scale.md works out from these what a cluster would do.

Run: `.venv/bin/python benchmarks/ray_index.py [--photos 48] [--size 4000x3000]` (the cluster extra).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray
import torch

from birdid_app.cluster import run_ray_index
from birdid_app.core.library import IndexJob, Library
from birdid_app.core.library.shards import decode_batch, import_shards, shard_files
from birdid_app.core.model.checkpoint import read_checkpoint, write_checkpoint
from birdid_app.core.model.hiera import Hiera
from birdid_app.core.model.inference import Classifier
from index_throughput import BASE, camera_jpeg  # benchmarks/index_throughput.py
from machine import cpu_flags, machine_description  # benchmarks/machine.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--size", default="4000x3000")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_path = scratch / "base.pt"
        write_checkpoint(model_path, Hiera(BASE).eval(), [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
        folder = scratch / "photos"
        folder.mkdir()
        for i in range(args.photos):
            camera_jpeg(folder / f"IMG_{i:04d}.jpg", size, i)
        checkpoint = read_checkpoint(model_path)

        # Decoding alone, one core, as a Ray decode task does it (the input docs/scale.md needs).
        batch = {"path": [str(p) for p in sorted(folder.iterdir())], "folder": [str(folder)] * args.photos,
                 "companion": [""] * args.photos}
        batch["size"] = [os.stat(p).st_size for p in batch["path"]]
        batch["mtime_ns"] = [os.stat(p).st_mtime_ns for p in batch["path"]]
        started = time.perf_counter()
        decode_batch(batch, input_size=checkpoint.image_size, read_keywords=True)
        decode_rate = args.photos / (time.perf_counter() - started)
        megabytes = sum(batch["size"]) / args.photos / 1e6

        # (a) the local indexer.
        classifier = Classifier(checkpoint, device="cpu", precision="fp32")
        with Library(scratch / "local.sqlite3") as library:
            library.add_folder(folder)
            job = IndexJob(library, lambda images: classifier.identify_images(images, keep_stage_maps=False), "base",
                           decode_size=classifier.image_size)
            started = time.perf_counter()
            job.plan()
            local = job.run().embedded / (time.perf_counter() - started)

        # (b) Ray Data on a local cluster of this machine's cores.
        started = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
        workers = max(1, cores - 1)
        layouts = {f"{workers} model worker(s) x 1 thread": (workers, 1.0)}
        rates = {}
        for name, (workers, cpus) in layouts.items():
            shards = scratch / f"shards-{workers}"
            started = time.perf_counter()
            summary = run_ray_index([folder], shards, model_path, "base", checkpoint.image_size,
                                    workers=workers, cpus_per_worker=cpus)
            rates[name] = summary.written / (time.perf_counter() - started)
        ray.shutdown()

        # (c) the shards into a library.
        with Library(scratch / "imported.sqlite3") as library:
            started = time.perf_counter()
            imported = import_shards(library, shard_files([shards]), "base", folders=[folder]).imported
            import_rate = imported / (time.perf_counter() - started)

    print(f"machine: {machine_description()}; {cpu_flags()}")
    print(f"torch {torch.__version__}, ray {ray.__version__}; photos: {args.photos} JPEGs of {size[0]}x{size[1]}; "
          "model: Hiera base 384, fp32, CPU")
    print(f"local indexer (IndexJob, {torch.get_num_threads()} threads) : {local:6.2f} photos/s")
    for name, rate in rates.items():
        print(f"ray, {name:<28}: {rate:6.2f} photos/s  ({rate / local:.2f}x local)")
    print(f"decode alone, one core (decode_batch)        : {decode_rate:6.2f} photos/s ({megabytes:.1f} MB per file)")
    print(f"ray start-up (once per run, not counted above): {ray_start:.1f} s")
    print(f"import of the shards into a library         : {import_rate:6.0f} photos/s")


if __name__ == "__main__":
    main()
