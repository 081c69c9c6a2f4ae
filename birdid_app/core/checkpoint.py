"""Birder's classification checkpoint format: read, validate, write.

A file is a `torch.save` of a dict with `state` (the state_dict), `signature`, `class_to_idx`,
`rgb_stats`, `task`, `birder_version` and, optionally, `config`. It names no network: the Hiera
shape (width, depths, image size) is read from the tensor names and shapes. Reading never runs
code from the file (`weights_only=True`), and every check happens before a model is built.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from birdid_app.core.errors import CheckpointError
from birdid_app.core.hiera import GLOBAL_POS_EMBED_STRIDE, Hiera, HieraConfig

CLASSIFICATION_TASK = "image_classification"
# Heads cannot be read from tensor shapes (qkv is [3*C, C] whatever the split). A file's own
# `config` wins; otherwise the stage-1 head count of the published Hiera family of that width.
HEADS_BY_WIDTH = {96: 1, 112: 2, 144: 2, 256: 4}
_BLOCK_KEY = re.compile(r"^body\.stage(\d+)\.(\d+)\.")


@dataclass
class Checkpoint:
    config: HieraConfig
    state: dict[str, torch.Tensor]
    class_names: list[str]  # index -> species name, as the classifier's rows
    rgb_mean: tuple[float, float, float]
    rgb_std: tuple[float, float, float]
    birder_version: str | None = None
    path: Path | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.image_size

    def build_model(self) -> Hiera:
        """The network with these weights, in eval mode, on the CPU, in the file's dtype.

        Built on the meta device and given the file's tensors (assign=True): no time is spent
        on a random initialisation the weights would overwrite, nor memory on a second copy."""
        with torch.device("meta"):
            model = Hiera(self.config)
        model.load_state_dict(self.state, strict=True, assign=True)
        return model.eval()


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a Birder Hiera AbsWin classification checkpoint.

    Raises CheckpointError, with one sentence naming the file, for anything that is not one.
    """
    path = Path(path)
    raw = _load_file(path)
    return _validate(path, raw)


def write_checkpoint(
    path: str | Path,
    model: Hiera,
    class_names: list[str],
    rgb_mean: tuple[float, float, float],
    rgb_std: tuple[float, float, float],
    *,
    birder_version: str = "birdid",
) -> None:
    """Write `model` in Birder's format, loadable by Birder and by `read_checkpoint`."""
    config = model.config
    if len(class_names) != config.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {config.num_classes}-class model")
    height, width = config.image_size
    torch.save(
        {
            "state": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "birder_version": birder_version,
            "task": CLASSIFICATION_TASK,
            "signature": {
                "inputs": [{"data_shape": [0, 3, height, width]}],
                "outputs": [{"data_shape": [0, config.num_classes]}],
            },
            "class_to_idx": {name: index for index, name in enumerate(class_names)},
            "rgb_stats": {"mean": list(rgb_mean), "std": list(rgb_std)},
            # Birder's own key for a non-registered configuration; also tells readers the heads.
            "config": {
                "depths": list(config.depths),
                "embed_dim": config.embed_dim,
                "num_heads": config.num_heads,
                "abs_win_pos_embed": True,
            },
        },
        Path(path),
    )


