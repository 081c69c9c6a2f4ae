"""What precision "auto" means on this computer: the fastest mode that agrees with fp32, or a
simpler one that is as fast.

Agreement: on the sample pictures, a mode's embedding has cosine similarity at least MIN_COSINE
to fp32's, and the best species is the same and so are the five best (as a set: two species at
0.4% each may swap places in bf16, which tells a person nothing). Only modes that can be fast on
the device are tried (bf16 on a CPU only where it runs natively: emulated it is slower than
fp32, and fp16 has no fast CPU kernels at all; int8 on every CPU, core/model/int8.py).

Speed, the steady trial (core/model/precision_timing.py): the modes that agree are timed interleaved,
one single-picture forward each per round, so that a neighbour's load falls on every mode alike,
and the order turns every round (`round_order`) so that no mode always runs first, or after the same other. A warm-up round
is not counted. From MIN_ROUNDS rounds on, the trial stops as soon as the pick is clear
(`pick_is_clear`: the pick would be the same whichever value inside its interquartile range each
mode's median took), else after MAX_ROUNDS rounds or TIMING_BUDGET_S seconds, so a quiet machine
is done in a few rounds and a noisy one is bounded. The modes are compared by their medians over
the same rounds (`pick`): a single disturbed round moves a median little, a mean much, and a min
rewards the one lucky run. The fastest wins, but a simpler mode (SIMPLICITY) within TIE_FRACTION
of it is preferred: fewer things to go wrong, and no conversion to keep.

A busy computer: beside programs that keep its cores busy the modes do not slow down alike
(torch's threads wait for each other at every layer and lose their turn; ONNX Runtime's yield):
on a 2-core EPYC, bf16 and int8 run at the same speed quietly and int8 2-8x faster beside two busy
processes. So no timing taken then says how the modes compare on this computer. On Linux the
trial reads how much of its cores other programs used while it timed (`others_cpu_share`); above
BUSY_SHARE its choice is used, but measured again at the next load, up to MAX_BUSY_TRIALS trials
in a row (a computer always that busy keeps the last).

The choice is kept in the data folder (precision-trials.json) for this model file, device, torch
and CPU, with what was measured, and measured again when any of them changes or on request
(`forget_trials`: `birdid model retune`, Settings > Measure again). Importing this module loads
no torch, so `birdid model list` and the window read and forget kept trials without it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from birdid_app.core import paths

# The timing's names are imported from here too.
from birdid_app.core.model.precision_timing import (  # noqa: F401
    MAX_ROUNDS,
    MIN_ROUNDS,
    SIMPLICITY,
    TIE_FRACTION,
    TIMING_BUDGET_S,
    Pause,
    Timings,
    others_cpu_share,
    pick,
    pick_is_clear,
    round_order,
    summarise,
    time_interleaved,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from birdid_app.core.model.checkpoint import Checkpoint

log = logging.getLogger(__name__)

MIN_COSINE = 0.999
BUSY_SHARE = 0.25  # other programs' share of the trial's cores above which its timings are not trusted
MAX_BUSY_TRIALS = 3
FORMAT = 2  # of a kept trial; bump when what is kept changes: an entry in another format is measured again
KEPT_FIELDS = {"format", "device", "hardware", "torch", "precision", "trials", "rounds", "timing_seconds",
               "others_share", "busy_trials"}


@dataclass(frozen=True)
class PrecisionTrial:
    precision: str
    cosine: float  # lowest embedding cosine similarity to fp32 over the sample pictures
    same_top5: bool  # the same best species, and the same five best, on every sample picture
    problem: str = ""  # why the mode could not run at all ("int8 could not be prepared: ..."), or ""
    # A single-picture forward over the interleaved rounds: the median and the quartiles; None
    # for a mode not timed (it did not agree, or no other mode did).
    seconds: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def agrees(self) -> bool:
        return not self.problem and self.cosine >= MIN_COSINE and self.same_top5


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    trials: tuple[PrecisionTrial, ...]
    measured_now: bool  # False when the choice came from an earlier trial on this computer
    rounds: int = 0  # interleaved rounds timed (0: no timing, at most one mode agreed)
    timing_seconds: float = 0.0  # how long the timing took, warm-up included
    others_share: float | None = None  # other programs' share of the trial's cores meanwhile; None: unknown
    busy_trials: int = 0  # trials in a row taken on a busy computer, this one included

    @property
    def busy(self) -> bool:
        return self.others_share is not None and self.others_share > BUSY_SHARE

    @property
    def settled(self) -> bool:
        """Whether this choice is kept for good (else it is measured again at the next load)."""
        return not self.busy or self.busy_trials >= MAX_BUSY_TRIALS

    def describe(self) -> str:
        """One line for a person: which mode, what was measured, and why."""
        if not self.trials:
            return f"{self.precision}, picked automatically: the only fast mode on this device"
        by_mode = {trial.precision: trial for trial in self.trials}
        chosen = by_mode[self.precision]
        reason = f"{self.precision}, picked automatically"
        timed = [t for t in self.trials if t.seconds is not None]
        if chosen.seconds is not None:
            others = [f"{t.precision} {t.seconds:.3f} s" for t in timed if t is not chosen]
            against = ", ".join(others[:-1]) + (" and " if len(others) > 1 else "") + others[-1]
            reason += (f": median {chosen.seconds:.3f} s a photo against {against} over {self.rounds} "
                       f"interleaved rounds")
            fastest = min(timed, key=lambda t: t.seconds or 0.0)  # timed: seconds never None
            if fastest is not chosen:
                reason += f" ({fastest.precision} within {TIE_FRACTION:.0%}: the simpler mode wins)"
        elif len(self.trials) > 1:
            reason += ": no other mode agreed with it"
        failed = [t for t in self.trials if t.problem]
        rejected = [t.precision for t in self.trials if not t.agrees and not t.problem]
        if rejected:
            reason += f" ({', '.join(rejected)} did not agree with fp32)"
        for trial in failed:
            reason += f" ({trial.problem.rstrip('.')})"
        if self.busy:
            reason += f"; other programs used {self.others_share:.0%} of the CPU meanwhile, "
            reason += (f"as in {self.busy_trials} trials in a row, so it is kept" if self.settled
                       else "so it is measured again at the next start")
        return reason


# --- the trial --------------------------------------------------------------------------------


def torch_dtype(precision: str) -> torch.dtype:
    """The torch model's dtype in each mode. int8 runs a quantised ONNX graph (core/model/int8.py) and
    keeps the float model for what the graph does not give: stage maps and Grad-CAM."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}[precision]


