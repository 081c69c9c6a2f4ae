"""int8 candidates beside Birder's reference, birdid fp32 and bf16 (where native), in one run.

Base-size Hiera (384x384, 707 species, random weights with the classifier scaled so logits are
confident and separated), one picture per forward, the median of --repeats. Candidates: torch's
dynamic int8 on nn.Linear (torch.ao.quantization, deprecated) and ONNX Runtime's dynamic int8,
per-tensor and per-channel weights (per-channel is what birdid's "int8" runs, core/model/int8.py);
ONNX Runtime fp32 on the same exported graph for comparison. Each mode's agreement with birdid
fp32 on 4 pictures is printed by the precision trial's rule (core/model/precision.py).

With --emulate-avx2 the torch rows run again in a child process with ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2: torch's kernels as an AVX2-only CPU gets them. ONNX Runtime's MLAS
picks its kernels by cpuid and has no such switch, so its AVX2 figure cannot be emulated here.

Run: `.venv/bin/python benchmarks/int8.py [--repeats 7] [--emulate-avx2]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from birdid_app.core.model.checkpoint import Checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from birdid_app.core.model.inference import cpu_has_native_bf16
from birdid_app.core.model.int8 import Int8Model, convert, export, quantise
from birdid_app.core.model.precision import MIN_COSINE
from machine import cpu_flags, machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def reference_model(state: dict) -> torch.nn.Module:
    from birder.net.hiera import Hiera as ReferenceHiera

    config = {"depths": [2, 3, 16, 3], "embed_dim": 96, "num_heads": 1, "abs_win_pos_embed": True, "drop_path_rate": 0.0}
    model = ReferenceHiera(3, 707, config=config, size=(384, 384)).eval()
    model.load_state_dict(state)
    return model


def time_round_robin(rows: list[tuple[str, object, str]], repeats: int) -> list[tuple[str, float, str]]:
    """(what, run, agreement) -> (what, median seconds, agreement). The modes take turns, one
    forward each per round, so a slow spell of a shared machine hits them all alike."""
    times: list[list[float]] = [[] for _ in rows]
    with torch.inference_mode():
        for _, run, _ in rows:
            run()  # warm-up: first calls allocate and pick kernels
        for _ in range(repeats):
            for index, (_, run, _) in enumerate(rows):
                started = time.perf_counter()
                run()
                times[index].append(time.perf_counter() - started)
    return [(what, statistics.median(spent), agrees) for (what, _, agrees), spent in zip(rows, times, strict=True)]


def pictures() -> torch.Tensor:
    """4 smooth, photo-like inputs [4, 3, 384, 384], normalised."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(4, 3, 12, 12, generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(384, 384), mode="bicubic").clamp(-1, 1)


def agreement(exact: tuple[torch.Tensor, torch.Tensor], other: tuple[torch.Tensor, torch.Tensor]) -> str:
    (exact_logits, exact_embedding), (logits, embedding) = exact, other
    cosine = float(torch.nn.functional.cosine_similarity(embedding.float(), exact_embedding, dim=-1).min())
    same = torch.equal(logits.float().argmax(-1), exact_logits.argmax(-1)) and torch.equal(
        logits.float().topk(5).indices.sort().values, exact_logits.topk(5).indices.sort().values
    )
    verdict = "agrees" if cosine >= MIN_COSINE and same else "DISAGREES"
    return f"cosine {cosine:.5f}, top-5 {'same' if same else 'different'}: {verdict}"


def torch_rows(repeats: int) -> list[tuple[str, float, str]]:
    """(what, run, agreement) for the reference and every torch mode."""
    torch.manual_seed(0)
    model = Hiera(BASE).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(400)  # confident, separated logits from random weights
    state = model.state_dict()
    reference = reference_model(state)
    one, four = pictures()[:1], pictures()
    rows = []
    with torch.inference_mode():
        rows.append(("birder reference, fp32", lambda: reference(one), ""))
        out = model(four, stage_maps=False)
        exact = (out.logits, out.embedding)
        rows.append(("birdid fp32", lambda: model(one, stage_maps=False), "the yardstick"))
        if cpu_has_native_bf16():
            bf16 = Hiera(BASE).eval()
            bf16.load_state_dict(state)
            bf16 = bf16.to(torch.bfloat16)
            out = bf16(four.bfloat16(), stage_maps=False)
            rows.append(("birdid bf16", lambda: bf16(one.bfloat16(), stage_maps=False),
                         agreement(exact, (out.logits, out.embedding))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization says it is deprecated
        dynamic = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        out = dynamic(four, stage_maps=False)
        rows.append(("birdid + torch dynamic int8 (Linear)",
                     lambda: dynamic(one, stage_maps=False), agreement(exact, (out.logits, out.embedding))))
    return rows, state, exact


def onnx_rows(state: dict, exact, repeats: int) -> list[tuple[str, float, str]]:
    checkpoint = Checkpoint(BASE, state, [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
    one, four = pictures()[:1], pictures()
    rows = []
    started = time.perf_counter()
    per_channel = convert(checkpoint)
    convert_seconds = time.perf_counter() - started
    exported = export(checkpoint)  # quantise() changes the graph in place: export once per use
    per_tensor = quantise(export(checkpoint), per_channel=False)
    for what, source in (("ONNX Runtime fp32", exported.SerializeToString()),
                         ("ONNX Runtime dynamic int8, per-tensor", per_tensor),
                         ("ONNX Runtime dynamic int8, per-channel (birdid int8)", per_channel)):
        runner = Int8Model(source)
        rows.append((what, lambda r=runner: r(one), agreement(exact, runner(four))))
    sizes = f"int8 file {len(per_channel) / 1e6:.1f} MB (fp32 {fp32_file_size(state):.1f} MB); conversion {convert_seconds:.1f} s"
    return rows, sizes


def fp32_file_size(state: dict) -> float:
    return sum(t.numel() * t.element_size() for t in state.values()) / 1e6


def print_rows(rows: list[tuple[str, float, str]]) -> None:
    reference = rows[0][1]
    print(f"{'what':<54} {'median s':>9} {'vs reference':>13}   agreement with birdid fp32 (4 pictures)")
    for what, seconds, agrees in rows:
        print(f"{what:<54} {seconds:>9.3f} {seconds / reference:>12.2f}x   {agrees}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--emulate-avx2", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # torch rows only, as JSON, for the parent
        rows, _, _ = torch_rows(args.repeats)
        print(json.dumps(time_round_robin(rows, args.repeats)))
        return

    rows, state, exact = torch_rows(args.repeats)
    ort_rows, sizes = onnx_rows(state, exact, args.repeats)
    import onnxruntime

    print(f"machine: {machine_description()}; {cpu_flags()}")
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads; onnxruntime {onnxruntime.__version__}, same thread count")
    print("base Hiera 384, 707 species, one picture per forward")
    print_rows(time_round_robin(rows + ort_rows, args.repeats))
    print(sizes)
    if args.emulate_avx2:
        child = subprocess.run(
            [sys.executable, __file__, "--child", "--repeats", str(args.repeats)],
            env={**os.environ, **AVX2_ENV}, capture_output=True, text=True, check=True,
        )
        emulated = [tuple(row) for row in json.loads(child.stdout.strip().splitlines()[-1])]
        print()
        print("EMULATED AVX2-only CPU for torch (same machine, "
              + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items()) + "); torch rows only:")
        print_rows(emulated)
        print("ONNX Runtime rows are not measured under AVX2: its MLAS kernels are picked by cpuid and cannot be limited.")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
