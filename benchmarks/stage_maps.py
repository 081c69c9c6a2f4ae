"""What building the stage maps costs: the base model's forward with and without them, side by
side in one run, same weights, same batch, timed in alternation so that load from other work on
the machine falls on both alike. Indexing runs without maps; identifying for display, with.

Also times Classifier.identify_images both ways, where with maps each map is also made float32
numpy (a copy in bf16; in fp32 on the CPU a view).

Run: `.venv/bin/python benchmarks/stage_maps.py [--repeats 7] [--threads 2] [--precisions fp32,bf16]`
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from PIL import Image

from birdid_app.core.model.checkpoint import Checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from birdid_app.core.model.inference import Classifier
from machine import cpu_flags, machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))
RGB = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
BATCH = 8


def alternating_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each run once to warm up, then `repeats` rounds of all runs, the order flipped each round."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, fp16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = Hiera(BASE).eval()
    checkpoint = Checkpoint(BASE, model.state_dict(), [f"species {i}" for i in range(707)], *RGB)
    images = [Image.new("RGB", (384, 384), (40 * i % 256, 90, 160)) for i in range(BATCH)]
    batch = torch.randn(BATCH, 3, 384, 384, generator=torch.Generator().manual_seed(1))

    rows = []
    for precision in args.precisions.split(","):
        classifier = Classifier(checkpoint, device="cpu", precision=precision)
        inputs = batch.to(classifier.dtype)
        with torch.inference_mode():
            maps = classifier.model(inputs).stage_maps
            map_megabytes = sum(m.numel() * m.element_size() for m in maps) / 1e6
            del maps
            model_times = alternating_seconds({
                "with maps": lambda c=classifier, b=inputs: c.model(b),
                "without maps": lambda c=classifier, b=inputs: c.model(b, stage_maps=False),
            }, args.repeats)
        classifier_times = alternating_seconds({
            "with maps": lambda c=classifier: c.identify_images(images, keep_stage_maps=True),
            "without maps": lambda c=classifier: c.identify_images(images, keep_stage_maps=False),
        }, args.repeats)
        rows.append((f"Hiera.forward, {precision}", model_times, map_megabytes))
        rows.append((f"Classifier.identify_images, {precision}", classifier_times, map_megabytes))

    print(f"machine: {machine_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(cpu_flags())
    print(f"base Hiera (embed_dim 96, depths 2-3-16-3), 384x384, random weights, batch {BATCH}, "
          f"{args.repeats} alternating rounds; seconds per batch")
    print(f"{'what':<38} {'with maps':>18} {'without maps':>18} {'saved':>7} {'maps MB':>8}")
    for name, times, megabytes in rows:
        with_, without = statistics.median(times["with maps"]), statistics.median(times["without maps"])
        spread = {k: f"{statistics.median(v):.3f} (min {min(v):.3f})" for k, v in times.items()}
        print(f"{name:<38} {spread['with maps']:>18} {spread['without maps']:>18} "
              f"{(with_ - without) / with_:>6.1%} {megabytes:>8.1f}")


if __name__ == "__main__":
    main()
