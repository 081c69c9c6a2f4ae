"""Running the model: a Classifier owns the network, its device and precision, and turns decoded
photos into ranked species, an embedding and, when asked, the four stage maps, in one forward pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from birdid_app.core.errors import BirdidError, PhotoError
from birdid_app.core.model.checkpoint import Checkpoint, read_checkpoint
from birdid_app.core.model.int8 import Int8Model, Int8Unavailable, prepare_int8
from birdid_app.core.model.precision import choose_precision, torch_dtype
from birdid_app.core.model.preprocess import to_model_input
from birdid_app.core.options import DEVICES, PRECISIONS
from birdid_app.core.photos.photo import decode_photo

# Photos per forward pass: bounds memory (stage-1 maps are 3.5 MB a photo at 384x384) while
# still amortising per-call overhead.
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class SpeciesScore:
    name: str
    probability: float


@dataclass
class Identification:
    """What the model says about one photo."""

    source: str  # the file path, or a label for an image that came from elsewhere
    probabilities: np.ndarray  # [num_classes] float32, softmax of the logits
    embedding: np.ndarray  # [embedding_dim] float32
    stage_maps: tuple[np.ndarray, ...]  # four [C_s, H_s, W_s] float32, image layout; () when not asked for
    class_names: Sequence[str]
    forward_seconds: float  # wall time of the forward pass this photo was part of
    batch_size: int  # photos in that forward pass

    def ranked(self, top_k: int | None = None) -> list[SpeciesScore]:
        """Species by descending probability; all of them when top_k is None."""
        order = np.argsort(-self.probabilities, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        return [SpeciesScore(self.class_names[i], float(self.probabilities[i])) for i in order]


def resolve_device(requested: str = "auto") -> torch.device:
    """"auto" (CUDA, then Apple MPS, then CPU), "cpu", "mps", "cuda" or "cuda:N"."""
    kind, _, number = requested.partition(":")
    if kind not in DEVICES or (number and (kind != "cuda" or not number.isdigit())):
        raise BirdidError(f"Unknown device '{requested}'; choose one of {', '.join(DEVICES)} or cuda:N.")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if kind == "cuda" and not cuda:
        raise BirdidError("CUDA was requested, but this machine has no usable CUDA GPU.")
    if kind == "cuda" and number and int(number) >= torch.cuda.device_count():
        raise BirdidError(f"There is no GPU {requested}: this machine has {torch.cuda.device_count()}.")
    if kind == "mps" and not mps:
        raise BirdidError("Apple MPS was requested, but it is not available on this machine.")
    return torch.device(requested)


def available_devices() -> list[tuple[str, str]]:
    """(value, label) for every device this machine can run the model on, "auto" first."""
    devices = [("auto", "Automatic"), ("cpu", "CPU")]
    if torch.cuda.is_available():
        devices += [(f"cuda:{i}", f"{torch.cuda.get_device_name(i)} (cuda:{i})") for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(("mps", "Apple GPU (MPS)"))
    return devices


# A top answer below NOT_SURE_BELOW, or within CLOSE_CALL of the runner-up, is shown as "not sure"
# rather than as a confident-looking answer.
NOT_SURE_BELOW = 0.40
CLOSE_CALL = 0.15


class _Scored(Protocol):  # a SpeciesScore, or range_prior's PlacedSpecies
    @property
    def name(self) -> str: ...
    @property
    def probability(self) -> float: ...


def doubt(ranked: Sequence[_Scored]) -> str | None:
    """Why the top answer should not be trusted, in a few words, or None when it is clear."""
    if not ranked:
        return None
    top = ranked[0].probability
    if top < NOT_SURE_BELOW:
        return f"the best match has only {top:.0%}"
    if len(ranked) > 1 and top - ranked[1].probability < CLOSE_CALL:
        return f"{ranked[0].name} and {ranked[1].name} are close ({top:.0%} and {ranked[1].probability:.0%})"
    return None


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX). Without it
    torch emulates bf16 and is slower than fp32, so "auto" must not pick it. Read from Linux's
    /proc/cpuinfo; elsewhere this says False, which keeps fp32."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def check_precision(requested: str) -> str:
    if requested not in PRECISIONS:
        raise BirdidError(f"Unknown precision '{requested}'; choose one of {', '.join(PRECISIONS)}.")
    return requested


class Classifier:
    """The model ready to run. Not thread-safe: keep one per engine thread."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        device: str = "auto",
        precision: str = "auto",
        on_measuring_precision: Callable[[], None] | None = None,
        on_converting: Callable[[], None] | None = None,
    ) -> None:
        """precision "auto" runs the fastest mode that agrees with fp32 on this computer, or a
        simpler one as fast (core/model/precision.py): measured once per model and device (again if
        the computer was busy), a few seconds for the base model, and `on_measuring_precision`
        is called first so a window can say so.

        int8 (the CPU only) runs a quantised copy of the model with ONNX Runtime (core/model/int8.py),
        converted once per model file (about half a minute for the base model; `on_converting`
        is called first) and kept; its graph gives the stage maps too, so every answer and map comes
        from it. `self.model` stays the float model in every mode: Grad-CAM's gradients need it."""
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self._on_converting = on_converting
        if check_precision(precision) == "auto":
            self._choose_precision(on_measuring_precision)
        else:
            if precision == "int8" and self.device.type != "cpu":
                raise BirdidError(f"int8 runs on the CPU only; choose fp32, bf16 or fp16 for {self.device}, or the CPU.")
            self.precision, self.precision_reason = precision, f"{precision}, as asked"
        self._set_up_model()
        self.batch_size = DEFAULT_BATCH_SIZE  # halved when the device runs out of memory
        self.notice: str | None = None  # set when the classifier had to change course (e.g. to the CPU)

    def _set_up_model(self) -> None:
        """The float model in this precision's dtype, and the int8 graph when the mode is int8.
        Built from the file's fp32 weights every time (fp16 -> bf16 would round twice)."""
        self.int8: Int8Model | None = None
        if self.precision == "int8":
            try:
                self.int8 = prepare_int8(self.checkpoint, on_converting=self._on_converting)
            except Int8Unavailable as error:
                if self.precision_reason.endswith("as asked"):
                    raise
                # Chosen by a kept trial, but no longer available: fp32 always is.
                self.precision, self.precision_reason = "fp32", f"fp32: {error}"
        self.dtype = torch_dtype(self.precision)
        self.model = self.checkpoint.build_model().to(device=self.device, dtype=self.dtype)

    def _choose_precision(self, on_measuring: Callable[[], None] | None = None) -> None:
        """"auto" on this device: the fastest mode that agrees with fp32, or a simpler one as
        fast (core/model/precision.py)."""
        choice = choose_precision(
            self.checkpoint, self.device, native_bf16=cpu_has_native_bf16(), on_measuring=on_measuring,
            on_converting=self._on_converting,
        )
        self.precision, self.precision_reason = choice.precision, choice.describe()

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        device: str = "auto",
        precision: str = "auto",
        on_measuring_precision: Callable[[], None] | None = None,
        on_converting: Callable[[], None] | None = None,
        check_crc: bool = True,
    ) -> Classifier:
        """`check_crc=False` only for a path from ModelStore.checked_path, whose CRC-32s the
        store has already compared (read_checkpoint)."""
        return cls(
            read_checkpoint(path, check_crc=check_crc),
            device=device,
            precision=precision,
            on_measuring_precision=on_measuring_precision,
            on_converting=on_converting,
        )

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    @property
    def image_size(self) -> tuple[int, int]:
        return self.checkpoint.image_size

    def head_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The classifier layer, float32 on the CPU: (weight [num_classes, embedding_dim], bias
        [num_classes]); the logits of any embedding this model gave are weight @ e + bias."""
        layer = self.model.classifier
        return layer.weight.detach().float().cpu().numpy(), layer.bias.detach().float().cpu().numpy()

    def model_input(self, image: Image.Image) -> torch.Tensor:
        """[3, H, W] float32 on the CPU, exactly as Birder's inference preset makes it."""
        return to_model_input(image, self.image_size, self.checkpoint.rgb_mean, self.checkpoint.rgb_std)

    def identify_images(
        self,
        images: Sequence[Image.Image],
        sources: Sequence[str] | None = None,
        *,
        keep_stage_maps: bool = True,
    ) -> list[Identification]:
        """Decoded RGB images -> one Identification each, in batches of at most `batch_size`.
        Without `keep_stage_maps` the model builds no stage maps and the results carry none
        (6.6 MB a photo at 384x384), for callers that need only the species and the embedding."""
        sources = list(sources) if sources is not None else [f"image {i + 1}" for i in range(len(images))]
        return self._identify_inputs([self.model_input(image) for image in images], sources, keep_stage_maps)

    def _identify_inputs(
        self, inputs: Sequence[torch.Tensor], sources: Sequence[str], keep_stage_maps: bool
    ) -> list[Identification]:
        """Model inputs ([3, H, W] float32 each) -> Identifications, batched; on running out of
        device memory the same photos go again in smaller batches, or on the CPU."""
        results: list[Identification] = []
        start = 0
        while start < len(inputs):
            size = self.batch_size
            batch = torch.stack(list(inputs[start : start + size]))  # [B, 3, H, W]
            try:
                results += self._forward(batch, sources[start : start + size], keep_stage_maps)
            except torch.OutOfMemoryError:
                self._recover_from_out_of_memory()
                continue  # the same photos again, in smaller batches or on the CPU
            start += len(batch)
        return results

    def _recover_from_out_of_memory(self) -> None:
        """Halve the batch; at one photo a batch, move to the CPU; on the CPU, give up clearly."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            return
        if self.device.type != "cpu":
            lost = self.device
            self.device = torch.device("cpu")
            self._choose_precision()
            self._set_up_model()
            self.batch_size = DEFAULT_BATCH_SIZE
            self.notice = f"The GPU ({lost}) ran out of memory, so birdid carries on on the CPU ({self.precision})."
            return
        raise BirdidError("There is not enough memory to run the model, even one photo at a time on the CPU.")

    def identify_files(
        self, paths: Iterable[str | Path], *, keep_stage_maps: bool = True
    ) -> list[Identification | PhotoError]:
        """One entry per path, in order: an Identification, or the PhotoError that stopped that photo.
        A photo that cannot be read never stops the others."""
        return list(self.iter_identify_files(paths, keep_stage_maps=keep_stage_maps))

    def iter_identify_files(
        self, paths: Iterable[str | Path], *, keep_stage_maps: bool = False
    ) -> Iterator[Identification | PhotoError]:
        """Like identify_files, one result at a time, in bounded memory: a batch of photos is
        decoded, each turned into the model's input at once (its decoded picture let go), and
        identified before the next batch is read. Memory does not grow with the number of
        photos, only the results do (small without stage maps)."""
        pending = list(paths)
        for start in range(0, len(pending), DEFAULT_BATCH_SIZE):
            chunk = [Path(p) for p in pending[start : start + DEFAULT_BATCH_SIZE]]
            inputs: list[torch.Tensor] = []
            results: list[Identification | PhotoError | None] = [None] * len(chunk)
            for index, path in enumerate(chunk):
                try:
                    inputs.append(self.model_input(decode_photo(path, draft_size=self.image_size)))
                except PhotoError as error:
                    results[index] = error
            identified = iter(self._identify_inputs(
                inputs, [str(p) for p, r in zip(chunk, results, strict=True) if r is None], keep_stage_maps
            ))
            for result in results:
                yield result if result is not None else next(identified)

    def _forward(self, batch: torch.Tensor, sources: Sequence[str], keep_stage_maps: bool = True) -> list[Identification]:
        started = time.perf_counter()
        with torch.inference_mode():
            if self.int8 is not None and (not keep_stage_maps or self.int8.has_stage_maps):
                # The int8 graph gives the answer everywhere (window, CLI, library, selftest): one
                # photo, one answer; its stage maps come from the same run.
                logits, embedding, *maps = self.int8(batch, stage_maps=keep_stage_maps)
            else:
                out = self.model(batch.to(device=self.device, dtype=self.dtype), stage_maps=keep_stage_maps)
                logits, embedding, maps = out.logits, out.embedding, out.stage_maps
            probabilities = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            embeddings = embedding.float().cpu().numpy()
            stage_maps = [m.float().cpu().numpy() for m in maps]
        seconds = time.perf_counter() - started
        return [
            Identification(
                source=source,
                probabilities=probabilities[i],
                embedding=embeddings[i],
                stage_maps=tuple(m[i] for m in stage_maps),  # () without keep_stage_maps
                class_names=self.class_names,
                forward_seconds=seconds,
                batch_size=len(sources),
            )
            for i, source in enumerate(sources)
        ]
