"""The first minute: how long a person waits for the window's first answer on a fresh data folder
("auto", nothing measured or converted yet), beside a whole one-photo `birdid identify --precision
fp32` process, and the window's first answer in each precision asked for outright. Each in a fresh
process, one after the other, the median of --runs.

The base architecture (Hiera AbsWin base, 707 species, 384x384, ~195 MB) with random weights,
written as a real checkpoint; the bundled sample picture. `birdid selftest --window` opens the
real window offscreen on a throwaway data folder every time, so its "auto" is always a first
start: it answers in the mode that needs no preparation and measures beside the answer.

    .venv/bin/python benchmarks/first_answer.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_flags, machine_description  # benchmarks/machine.py

WINDOW_LINE = re.compile(r"identified as .+ \(([0-9.]+) s from opening\), (\w+) on (\w+)")


def window_first_answer(model: Path, precision: str, env: dict) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, "-m", "birdid_app", "selftest", "--model", str(model), "--device", "cpu",
         "--precision", precision, "--window"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    if done.returncode != 0:
        sys.exit(f"selftest --window --precision {precision} failed: {done.stderr.strip()[-400:]}")
    seconds, ran, _ = WINDOW_LINE.search(done.stdout).groups()
    return float(seconds), ran


def identify_process(model: Path, photo: Path, precision: str, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "birdid_app", "identify", "--model", str(model), "--device", "cpu",
         "--precision", precision, str(photo)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    if done.returncode != 0:
        sys.exit(f"identify --precision {precision} failed: {done.stderr.strip()[-400:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(machine_description())
    print(cpu_flags())

    from birdid_app.core.model.checkpoint import write_checkpoint
    from birdid_app.core.model.hiera import Hiera, HieraConfig
    from birdid_app.core.model.inference import cpu_has_native_bf16
    from birdid_app.core.paths import sample_picture

    with tempfile.TemporaryDirectory(prefix="birdid-first-answer-") as scratch:
        folder = Path(scratch)
        model = folder / "base.pt"
        config = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))
        network = Hiera(config).eval()
        network.refresh_position_embedding()
        write_checkpoint(model, network, [f"species {i}" for i in range(707)], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "BIRDID_DATA_DIR": str(folder / "data"),
                            "BIRDID_CONFIG_DIR": str(folder / "config")}
        precisions = ["fp32", *(["bf16"] if cpu_has_native_bf16() else []), "int8"]
        # int8 asked for outright converts once per data folder: the CLI's data folder keeps it, so
        # convert it there first (the window's selftest converts in its throwaway folder every time).
        identify_process(model, sample_picture(), "int8", env)

        rows: dict[str, list[float]] = {}
        ran_in: dict[str, str] = {}
        for _ in range(args.runs):
            seconds, ran = window_first_answer(model, "auto", env)
            rows.setdefault("window, fresh data folder, auto", []).append(seconds)
            ran_in["window, fresh data folder, auto"] = ran
            rows.setdefault("one-photo `identify --precision fp32` process", []).append(
                identify_process(model, sample_picture(), "fp32", env))
            for precision in precisions:
                if precision != "int8":  # the window's selftest would convert int8 again in its own folder
                    seconds, ran = window_first_answer(model, precision, env)
                    rows.setdefault(f"window, --precision {precision}", []).append(seconds)
                    ran_in[f"window, --precision {precision}"] = ran
                rows.setdefault(f"one-photo `identify --precision {precision}` process", []).append(
                    identify_process(model, sample_picture(), precision, env))

    print(f"median of {args.runs} runs, seconds from start to the first answer:")
    for name, values in rows.items():
        mode = f"  (ran {ran_in[name]})" if name in ran_in else ""
        print(f"  {name:<52} {statistics.median(values):6.2f} s{mode}")
    fresh = statistics.median(rows["window, fresh data folder, auto"])
    reference = statistics.median(rows["one-photo `identify --precision fp32` process"])
    print(f"fresh window's first answer / one-photo fp32 identify process: {fresh / reference:.2f}x (goal: 1.5x or less)")


if __name__ == "__main__":
    main()
