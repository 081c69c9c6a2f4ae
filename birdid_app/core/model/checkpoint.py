"""Birder's classification checkpoint format: read, validate, write.

A file is a `torch.save` of a dict with `state` (the state_dict), `signature`, `class_to_idx`,
`rgb_stats`, `task`, `birder_version` and, optionally, `config`. It names no network: the Hiera
shape (width, depths, image size) is read from the tensor names and shapes. Reading never runs
code from the file (`weights_only=True`), and every check happens before a model is built.

The file is a zip archive whose every entry carries a CRC-32. torch.load does not compare them
(PyTorch builds its zip reader with MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS), so a file with flipped
bytes in its weights loads and gives wrong answers; `read_checkpoint` compares them first.
"""

from __future__ import annotations

import pickle
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from birdid_app.core import paths
from birdid_app.core.errors import CheckpointError
from birdid_app.core.files import open_regular_file
from birdid_app.core.model.hiera import GLOBAL_POS_EMBED_STRIDE, Hiera, HieraConfig

CLASSIFICATION_TASK = "image_classification"
# Heads cannot be read from tensor shapes (qkv is [3*C, C] whatever the split). A file's own
# `config` wins; otherwise the stage-1 head count of the published Hiera family of that width.
HEADS_BY_WIDTH = {96: 1, 112: 2, 144: 2, 256: 4}
_BLOCK_KEY = re.compile(r"^body\.stage(\d+)\.(\d+)\.")
_TENSOR_DATA = re.compile(r"^data/\d+$")  # an entry holding one storage's bytes, under the archive folder
_CRC_CHUNK = 1 << 20
_TRUNCATED = "the model file is truncated or damaged; download or copy it again."


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

    def file_key(self) -> str | None:
        """"path|size|mtime" of the file these weights came from, for what is kept per model file
        (the precision trial, the int8 conversion); None when there is no file, or it is gone."""
        return None if self.path is None else paths.file_key(self.path)

    def build_model(self) -> Hiera:
        """The network with these weights, in eval mode, on the CPU, in the file's dtype.

        Built on the meta device and given the file's tensors (assign=True): no time is spent
        on a random initialisation the weights would overwrite, nor memory on a second copy."""
        with torch.device("meta"):
            model = Hiera(self.config)
        model.load_state_dict(self.state, strict=True, assign=True)
        return model.eval()


def read_checkpoint(path: str | Path, *, check_crc: bool = True) -> Checkpoint:
    """Load and validate a Birder Hiera AbsWin classification checkpoint.

    Raises CheckpointError, with one sentence naming the file, for anything that is not one.
    With `check_crc` (the default) every entry of the archive is first compared with its CRC-32,
    and a file that differs is refused as damaged: 45 ms for a 200 MB file already in the page
    cache. Pass check_crc=False only for a file whose CRCs were checked before and whose bytes
    are known not to have changed since: a path returned by ModelStore.checked_path.
    """
    path = Path(path)
    raw = _load_file(path, check_crc)
    return _validate(path, raw)


def check_crcs(path: str | Path) -> None:
    """Raise CheckpointError unless `path` is a PyTorch zip archive whose entries all match
    their CRC-32s. Reads the whole file; loads nothing."""
    path = Path(path)
    _open_archive(path, check_crc=True)


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


def _load_file(path: Path, check_crc: bool) -> Any:
    _open_archive(path, check_crc)
    try:
        # Not mmap: a mapped file that is overwritten in place (a copy over it, a test tampering
        # with it) kills the process with SIGBUS at the next touch of a weight. Reading it is
        # 0.15 s for 200 MB, and then the weights belong to us.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            path, "the file holds Python objects or code beyond plain weights, which birdid refuses to load."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(path, _TRUNCATED) from exc


