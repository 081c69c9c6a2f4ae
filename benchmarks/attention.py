"""Attention kernels at the base model's real shapes: SDPA's fused (flash) kernel, SDPA's unfused
maths, and plain matmul-softmax-matmul, in fp32 and bf16 on this machine's CPU. This is what
`birdid_app.core.model.hiera.attention` chooses by.

Run: `.venv/bin/python benchmarks/attention.py [--repeats 20]`
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import torch
import torch.nn.functional as F
from speed import BASE
from torch.nn.attention import SDPBackend, sdpa_kernel

from birdid_app.core.model import hiera
from machine import machine_description  # benchmarks/machine.py


def attention_shapes() -> Counter:
    """(q shape, k shape) -> calls, recorded from one forward of the base model."""
    shapes: Counter = Counter()
    chosen = hiera.attention

    def recording(q, k, v):
        shapes[(tuple(q.shape), tuple(k.shape))] += 1
        return chosen(q, k, v)

    hiera.attention = recording
    try:
        with torch.inference_mode():
            hiera.Hiera(BASE).eval()(torch.zeros(1, 3, *BASE.image_size))
    finally:
        hiera.attention = chosen
    return shapes


def fused(q, k, v):
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v)


def unfused(q, k, v):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v)


def matmuls(q, k, v):
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v


def median_ms(function, args, repeats: int) -> float:
    for _ in range(3):
        function(*args)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(machine_description(), f"; {torch.get_num_threads()} threads")
    kernels = {"fused": fused, "unfused": unfused, "matmuls": matmuls}
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        totals = Counter()
        print(f"\n{str(dtype).removeprefix('torch.')}: ms per call (calls per forward)")
        print(f"{'q shape':>22} {'k shape':>22} " + " ".join(f"{name:>8}" for name in kernels))
        for (q_shape, k_shape), calls in sorted(attention_shapes().items()):
            q = torch.randn(q_shape, generator=generator).to(dtype)
            k, v = (torch.randn(k_shape, generator=generator).to(dtype) for _ in range(2))
            with torch.inference_mode():
                row = {name: median_ms(kernel, (q, k, v), args.repeats) for name, kernel in kernels.items()}
            totals.update({name: ms * calls for name, ms in row.items()})
            print(f"{str(q_shape):>22} {str(k_shape):>22} " + " ".join(f"{ms:8.2f}" for ms in row.values()) + f"  (x{calls})")
        print(f"{'per forward':>45} " + " ".join(f"{totals[name]:8.1f}" for name in kernels))


if __name__ == "__main__":
    main()
