"""What precision "auto" means on this computer: the fastest mode that agrees with fp32.

A mode agrees when, on the sample pictures, the embedding's cosine similarity to fp32's is at
least MIN_COSINE, the best species is the same and so are the five best (as a set: two species
at 0.4% each may swap places in bf16, which tells a person nothing). Only modes that can be
fast on the device are tried (bf16 on a CPU only where it runs natively: emulated it is slower
than fp32, and fp16 has no fast CPU kernels at all; int8 on every CPU, core/int8.py). The trial takes a few forward passes per
mode, once: the choice is kept in the data folder for this model file, device, torch and CPU,
and measured again when any of them changes.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from birdid_app.core import paths
from birdid_app.core.checkpoint import Checkpoint
from birdid_app.core.int8 import Int8Unavailable, prepare_int8
from birdid_app.core.preprocess import to_model_input

log = logging.getLogger(__name__)

MIN_COSINE = 0.999
# Timed single-picture runs per mode, after the three-picture agreement run has allocated and
# picked kernels; the fastest counts (noise on a busy laptop only ever adds time).
TIMED_RUNS = 2
# The torch model's dtype in each mode. int8 runs a quantised ONNX graph (core/int8.py) and keeps
# the float model for what the graph does not give: stage maps and Grad-CAM.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


@dataclass(frozen=True)
class PrecisionTrial:
    precision: str
    seconds: float  # the fastest forward of one picture
    cosine: float  # lowest embedding cosine similarity to fp32 over the sample pictures
    same_top5: bool  # the same best species, and the same five best, on every sample picture
    problem: str = ""  # why the mode could not run at all ("int8 could not be prepared: ..."), or ""

    @property
    def agrees(self) -> bool:
        return not self.problem and self.cosine >= MIN_COSINE and self.same_top5


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    trials: tuple[PrecisionTrial, ...]
    measured_now: bool  # False when the choice came from an earlier trial on this computer

    def describe(self) -> str:
        """One line for a person: which mode, and why."""
        if not self.trials:
            return f"{self.precision}, picked automatically: the only fast mode on this device"
        by_mode = {trial.precision: trial for trial in self.trials}
        fp32, chosen = by_mode["fp32"], by_mode[self.precision]
        rejected = [t.precision for t in self.trials if not t.agrees]
        reason = f"{self.precision}, picked automatically"
        if self.precision != "fp32":
            reason += (f": {chosen.seconds / fp32.seconds:.2f}x fp32's time on this computer, "
                       f"embedding cosine {chosen.cosine:.5f}, same top-5")
        elif len(self.trials) > 1:
            reason += ": no faster mode agreed with it" if rejected else ": no other mode was faster"
        failed = [t for t in self.trials if t.problem]
        rejected = [name for name in rejected if name not in {t.precision for t in failed}]
        if rejected:
            reason += f" ({', '.join(rejected)} did not agree with fp32)"
        for trial in failed:
            reason += f" ({trial.problem.rstrip('.')})"
        return reason


def candidate_precisions(device: torch.device, *, native_bf16: bool) -> list[str]:
    """Modes worth trying on `device`, fp32 first (it is the yardstick and always agrees)."""
    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    if device.type == "mps":
        return ["fp32", "fp16"]
    return ["fp32", "bf16", "int8"] if native_bf16 else ["fp32", "int8"]


def sample_pictures() -> list[Image.Image]:
    """The bundled sample, mirrored, and a close crop of it: three different inputs."""
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
) -> list[PrecisionTrial]:
    """Time each mode on one picture and compare its answers on all samples with fp32's.
    int8 is converted first when no kept conversion exists (`on_converting` is called then);
    one that cannot be prepared is a trial with its `problem`, and never chosen."""
    pictures = sample_pictures()
    batch = torch.stack([
        to_model_input(p, checkpoint.image_size, checkpoint.rgb_mean, checkpoint.rgb_std) for p in pictures
    ]).to(device)  # [3, 3, H, W]
    trials = []
    exact_embeddings = exact_best = exact_top5 = None
    for precision in precisions:
        dtype = DTYPES[precision]
        if precision == "int8":
            try:
                run = prepare_int8(checkpoint, on_converting=on_converting)
            except Int8Unavailable as error:
                log.warning("%s", error)
                trials.append(PrecisionTrial(precision, 0.0, 0.0, False, str(error)))
                continue
        else:
            model = checkpoint.build_model().to(device=device, dtype=dtype)

            def run(images: torch.Tensor, model=model) -> tuple[torch.Tensor, torch.Tensor]:
                output = model(images, stage_maps=False)
                return output.logits, output.embedding

        one = batch[:1].to(dtype)
        with torch.inference_mode():
            logits, embedding = run(batch.to(dtype))
            embeddings = embedding.float().cpu()
            best = logits.float().argmax(dim=-1).cpu()  # [pictures]
            five = min(5, logits.shape[-1])
            top5 = logits.float().topk(five, dim=-1).indices.sort(dim=-1).values.cpu()  # [pictures, 5], as sets
            times = []
            for _ in range(TIMED_RUNS):
                _synchronise(device)
                started = time.perf_counter()
                run(one)
                _synchronise(device)
                times.append(time.perf_counter() - started)
        if exact_embeddings is None:
            exact_embeddings, exact_best, exact_top5 = embeddings, best, top5
        cosine = float(torch.nn.functional.cosine_similarity(embeddings, exact_embeddings, dim=-1).min())
        same = torch.equal(best, exact_best) and torch.equal(top5, exact_top5)
        trials.append(PrecisionTrial(precision, min(times), cosine, same))
        del run
    return trials


def choose_precision(
    checkpoint: Checkpoint,
    device: torch.device,
    *,
    native_bf16: bool,
    on_measuring: Callable[[], None] | None = None,
    on_converting: Callable[[], None] | None = None,
) -> PrecisionChoice:
    """The fastest mode that agrees with fp32, from the kept trial when there is one for this
    model, device, torch and CPU; `on_measuring` is called before a new trial starts, and
    `on_converting` before int8 is converted for it."""
    precisions = candidate_precisions(device, native_bf16=native_bf16)
    if len(precisions) == 1:
        return PrecisionChoice(precisions[0], (), measured_now=False)
    key = _trial_key(checkpoint, device)
    trials = _kept_trials(key, precisions) if key else None
    measured_now = trials is None
    if trials is None:
        if on_measuring is not None:
            on_measuring()
        trials = measure_precisions(checkpoint, device, precisions, on_converting)
        if key:
            _keep_trials(key, trials)
    best = min((t for t in trials if t.agrees), key=lambda t: t.seconds)
    return PrecisionChoice(best.precision, tuple(trials), measured_now)


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trials_file() -> Path:
    return paths.data_dir() / "precision-trials.json"


def _trial_key(checkpoint: Checkpoint, device: torch.device) -> str | None:
    """Identifies what the trial depends on; None for a model that is not from a file."""
    model_file = checkpoint.file_key()
    if model_file is None:
        return None
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{platform.machine()} {_cpu_model()} x{torch.get_num_threads()} threads"
    return f"{model_file}|{device.type}|{hardware}|torch {torch.__version__}"


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


def _kept_trials(key: str, precisions: list[str]) -> list[PrecisionTrial] | None:
    try:
        trials = [PrecisionTrial(**entry) for entry in _read_kept().get(key, [])]
    except TypeError:  # written by another version: measure again
        return None
    return trials if [t.precision for t in trials] == precisions else None


def _keep_trials(key: str, trials: list[PrecisionTrial]) -> None:
    kept = _read_kept()
    kept[key] = [asdict(t) for t in trials]
    target = _trials_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(kept, indent=1), encoding="utf-8")
        scratch.replace(target)
    except OSError as error:  # a read-only data folder: measure again next time, carry on now
        log.warning("Could not keep the precision trial in %s: %s", target, error)