def _open_archive(path: Path, check_crc: bool) -> None:
    """Everything about the file that can be told without unpickling it; raises CheckpointError.

    The CRCs are compared before torch.load so that a flipped byte in the pickle is called
    damage, not mistaken for code or a malformed checkpoint."""
    if not path.exists():
        raise CheckpointError(path, "there is no such file.")
    if path.is_dir():
        raise CheckpointError(path, "this is a folder, not a model file.")
    # As a regular file only: a named pipe in a model's place would block the open for ever.
    with open_regular_file(path, "a model file", CheckpointError) as handle:
        try:
            head = handle.read(4)
        except OSError as exc:
            raise CheckpointError(path, f"the file cannot be read ({exc.strerror or exc}).") from exc
    if not head:
        raise CheckpointError(path, "the file is empty.")
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(path, "this is not a PyTorch model file.")
    # A file that starts like a zip but has no readable directory at its end was cut short (an
    # interrupted copy or download).
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if not _is_torch_archive([entry.filename for entry in entries]):
                raise CheckpointError(path, "this is a zip archive, not a PyTorch model file.")
            damaged = _damaged_entries(archive, entries) if check_crc else []
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(path, _TRUNCATED) from exc
    if damaged:
        raise CheckpointError(path, _damage(damaged))


def _is_torch_archive(names: list[str]) -> bool:
    """True when the entries are torch.save's: one folder holding data.pkl and a format version.

    torch.load takes the folder from the first entry, as here."""
    if not names or "/" not in names[0]:
        return False
    folder = names[0].split("/", 1)[0]
    present = set(names)
    return f"{folder}/data.pkl" in present and bool({f"{folder}/version", f"{folder}/.data/version"} & present)


def _damaged_entries(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> list[str]:
    """The entries whose bytes do not match their CRC-32, or whose local header does not match
    the directory; names without the archive folder, as torch writes them (data.pkl, data/12)."""
    damaged = []
    for entry in entries:
        try:
            # ZipExtFile compares the CRC-32 when the last byte has been read.
            with archive.open(entry) as data:
                while data.read(_CRC_CHUNK):
                    pass
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error):
            damaged.append(entry.filename.split("/", 1)[-1])
    return damaged


def _damage(damaged: list[str]) -> str:
    whose = "its weights" if all(_TENSOR_DATA.match(name) for name in damaged) else "its contents"
    listed = damaged[0] if len(damaged) == 1 else f"{damaged[0]} and {_count(len(damaged) - 1, 'other part')}"
    return f"the model file is damaged: {whose} do not match their checksums ({listed}); download or copy it again."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _first(keys: list[str]) -> str:
    return f": {keys[0]}" if len(keys) == 1 else f", the first being {keys[0]}"


