"""Parameters, GFLOPs and CPU latency of the base model at 384x384: birdid's Hiera beside Birder's.

Both get the same random weights and the same input, in one run, alternating, so machine noise
hits both alike. Run: `.venv/bin/python benchmarks/model_cost.py [--repeats N] [--threads T]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from birdid_app.core.model.hiera import Hiera, HieraConfig
from machine import machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))


def reference_model() -> torch.nn.Module:
    from birder.net.hiera import Hiera as ReferenceHiera

    config = {"depths": [2, 3, 16, 3], "embed_dim": 96, "num_heads": 1, "abs_win_pos_embed": True, "drop_path_rate": 0.0}
    return ReferenceHiera(3, 707, config=config, size=(384, 384)).eval()


def gflops(model: torch.nn.Module, images: torch.Tensor) -> float:
    """Counted as torch's FlopCounterMode counts: 2 per multiply-add, matmuls, convs, attention."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(images)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    reference = reference_model()
    ours = Hiera(BASE).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    models = {"birder (reference)": reference, "birdid": ours}

    with torch.inference_mode():
        for model in models.values():  # warm-up: first calls allocate and pick kernels
            model(images)
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.repeats):
            for name, model in models.items():
                started = time.perf_counter()
                model(images)
                times[name].append(time.perf_counter() - started)

    print(f"machine: {machine_description()}; {args.threads} torch threads; torch {torch.__version__}")
    print(f"{'model':<20} {'params (M)':>10} {'GFLOPs':>8} {'median s':>9} {'min s':>7}")
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"{name:<20} {params:>10.2f} {gflops(model, images):>8.1f} "
            f"{statistics.median(times[name]):>9.3f} {min(times[name]):>7.3f}"
        )
    ratio = statistics.median(times["birdid"]) / statistics.median(times["birder (reference)"])
    print(f"birdid / reference median latency: {ratio:.2f}")


if __name__ == "__main__":
    main()
