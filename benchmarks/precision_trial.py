"""The precision trial (core/model/precision.py) on a quiet machine and beside busy neighbours, in one run.

Base-size Hiera (384x384, 707 species, random weights written as a real checkpoint, so the int8
conversion is kept in the data folder as a person's is). The classifier's bias puts the same five
species first for every picture: random weights otherwise rank 707 species on noise, where int8
swaps members of the top-5 and the trial would rightly never time it. Four measurements:

(a) the quiet side-by-side reference: each mode's median over --repeats single-photo forwards
    taken in turn (as benchmarks/int8.py measures), and what the trial's rule picks from them;
(b) the trial on the quiet machine: its choice, each mode's median and quartiles, its rounds;
(c) the trial beside two busy processes (pure-Python spin loops) pinned to this process's cores;
(d) for contrast the old rule beside the same busy processes: per mode one after the other, the
    three-picture agreement run, then the fastest of two single-photo forwards; the fastest wins.

Before (a) and (b) it waits (at most --quiet-wait seconds) for the cores to be quiet, and it
prints how much of them other programs used during every measurement.

Run: `.venv/bin/python benchmarks/precision_trial.py [--repeats 9] [--quiet-wait 120]`
(the int8 conversion takes about half a minute, once; everything goes to a scratch data folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BASE_SPEC = dict(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))
BUSY_SECONDS = 240  # the spin loops end by themselves after this, should this process die first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quiet-wait", type=float, default=120.0)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="birdid-precision-trial-"))
    os.environ["BIRDID_DATA_DIR"] = str(scratch / "data")  # before anything reads it
    try:
        measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the checkpoint and its int8 copy: 260 MB


def measure(args: argparse.Namespace, scratch: Path) -> None:
    """(a) to (d), with the model and its int8 copy in `scratch`."""
    import onnxruntime
    import torch
    from int8 import time_round_robin  # benchmarks/int8.py: the side-by-side measurement

    from birdid_app.core.model import precision
    from birdid_app.core.model.checkpoint import read_checkpoint, write_checkpoint
    from birdid_app.core.model.hiera import Hiera, HieraConfig
    from birdid_app.core.model.inference import DTYPES, cpu_has_native_bf16
    from birdid_app.core.model.int8 import prepare_int8
    from birdid_app.core.model.preprocess import to_model_input
    from machine import cpu_flags, machine_description  # benchmarks/machine.py

    cpu = torch.device("cpu")
    candidates = precision.candidate_precisions(cpu, native_bf16=cpu_has_native_bf16())
    print(f"machine: {machine_description()}; {cpu_flags()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; onnxruntime {onnxruntime.__version__}; "
          f"base Hiera 384, 707 species, random weights; candidates {', '.join(candidates)}")

    torch.manual_seed(0)
    model = Hiera(HieraConfig(**BASE_SPEC)).eval()
    with torch.no_grad():
        model.classifier.bias[:5] += torch.tensor([50.0, 40.0, 30.0, 20.0, 10.0])
    path = scratch / "base-random.pt"
    write_checkpoint(path, model, [f"species {i}" for i in range(707)], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    checkpoint = read_checkpoint(path)
    if "int8" in candidates:
        started = time.perf_counter()
        prepare_int8(checkpoint)  # kept in the scratch data folder: the trials below load it
        print(f"int8 conversion, once, kept: {time.perf_counter() - started:.1f} s")

    # (a) the reference: every mode built once, one photo (the trial's sample picture) per forward.
    picture = to_model_input(precision.sample_pictures()[0], checkpoint.image_size, checkpoint.rgb_mean,
                             checkpoint.rgb_std)[None]  # [1, 3, 384, 384]
    forwards = {mode: precision._forward(checkpoint, cpu, mode, None) for mode in candidates}
    rows = [(mode, (lambda mode=mode: forwards[mode](picture.to(DTYPES[mode]))), "") for mode in candidates]
    print()
    wait_for_quiet(precision.others_cpu_share, args.quiet_wait)
    watch = precision.others_cpu_share()
    reference = {mode: seconds for mode, seconds, _ in time_round_robin(rows, args.repeats)}
    reference_pick = precision.pick(reference)
    print(f"(a) quiet side by side, median of {args.repeats} rounds taking turns ({share_text(watch())}):")
    print("    " + "   ".join(f"{mode} {seconds:.3f} s" for mode, seconds in reference.items())
          + f"   -> picks {reference_pick} (fastest: {min(reference, key=reference.get)})")

    # (b) the trial, quiet.
    print()
    wait_for_quiet(precision.others_cpu_share, args.quiet_wait)
    quiet = run_trial("(b) new trial, quiet", lambda: precision.measure_precisions(checkpoint, cpu, candidates))

    # (c) and (d) beside two busy processes on this process's cores.
    cores = sorted(os.sched_getaffinity(0))
    spin = (f"import os, time\nos.sched_setaffinity(0, {cores})\nend = time.time() + {BUSY_SECONDS}\n"
            "while time.time() < end: pass")
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        time.sleep(1.0)
        print()
        loaded = run_trial(f"(c) new trial beside 2 busy processes pinned to cores {cores}",
                           lambda: precision.measure_precisions(checkpoint, cpu, candidates))
        print()
        watch = precision.others_cpu_share()
        started = time.perf_counter()
        old = old_rule(checkpoint, cpu, candidates, forwards)
        old_pick = min(old, key=old.get)
        print(f"(d) old rule beside the same 2 busy processes ({share_text(watch())}, "
              f"{time.perf_counter() - started:.1f} s): fastest of 2 runs, one mode after the other:")
        print("    " + "   ".join(f"{mode} {seconds:.3f} s" for mode, seconds in old.items()) + f"   -> picks {old_pick}")
    finally:
        for process in busy:
            process.kill()
            process.wait()

    print()
    for what, chosen in (("(b) quiet trial", quiet.precision), ("(c) busy trial", loaded.precision), ("(d) old rule, busy", old_pick)):
        verdict = "yes" if chosen == reference_pick else "NO"
        print(f"{what} picks what (a) picks ({reference_pick}): {verdict} ({chosen})")
    kept = "kept for good" if loaded.settled else "not kept for good: measured again at the next start"
    print(f"(c) others used {share_text(loaded.others_share, bare=True)} of the cores, so its choice is {kept}")


def run_trial(title: str, trial: Callable[[], object]):
    started = time.perf_counter()
    choice = trial()
    print(f"{title}: {choice.describe()}")
    for t in choice.trials:
        if t.seconds is not None:
            print(f"    {t.precision}: median {t.seconds:.3f} s, quartiles {t.low:.3f}-{t.high:.3f} s, "
                  f"cosine {t.cosine:.5f}, same top-5 {t.same_top5}")
        else:
            print(f"    {t.precision}: not timed (cosine {t.cosine:.5f}, same top-5 {t.same_top5}{', ' + t.problem if t.problem else ''})")
    print(f"    {choice.rounds} rounds, timing {choice.timing_seconds:.1f} s, whole trial {time.perf_counter() - started:.1f} s "
          f"(agreement runs included), {share_text(choice.others_share)}")
    return choice


def old_rule(checkpoint, device, candidates: list[str], forwards: dict) -> dict[str, float]:
    """The trial before issue 26: per mode, one after the other, the three sample pictures at once
    (its agreement run), then the fastest of two single-picture forwards."""
    import torch

    from birdid_app.core.model import precision
    from birdid_app.core.model.inference import DTYPES
    from birdid_app.core.model.preprocess import to_model_input

    batch = torch.stack([to_model_input(p, checkpoint.image_size, checkpoint.rgb_mean, checkpoint.rgb_std)
                         for p in precision.sample_pictures()])
    fastest = {}
    with torch.inference_mode():
        for mode in candidates:
            forward, dtype = forwards[mode], DTYPES[mode]
            forward(batch.to(dtype))
            times = []
            for _ in range(2):
                started = time.perf_counter()
                forward(batch[:1].to(dtype))
                times.append(time.perf_counter() - started)
            fastest[mode] = min(times)
    return fastest


def wait_for_quiet(meter, longest: float) -> None:
    """Wait, in 2-second looks, until other programs use under 10% of this process's cores."""
    started = time.perf_counter()
    while time.perf_counter() - started < longest:
        watch = meter()
        time.sleep(2.0)
        share = watch()
        if share is None or share < 0.10:
            print(f"(waited {time.perf_counter() - started:.0f} s for the cores to be quiet)")
            return
    print(f"(the cores were not quiet after {longest:.0f} s: measuring anyway)")


def share_text(share: float | None, *, bare: bool = False) -> str:
    if share is None:
        return "unknown" if bare else "other programs' share of the cores unknown"
    return f"{share:.0%}" if bare else f"other programs used {share:.0%} of these cores meanwhile"


if __name__ == "__main__":
    main()