def _validate(path: Path, raw: Any) -> Checkpoint:
    def fail(problem: str) -> CheckpointError:
        return CheckpointError(path, problem)

    required = ("state", "signature", "class_to_idx", "rgb_stats", "task")
    if not isinstance(raw, dict) or any(key not in raw for key in required):
        raise fail("this is not a Birder model file (it lacks the state, signature, classes or colour statistics).")
    task = raw["task"]
    if task != CLASSIFICATION_TASK:
        kind = str(task).replace("_", " ")
        raise fail(f"this is a model for {kind}; birdid needs an image classification model.")

    state = raw["state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise fail("this is not a Birder model file (its state is not a set of tensors).")
    if "pos_embed_win" not in state or "body.stage1.0.attn.qkv.weight" not in state:
        raise fail("this is not a Hiera AbsWin network, the only kind birdid runs.")

    num_classes, image_size = _read_signature(raw["signature"], fail)
    class_names = _read_classes(raw["class_to_idx"], num_classes, fail)
    rgb_mean, rgb_std = _read_rgb_stats(raw["rgb_stats"], fail)
    given_config = raw.get("config")
    extra_config: dict = given_config if isinstance(given_config, dict) else {}
    config = _infer_config(state, num_classes, image_size, extra_config, fail)
    classifier = state.get("classifier.weight")
    if classifier is not None and classifier.ndim == 2 and classifier.shape[0] != num_classes:
        raise fail(f"it names {num_classes} classes but its classifier has {classifier.shape[0]} outputs.")
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
        raise fail("its signature is malformed (it has no input and output shapes).") from exc
    if len(in_shape) != 4 or in_shape[1] != 3 or len(out_shape) != 2:
        raise fail(
            f"its input shape is {in_shape} and its output shape {out_shape}; birdid needs RGB images in and classes out."
        )
    return int(out_shape[1]), (int(in_shape[2]), int(in_shape[3]))


def _read_classes(class_to_idx: Any, num_classes: int, fail) -> list[str]:
    if not isinstance(class_to_idx, dict) or len(class_to_idx) != num_classes:
        count = len(class_to_idx) if isinstance(class_to_idx, dict) else 0
        raise fail(f"it names {count} classes but its signature has {num_classes}.")
    names: list[str | None] = [None] * num_classes
    for name, index in class_to_idx.items():
        if not isinstance(index, int) or not 0 <= index < num_classes or names[index] is not None:
            raise fail(f"its class list does not number the classes 0 to {num_classes - 1} once each.")
        names[index] = str(name)
    return names  # type: ignore[return-value]  # every slot was filled exactly once above


def _read_rgb_stats(rgb_stats: Any, fail) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    try:
        mean = tuple(float(v) for v in rgb_stats["mean"])
        std = tuple(float(v) for v in rgb_stats["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise fail("it has no usable colour statistics (rgb_stats mean and std).") from exc
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise fail("it has no usable colour statistics (rgb_stats needs three means and three positive deviations).")
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


def _infer_config(
    state: dict[str, torch.Tensor], num_classes: int, image_size: tuple[int, int], extra: dict, fail
) -> HieraConfig:
    blocks: dict[int, set[int]] = {}
    for key in state:
        if match := _BLOCK_KEY.match(key):
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    if sorted(blocks) != [1, 2, 3, 4] or any(sorted(b) != list(range(len(b))) for b in blocks.values()):
        raise fail("its Hiera body is not four stages of consecutively numbered blocks.")
    depths = tuple(len(blocks[stage]) for stage in (1, 2, 3, 4))

    stem = state.get("stem.proj.weight")
    if stem is None or stem.ndim != 4 or stem.shape[1] != 3:
        raise fail("it has no usable patch embedding (stem.proj.weight).")
    embed_dim = int(stem.shape[0])

    pos_embed = state.get("pos_embed")
    expected_grid = tuple(s // GLOBAL_POS_EMBED_STRIDE for s in image_size)
    if pos_embed is None or tuple(pos_embed.shape[2:]) != expected_grid:
        shape = list(pos_embed.shape) if pos_embed is not None else None
        raise fail(f"its position embedding of shape {shape} does not fit its {image_size} input size.")

    if extra.get("attn_pool_head") or any(k.startswith("features.0.") for k in state):
        raise fail("it has an attention-pooling head, which birdid does not run.")

    num_heads = extra.get("num_heads", HEADS_BY_WIDTH.get(embed_dim))
    if not isinstance(num_heads, int):
        raise fail(f"it does not say how many attention heads its {embed_dim}-channel layers have.")
    try:
        return HieraConfig(embed_dim, depths, num_heads, num_classes, image_size)
    except ValueError as exc:
        raise fail(f"it describes a network birdid cannot build ({exc}).") from exc


def _check_tensors(state: dict[str, torch.Tensor], config: HieraConfig, fail) -> None:
    # Build on the meta device: shapes only, no memory, no time.
    with torch.device("meta"):
        expected = Hiera(config).state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise fail(f"it lacks {_count(len(missing), 'tensor')} the network needs{_first(missing)}.")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise fail(f"it has {_count(len(unexpected), 'tensor')} a Hiera AbsWin does not use{_first(unexpected)}.")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise fail(f"its tensor {key} has shape {list(state[key].shape)} where {list(tensor.shape)} was expected.")
