"""Indexing throughput on camera-size JPEGs beside the model's own forward throughput.

Both in one run with the same base-size Hiera (random weights, 384x384): (a) batches of ready
input tensors straight through the classifier, (b) the library's IndexJob over a folder of
4000x3000 JPEGs (decoding, EXIF, fingerprints, SQLite commits included), in every precision
mode the CPU runs fast: fp32, bf16 (only where native) and int8. Decoding runs on a thread pool
while the model works, so (b) / (a) near 1 means the model never waits on the disk. (c) is (b)
with culling on, as the window and `birdid index` run by default: the stage maps kept for the
class-activation map, JPEGs decoded at 1/4 scale and each photo's sharpness on the bird scored
(core/insight/bird_box.py); `birdid index --no-cull` is (b).

Run: `.venv/bin/python benchmarks/index_throughput.py [--photos 32] [--size 4000x3000]`
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from birdid_app.core.insight.bird_box import index_steps
from birdid_app.core.library import BATCH_SIZE, IndexJob, Library
from birdid_app.core.model.checkpoint import Checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from birdid_app.core.model.inference import Classifier, cpu_has_native_bf16
from machine import cpu_flags, machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))


def camera_jpeg(path: Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    width, height = size
    small = Image.fromarray(rng.integers(0, 255, (height // 50, width // 50, 3), dtype=np.uint8))
    image = small.resize(size, Image.Resampling.BICUBIC)  # smooth, photo-like content
    draw = ImageDraw.Draw(image)
    for _ in range(20):
        x, y = rng.integers(0, width - 400), rng.integers(0, height - 400)
        draw.ellipse([x, y, x + 400, y + 300], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    image.save(path, quality=90)


def index_folder(classifier: Classifier, folder: Path, library_path: Path, *, culling: bool) -> tuple[float, int]:
    """(seconds, photos identified) to index `folder` into a new library at `library_path`, with
    or without culling (index_steps), from the plan to the last commit."""
    with Library(library_path) as library:
        library.add_folder(folder)
        identify, decode_size, prepare, bird_box = index_steps(classifier, zoom=False, culling=culling)
        job = IndexJob(library, identify, "bench", decode_size=decode_size, prepare=prepare, bird_box=bird_box)
        started = time.perf_counter()
        job.plan()
        summary = job.run()
        return time.perf_counter() - started, summary.embedded


def measure(checkpoint: Checkpoint, precision: str, folder: Path, scratch: Path,
            photos: int) -> tuple[float, float, float, float, float]:
    """(model before, model after, model mean, indexing, indexing with culling) photos/s in one
    precision mode."""
    classifier = Classifier(checkpoint, device="cpu", precision=precision)

    def forward(batch: torch.Tensor) -> None:
        classifier._forward(batch, [""] * len(batch), keep_stage_maps=False)  # as indexing runs it

    # (a) the model alone: ready [B, 3, 384, 384] tensors, batches as the indexer makes them;
    # measured before and after (b), so a slower or faster spell of the machine shows.
    batches = [torch.randn(BATCH_SIZE, 3, 384, 384) for _ in range(max(1, photos // BATCH_SIZE))]
    forward(batches[0])  # warm-up at full batch size

    def model_alone() -> float:
        started = time.perf_counter()
        for batch in batches:
            forward(batch)
        return len(batches) * BATCH_SIZE / (time.perf_counter() - started)

    model_before = model_alone()
    # (b) and (c): the whole indexing path over the JPEG folder, as `birdid index` runs it without
    # and with culling: the squash to the input size on the decoder threads.
    rates = []
    for culling in (False, True):
        seconds, embedded = index_folder(classifier, folder, scratch / f"library-{precision}-{culling}.sqlite3",
                                         culling=culling)
        rates.append(embedded / seconds)
    index_rate, culling_rate = rates
    model_after = model_alone()
    return model_before, model_after, (model_before + model_after) / 2, index_rate, culling_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--size", default="4000x3000")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    model = Hiera(BASE).eval()
    checkpoint = Checkpoint(BASE, model.state_dict(), [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
    modes = ["fp32", "bf16", "int8"] if cpu_has_native_bf16() else ["fp32", "int8"]

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        folder.mkdir()
        for i in range(args.photos):
            camera_jpeg(folder / f"IMG_{i:04d}.jpg", size, i)
        for precision in modes:
            rows.append((precision, *measure(checkpoint, precision, folder, Path(scratch), args.photos)))

    print(f"machine: {machine_description()}; {cpu_flags()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bf16 only where native")
    print(f"photos: {args.photos} JPEGs of {size[0]}x{size[1]}; model: Hiera base 384, batch {BATCH_SIZE}")
    print(f"{'mode':<5} {'model photos/s (before, after)':>32} {'indexing photos/s':>18} {'indexing/model':>15}"
          f" {'with culling':>13} {'culling/model':>14}")
    for precision, before, after, model_rate, index_rate, culling_rate in rows:
        print(f"{precision:<5} {model_rate:>10.2f} ({before:.2f}, {after:.2f}){'':>6} {index_rate:>18.2f} "
              f"{index_rate / model_rate:>14.2f}{'' if index_rate / model_rate >= 0.9 else '!'} "
              f"{culling_rate:>13.2f} {culling_rate / model_rate:>14.2f}")


if __name__ == "__main__":
    main()