def _load_file(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(path, "no such file.")
    if path.is_dir():
        raise CheckpointError(path, "is a folder, not a model file.")
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc}).") from exc
    if not head:
        raise CheckpointError(path, "the file is empty.")
    # torch.save writes a zip archive; a file that starts like one but has no readable
    # directory at its end was cut short (an interrupted copy or download).
    if head != b"PK\x03\x04":
        raise CheckpointError(path, "is not a PyTorch model file.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(path, "is truncated or damaged (the model file is incomplete).")
    try:
        # Not mmap: a mapped file that is overwritten in place (a copy over it, a test tampering
        # with it) kills the process with SIGBUS at the next touch of a weight. Reading it is
        # 0.15 s for 200 MB, and then the weights belong to us.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            path, "holds Python objects or code beyond plain weights, which birdid refuses to load."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(path, "is truncated or damaged (the model file is incomplete).") from exc


def _validate(path: Path, raw: Any) -> Checkpoint:
    def fail(problem: str) -> CheckpointError:
        return CheckpointError(path, problem)

    required = ("state", "signature", "class_to_idx", "rgb_stats", "task")
    if not isinstance(raw, dict) or any(key not in raw for key in required):
        raise fail("is not a Birder model file (it lacks the state, signature, classes or colour statistics).")
    task = raw["task"]
    if task != CLASSIFICATION_TASK:
        kind = str(task).replace("_", " ")
        raise fail(f"is a model for {kind}; birdid needs an image classification model.")

    state = raw["state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise fail("is not a Birder model file (its state is not a set of tensors).")
    if "pos_embed_win" not in state or "body.stage1.0.attn.qkv.weight" not in state:
        raise fail("is not a Hiera AbsWin network, the only kind birdid runs.")

    num_classes, image_size = _read_signature(raw["signature"], fail)
    class_names = _read_classes(raw["class_to_idx"], num_classes, fail)
    rgb_mean, rgb_std = _read_rgb_stats(raw["rgb_stats"], fail)
    extra_config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    config = _infer_config(state, num_classes, image_size, extra_config, fail)
    classifier = state.get("classifier.weight")
    if classifier is not None and classifier.ndim == 2 and classifier.shape[0] != num_classes:
        raise fail(f"names {num_classes} classes but its classifier has {classifier.shape[0]} outputs.")
    _check_tensors(state, config, fail)

    birder_version = raw.get("birder_version")
    return Checkpoint(
        config=config,
        state=state,
        class_names=class_names,
        rgb_mean=rgb_mean,
        rgb_std=rgb_std,
        birder_version=str(birder_version) if birder_version is not None else None,
        path=path,
        extra_config=dict(extra_config),
    )


def _read_signature(signature: Any, fail) -> tuple[int, tuple[int, int]]:
    try:
        in_shape = list(signature["inputs"][0]["data_shape"])
        out_shape = list(signature["outputs"][0]["data_shape"])
    except (KeyError, IndexError, TypeError) as exc:
        raise fail("has a malformed signature (no input and output shapes).") from exc
    if len(in_shape) != 4 or in_shape[1] != 3 or len(out_shape) != 2:
        raise fail(f"has input shape {in_shape} and output shape {out_shape}; birdid needs RGB images in, classes out.")
    return int(out_shape[1]), (int(in_shape[2]), int(in_shape[3]))


def _read_classes(class_to_idx: Any, num_classes: int, fail) -> list[str]:
    if not isinstance(class_to_idx, dict) or len(class_to_idx) != num_classes:
        count = len(class_to_idx) if isinstance(class_to_idx, dict) else 0
        raise fail(f"names {count} classes but its signature has {num_classes}.")
    names: list[str | None] = [None] * num_classes
    for name, index in class_to_idx.items():
        if not isinstance(index, int) or not 0 <= index < num_classes or names[index] is not None:
            raise fail(f"has a class list that does not number the classes 0 to {num_classes - 1} once each.")
        names[index] = str(name)
    return names  # type: ignore[return-value]  # every slot was filled exactly once above


def _read_rgb_stats(rgb_stats: Any, fail) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        mean = tuple(float(v) for v in rgb_stats["mean"])
        std = tuple(float(v) for v in rgb_stats["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise fail("has no usable colour statistics (rgb_stats mean and std).") from exc
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise fail("has no usable colour statistics (rgb_stats needs three means and three positive deviations).")
    return mean, std


def _infer_config(
    state: dict[str, torch.Tensor], num_classes: int, image_size: tuple[int, int], extra: dict, fail
) -> HieraConfig:
    blocks: dict[int, set[int]] = {}
    for key in state:
        if match := _BLOCK_KEY.match(key):
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    if sorted(blocks) != [1, 2, 3, 4] or any(sorted(b) != list(range(len(b))) for b in blocks.values()):
        raise fail("has a Hiera body that is not four stages of consecutively numbered blocks.")
    depths = tuple(len(blocks[stage]) for stage in (1, 2, 3, 4))

    stem = state.get("stem.proj.weight")
    if stem is None or stem.ndim != 4 or stem.shape[1] != 3:
        raise fail("has no usable patch embedding (stem.proj.weight).")
    embed_dim = int(stem.shape[0])

    pos_embed = state.get("pos_embed")
    expected_grid = tuple(s // GLOBAL_POS_EMBED_STRIDE for s in image_size)
    if pos_embed is None or tuple(pos_embed.shape[2:]) != expected_grid:
        shape = list(pos_embed.shape) if pos_embed is not None else None
        raise fail(f"has a position embedding of shape {shape}, which does not fit its {image_size} input size.")

    if extra.get("attn_pool_head") or any(k.startswith("features.0.") for k in state):
        raise fail("has an attention-pooling head, which birdid does not run.")

    num_heads = extra.get("num_heads", HEADS_BY_WIDTH.get(embed_dim))
    if not isinstance(num_heads, int):
        raise fail(f"does not say how many attention heads its {embed_dim}-channel layers have.")
    try:
        return HieraConfig(embed_dim, depths, num_heads, num_classes, image_size)
    except ValueError as exc:
        raise fail(f"describes a network birdid cannot build ({exc}).") from exc


def _check_tensors(state: dict[str, torch.Tensor], config: HieraConfig, fail) -> None:
    # Build on the meta device: shapes only, no memory, no time.
    with torch.device("meta"):
        expected = Hiera(config).state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise fail(f"lacks {len(missing)} tensors the network needs, the first being {missing[0]}.")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise fail(f"has {len(unexpected)} tensors a Hiera AbsWin does not use, the first being {unexpected[0]}.")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise fail(f"has {key} of shape {list(state[key].shape)} where {list(tensor.shape)} was expected.")
