"""Indexing throughput on camera-size JPEGs beside the model's own forward throughput.

Both in one run with the same base-size Hiera (random weights, 384x384): (a) batches of ready
input tensors straight through the classifier, (b) the library's IndexJob over a folder of
4000x3000 JPEGs (decoding, EXIF, fingerprints, SQLite commits included). Decoding runs on a
thread pool while the model works, so (b) / (a) near 1 means the model never waits on the disk.

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

from birdid_app.core.checkpoint import Checkpoint
from birdid_app.core.hiera import Hiera, HieraConfig
from birdid_app.core.inference import Classifier
from birdid_app.core.library import BATCH_SIZE, IndexJob, Library
from machine import machine_description  # benchmarks/machine.py

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--size", default="4000x3000")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    model = Hiera(BASE).eval()
    checkpoint = Checkpoint(BASE, model.state_dict(), [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
    classifier = Classifier(checkpoint, device="cpu", precision="fp32")

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        folder.mkdir()
        for i in range(args.photos):
            camera_jpeg(folder / f"IMG_{i:04d}.jpg", size, i)

        # (a) the model alone: ready [B, 3, 384, 384] tensors, batches as the indexer makes them;
        # measured before and after (b), so a slower or faster spell of the machine shows.
        batches = [torch.randn(BATCH_SIZE, 3, 384, 384) for _ in range(max(1, args.photos // BATCH_SIZE))]
        classifier._forward(batches[0], [""] * BATCH_SIZE)  # warm-up at full batch size

        def model_alone() -> float:
            started = time.perf_counter()
            for batch in batches:
                classifier._forward(batch, [""] * len(batch))
            return len(batches) * BATCH_SIZE / (time.perf_counter() - started)

        model_before = model_alone()

        # (b) the whole indexing path over the JPEG folder.
        with Library(Path(scratch) / "library.sqlite3") as library:
            library.add_folder(folder)
            job = IndexJob(library, classifier.identify_images, "bench", decode_size=classifier.image_size)
            started = time.perf_counter()
            job.plan()
            summary = job.run()
            index_rate = summary.embedded / (time.perf_counter() - started)
        model_after = model_alone()
        model_rate = (model_before + model_after) / 2

    print(f"machine: {machine_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"photos: {args.photos} JPEGs of {size[0]}x{size[1]}; model: Hiera base 384, fp32, batch {BATCH_SIZE}")
    print(f"model alone, ready tensors : {model_rate:6.2f} photos/s (before {model_before:.2f}, after {model_after:.2f})")
    print(f"indexing, JPEG to database : {index_rate:6.2f} photos/s")
    print(f"indexing / model           : {index_rate / model_rate:6.2f}")


if __name__ == "__main__":
    main()