def candidate_precisions(device: torch.device, *, native_bf16: bool) -> list[str]:
    """Modes worth trying on `device`, fp32 first (it is the yardstick and always agrees)."""
    import torch

    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    if device.type == "mps":
        return ["fp32", "fp16"]
    return ["fp32", "bf16", "int8"] if native_bf16 else ["fp32", "int8"]


def sample_pictures() -> list[Image.Image]:
    """The bundled sample, mirrored, and a close crop of it: three different inputs."""
    from PIL import Image, ImageOps

    with Image.open(paths.sample_picture()) as opened:
        picture = opened.convert("RGB")
    width, height = picture.size
    crop = picture.crop((width // 4, height // 6, width * 3 // 4, height * 5 // 6))
    return [picture, ImageOps.mirror(picture), crop]


def measure_precisions(
    checkpoint: Checkpoint,
    device: torch.device,
    precisions: list[str],
    on_converting: Callable[[], None] | None = None,
    *,
    on_progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    pause: Pause | None = None,
) -> PrecisionChoice:
    """Compare each mode's answers on all samples with fp32's, then time the modes that agree
    (`time_interleaved`) and pick one. int8 is converted first when no kept conversion exists
    (`on_converting` is called then); one that cannot be prepared is a trial with its `problem`,
    and never chosen. `on_progress` is given a line as each step starts and after every round.
    All modes stay in memory until the timing ends (the base model: about 400 MB on the CPU)."""
    import torch

    from birdid_app.core.model.int8 import Int8Unavailable
    from birdid_app.core.model.preprocess import to_model_input

    say = on_progress or (lambda line: None)
    pictures = sample_pictures()
    batch = torch.stack([
        to_model_input(p, checkpoint.image_size, checkpoint.rgb_mean, checkpoint.rgb_std) for p in pictures
    ]).to(device)  # [3, 3, H, W]
    checked: list[PrecisionTrial] = []
    runs: dict[str, Callable[[], object]] = {}
    exact: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # fp32's embeddings, best, top 5
    for precision in precisions:
        say(f"checking {precision} against fp32 on {len(pictures)} sample pictures")
        try:
            forward = _forward(checkpoint, device, precision, on_converting)
        except Int8Unavailable as error:
            log.warning("%s", error)
            checked.append(PrecisionTrial(precision, 0.0, False, str(error)))
            continue
        dtype = torch_dtype(precision)
        with torch.inference_mode():
            logits, embedding = forward(batch.to(dtype))
        embeddings = embedding.float().cpu()
        best = logits.float().argmax(dim=-1).cpu()  # [pictures]
        five = min(5, logits.shape[-1])
        top5 = logits.float().topk(five, dim=-1).indices.sort(dim=-1).values.cpu()  # [pictures, 5], as sets
        if exact is None:
            exact = (embeddings, best, top5)
        exact_embeddings, exact_best, exact_top5 = exact
        cosine = float(torch.nn.functional.cosine_similarity(embeddings, exact_embeddings, dim=-1).min())
        trial = PrecisionTrial(precision, cosine, torch.equal(best, exact_best) and torch.equal(top5, exact_top5))
        checked.append(trial)
        if trial.agrees:
            runs[precision] = _timed_call(forward, batch[:1].to(dtype), device)
    agreeing = list(runs)
    if len(agreeing) < 2:  # fp32 always agrees: nothing to weigh it against
        return PrecisionChoice(agreeing[0] if agreeing else "fp32", tuple(checked), measured_now=True)

    say(f"timing {', '.join(agreeing)} in turn, one photo each per round")
    watch = others_cpu_share()
    with torch.inference_mode():
        timings = time_interleaved(runs, clock=clock, on_round=lambda t: say(_round_line(t)), pause=pause)
    others = watch()
    summary = timings.summary()
    trials = tuple(
        replace(trial, seconds=summary[trial.precision][0], low=summary[trial.precision][1],
                high=summary[trial.precision][2]) if trial.precision in summary else trial
        for trial in checked
    )
    choice = PrecisionChoice(
        pick({mode: median for mode, (median, _, _) in summary.items()}), trials, measured_now=True,
        rounds=timings.rounds, timing_seconds=timings.seconds, others_share=others,
    )
    return replace(choice, busy_trials=1) if choice.busy else choice


def choose_precision(
    checkpoint: Checkpoint,
    device: torch.device,
    *,
    native_bf16: bool,
    on_measuring: Callable[[], None] | None = None,
    on_converting: Callable[[], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    pause: Pause | None = None,
) -> PrecisionChoice:
    """The pick of the trial kept for this model, device, torch and CPU when there is a settled
    one, else of a new trial, kept; `on_measuring` is called before a new trial starts,
    `on_converting` before int8 is converted for it, `on_progress` with a line at every step,
    and `pause` keeps its timing out of other work's way (time_interleaved)."""
    precisions = candidate_precisions(device, native_bf16=native_bf16)
    if len(precisions) == 1:
        return PrecisionChoice(precisions[0], (), measured_now=False)
    key = _trial_key(checkpoint.file_key(), device)
    kept = _kept_choice(key, precisions) if key else None
    if kept is not None and kept.settled:
        return kept
    if on_measuring is not None:
        on_measuring()
    choice = measure_precisions(checkpoint, device, precisions, on_converting, on_progress=on_progress, pause=pause)
    if choice.busy and kept is not None:  # a kept trial that is not settled was busy too
        choice = replace(choice, busy_trials=kept.busy_trials + 1)
    if key:
        _keep(key, choice, device)
    return choice


def kept_choice(checkpoint: Checkpoint, device: torch.device, *, native_bf16: bool) -> PrecisionChoice | None:
    """The settled kept pick for this model, device, torch and CPU, without measuring; None when
    "auto" would have to measure (or when there is only one mode: see ready_precision)."""
    precisions = candidate_precisions(device, native_bf16=native_bf16)
    if len(precisions) == 1:
        return PrecisionChoice(precisions[0], (), measured_now=False)
    key = _trial_key(checkpoint.file_key(), device)
    kept = _kept_choice(key, precisions) if key else None
    return kept if kept is not None and kept.settled else None


def ready_precision(device: torch.device, *, native_bf16: bool) -> str:
    """The fastest mode that needs no preparation and no measuring: bf16 where the device runs
    it natively (a CPU with AVX-512 BF16 or AMX, a GPU that supports it), else fp32. What "auto"
    answers with while the trial has not been made (int8 needs a conversion first)."""
    if device.type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and native_bf16 else "fp32"


def _forward(checkpoint: Checkpoint, device: torch.device, precision: str, on_converting):
    """images [B, 3, H, W] in the mode's dtype -> (logits, embedding), in `precision`."""
    if precision == "int8":
        from birdid_app.core.model.int8 import prepare_int8

        return prepare_int8(checkpoint, on_converting=on_converting)

    model = checkpoint.build_model().to(device=device, dtype=torch_dtype(precision))

    def forward(images):
        output = model(images, stage_maps=False)
        return output.logits, output.embedding

    return forward


def _timed_call(forward, picture, device) -> Callable[[], None]:
    """One forward of `picture`, finished on the device when it returns (a GPU runs ahead)."""

    def run() -> None:
        forward(picture)
        _synchronise(device)

    return run


def _round_line(timings: Timings) -> str:
    medians = ", ".join(f"{mode} {median:.3f} s" for mode, (median, _, _) in timings.summary().items())
    return f"round {timings.rounds}: medians {medians} ({timings.seconds:.1f} s so far)"


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


# --- what is kept ------------------------------------------------------------------------------


def forget_trials(model: Checkpoint | str | Path, device: torch.device | None = None) -> int:
    """Forget the kept trials of a model file (a Checkpoint read from one, or its path), so the
    next load measures again: the one for `device` with this torch and CPU, or with no device
    every one kept for the file. Returns how many were forgotten."""
    path = Path(model) if isinstance(model, str | Path) else model.path
    if path is None:
        return 0
    kept = _read_kept()
    if device is not None:
        key = _trial_key(paths.file_key(path), device)
        forgotten = [entry_key for entry_key in kept if entry_key == key]
    else:  # every size and time the file had: older ones are never used again either
        forgotten = [entry_key for entry_key in kept if entry_key.startswith(f"{path.resolve()}|")]
    if forgotten:
        _write_kept({entry_key: entry for entry_key, entry in kept.items() if entry_key not in forgotten})
    return len(forgotten)


def kept_choices(model_path: str | Path) -> list[tuple[str, PrecisionChoice]]:
    """(where it was measured, the choice) for every trial kept for this model file as it is now,
    e.g. ("cpu, x86_64 AMD EPYC x2 threads, torch 2.14.1", choice); [] when none is."""
    model_file = paths.file_key(Path(model_path))
    if model_file is None:
        return []
    found = []
    for key, entry in _read_kept().items():
        if key.startswith(f"{model_file}|"):
            choice = _choice_from(entry)
            if choice is not None:  # an entry _choice_from reads has every field _keep writes
                found.append((f"{entry['device']}, {entry['hardware']}, torch {entry['torch']}", choice))
    return found


def _trials_file() -> Path:
    return paths.data_dir() / "precision-trials.json"


def _trial_key(model_file: str | None, device: torch.device) -> str | None:
    """Identifies what the trial depends on, from the model's paths.file_key; None for a model
    that is not from a file."""
    if model_file is None:
        return None
    import torch

    return f"{model_file}|{device.type}|{_hardware(device)}|torch {torch.__version__}"


def _hardware(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} {_cpu_model()} x{torch.get_num_threads()} threads"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _read_kept() -> dict:
    try:
        kept = json.loads(_trials_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _choice_from(entry) -> PrecisionChoice | None:
    """The kept choice in an entry, or None for one written by another version, or damaged."""
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or not KEPT_FIELDS <= entry.keys():
        return None
    try:
        trials = tuple(PrecisionTrial(**trial) for trial in entry["trials"])
        choice = PrecisionChoice(
            entry["precision"], trials, measured_now=False, rounds=int(entry["rounds"]),
            timing_seconds=float(entry["timing_seconds"]), others_share=entry["others_share"],
            busy_trials=int(entry["busy_trials"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return choice if choice.precision in {t.precision for t in trials if t.agrees} else None


def _kept_choice(key: str, precisions: list[str]) -> PrecisionChoice | None:
    choice = _choice_from(_read_kept().get(key))
    return choice if choice is not None and [t.precision for t in choice.trials] == precisions else None


def _keep(key: str, choice: PrecisionChoice, device: torch.device) -> None:
    import torch

    kept = _read_kept()
    kept[key] = {
        "format": FORMAT,
        "device": device.type,
        "hardware": _hardware(device),
        "torch": torch.__version__,
        "precision": choice.precision,
        "trials": [asdict(trial) for trial in choice.trials],
        "rounds": choice.rounds,
        "timing_seconds": choice.timing_seconds,
        "others_share": choice.others_share,
        "busy_trials": choice.busy_trials,
    }
    _write_kept(kept)


def _write_kept(kept: dict) -> None:
    target = _trials_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(kept, indent=1), encoding="utf-8")
        scratch.replace(target)
    except OSError as error:  # a read-only data folder: measure again next time, carry on now
        log.warning("Could not keep the precision trial in %s: %s", target, error)
