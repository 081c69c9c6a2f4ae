"""int8 on the CPU: the model exported to ONNX, its matrix weights quantised to 8-bit integers
per output channel (activations per batch, "dynamic" quantisation), run by ONNX Runtime.

Chosen by measurement (benchmarks/int8.py): on a 2-core AMD EPYC ONNX Runtime's int8 matrix
kernels run the base model in under half the reference's time, clearly ahead of torch's own
dynamic int8 (torch.ao.quantization, deprecated in torch 2.14 and warning on every call).

The graph gives the logits, the embedding and the four stage maps (asked for only where they
are shown: the window), so the window, `identify`, the library and `selftest` all get the same
answer from the same graph; only Grad-CAM (which needs autograd) runs the float torch model. Converting takes a while (export, then quantisation: about half a
minute for the base model), so the result is kept in the data folder, named after the model
file, its size and time, ONNX Runtime's version and this module's FORMAT, beside its SHA-256:
a damaged or half-written file is converted again, never loaded. A kept file is also bound to the
model file it was made from: that file's SHA-256 is written into the graph's metadata and beside
it, so another model's conversion put in its place (with a digest to match) is converted again,
never run under this model's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from birdid_app.core import paths
from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import BirdidError, FileProblem
from birdid_app.core.files import read_regular_file
from birdid_app.core.model.checkpoint import Checkpoint

log = logging.getLogger(__name__)

FORMAT = 2  # bump when the export or the quantisation changes: kept files are then converted again
# 2: the four stage maps are outputs too, so the window's feature maps come from the graph that
# gives its answer (1 had logits and embedding only).
STAGE_OUTPUTS = ("stage1", "stage2", "stage3", "stage4")
# The batch sizes the exported graph accepts; the classifier's batches are at most 8.
MAX_BATCH = 256
# A kept conversion is read whole; ONNX files are protocol buffers, which cannot exceed 2 GiB.
KEPT_LIMIT = 2 << 30
_DIGEST_LIMIT = 4096  # its digest file: two hex digests in a line of JSON
# The graph's metadata entry naming the SHA-256 of the model file it was converted from.
SOURCE_KEY = "birdid.model_sha256"


class Int8Unavailable(BirdidError):
    """The int8 model could not be made or loaded; the message is one sentence for a person."""


class _KeptProblem(FileProblem):
    """A kept conversion that cannot be used: logged, and the model converted again."""


class Int8Model:
    """The quantised graph, ready to run: images [B, 3, H, W] float32 -> (logits, embedding), and
    with `stage_maps` the four stage maps [B, C_s, H_s, W_s] too, from the same run."""

    def __init__(self, source: bytes | Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # The same number of threads torch uses (the app's CPU-threads setting sets torch's).
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings are about graph details
        # Its threads sleep between runs instead of spinning: spinning took the cores the photo
        # decoders need while indexing (indexing/model 0.88 with it).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            source if isinstance(source, bytes) else str(source), options, providers=["CPUExecutionProvider"]
        )
        self.has_stage_maps = set(STAGE_OUTPUTS) <= {output.name for output in self.session.get_outputs()}

    def __call__(self, images: torch.Tensor, *, stage_maps: bool = False):
        batch = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())  # [B, 3, H, W]
        names = ["logits", "embedding", *(STAGE_OUTPUTS if stage_maps else ())]
        # One picture per run: dynamic quantisation scales the activations of the whole batch by
        # their largest value, so in a batch a photo's answer would depend on the others beside
        # it (a library photo would not find itself at similarity 1). On a CPU a batch of 1 costs
        # little throughput. The stage maps are intermediate tensors of the same run: asking for
        # them adds only their copy out.
        outputs = [self.session.run(names, {"images": batch[i : i + 1]}) for i in range(len(batch))]
        joined = [torch.from_numpy(np.concatenate([run[k] for run in outputs])) for k in range(len(names))]
        return tuple(joined) if stage_maps else (joined[0], joined[1])


# Converted bytes of checkpoints that have no file to key a kept copy by (benchmarks, tests):
# converted once per Checkpoint object while it lives.
_in_memory: dict[int, bytes] = {}


def prepare_int8(
    checkpoint: Checkpoint, *, on_converting: Callable[[], None] | None = None, threads: int | None = None
) -> Int8Model:
    """The int8 model for `checkpoint`: the kept conversion when there is an intact one, else
    converted now (`on_converting` is called first, so a window or a terminal can say so) and
    kept. Raises Int8Unavailable with one sentence when it cannot be made."""
    try:
        import onnxruntime  # noqa: F401 - only to say clearly that it is missing
    except ImportError as error:
        raise Int8Unavailable(f"int8 could not be prepared: ONNX Runtime is not installed ({error}).") from None
    kept = kept_file(checkpoint)
    try:
        source = "" if kept is None else model_digest(checkpoint)  # the digest a kept file is bound to
        intact = None if kept is None else _kept_bytes(kept, source)
        if intact is not None:
            try:
                return Int8Model(intact, threads)
            except Exception as error:  # noqa: BLE001 - a file ONNX Runtime refuses: convert again
                log.warning("The kept int8 model %s could not be loaded (%s); converting again.", kept, error)
        if checkpoint.path is None and id(checkpoint) in _in_memory:
            return Int8Model(_in_memory[id(checkpoint)], threads)
        if on_converting is not None:
            on_converting()
        data = convert(checkpoint)
        if kept is not None:
            data = _bound(data, source)
            _keep(kept, data, source)
        elif checkpoint.path is None:
            _in_memory[id(checkpoint)] = data
            weakref.finalize(checkpoint, _in_memory.pop, id(checkpoint), None)
        return Int8Model(data, threads)
    except Int8Unavailable:
        raise
    except Exception as error:  # noqa: BLE001 - export, quantisation or ONNX Runtime: one sentence
        raise Int8Unavailable(f"int8 could not be prepared: {type(error).__name__}: {error}".rstrip(".") + ".") from error


def convert_in_a_process(checkpoint: Checkpoint, should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Make and keep the int8 conversion of a model file in a child process, where nothing else
    runs torch: torch.export cannot run beside other threads' forwards (it takes a process-wide
    dispatch slot; seen as "ProxyTorchDispatchMode slot already occupied" while the window's engine
    answered). True once an intact conversion is kept; False when stopped, or when the model has
    no file. Raises Int8Unavailable with the child's sentence when it cannot be made."""
    import multiprocessing

    kept = kept_file(checkpoint)
    if kept is None:
        return False
    if _kept_bytes(kept, model_digest(checkpoint)) is not None:
        return True
    # spawn, not fork: a forked child would inherit the parent's threads' locks mid-flight. A plain
    # process and a pipe, not a Pool: a Pool's queues are semaphores, which a person closing the app
    # mid-conversion leaves for multiprocessing's resource tracker to warn about on the terminal.
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_convert_and_keep, args=(str(checkpoint.path), sending), daemon=True,
                            name="birdid-int8-conversion")
    child.start()
    sending.close()  # the child's end: only the child holds it now, so its exit is seen as EOF
    try:
        while not receiving.poll(0.2):
            if should_stop():
                child.terminate()
                return False
        try:
            problem = receiving.recv()
        except EOFError:
            child.join(5)
            raise Int8Unavailable(
                f"int8 could not be prepared: the conversion process ended without a word (exit code {child.exitcode})."
            ) from None
    finally:
        receiving.close()
        child.join(5)
    if problem is not None:
        raise Int8Unavailable(problem)
    return _kept_bytes(kept, model_digest(checkpoint)) is not None


def _quiet_child() -> None:
    """The child says what went wrong through its result; when the app is closed or killed while it
    converts, it must not print multiprocessing's traceback about its lost parent into the
    terminal (or a frozen app's log) the person started birdid from. And it yields the CPU."""
    import sys

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the child process
    if hasattr(os, "nice"):
        os.nice(10)  # half a minute of export beside the window: the window and its answers go first


def _convert_and_keep(model_path: str, answer) -> None:
    """In the child process: convert the model file and keep the result where kept_file says
    (the child has the parent's environment, so the same data folder); sends None, or the
    sentence, through `answer` (a Connection)."""
    _quiet_child()
    from birdid_app.core.model.checkpoint import read_checkpoint

    try:
        prepare_int8(read_checkpoint(model_path, check_crc=False))
        problem = None
    except Int8Unavailable as error:
        problem = str(error)
    try:
        answer.send(problem)
    except OSError:  # the app was closed meanwhile: the kept conversion serves its next start
        pass


def kept_file(checkpoint: Checkpoint) -> Path | None:
    """Where the conversion of this model file is kept; None for a model not from a file."""
    model_file = checkpoint.file_key()
    if model_file is None or checkpoint.path is None:
        return None
    import onnxruntime

    key = f"{model_file}|onnxruntime {onnxruntime.__version__}|{FORMAT}"
    name = f"{checkpoint.path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.int8.onnx"
    return paths.data_dir() / "int8" / name


# model file key ("path|size|mtime") -> its SHA-256, so a process hashes each model file once.
_model_digests: dict[str, str] = {}


def model_digest(checkpoint: Checkpoint) -> str:
    """The SHA-256 of the model file `checkpoint` was read from: the model store's record when the
    file is an installed model that has not changed since it was hashed, else hashed now (a
    fraction of a second for the base model, once per process)."""
    from birdid_app.core.model.model_store import ModelStore, sha256_file

    if checkpoint.path is None:
        raise ValueError("a model not read from a file has no file to hash")
    key = checkpoint.file_key()
    if key is not None and key in _model_digests:
        return _model_digests[key]
    try:
        digest = ModelStore().recorded_sha256(checkpoint.path)
    except BirdidError:  # an unreadable model index: the file itself says
        digest = None
    digest = digest or sha256_file(checkpoint.path)
    if key is not None:
        _model_digests[key] = digest
    return digest


def convert(checkpoint: Checkpoint) -> bytes:
    """The checkpoint's network exported to ONNX and quantised (`export`, `quantise`)."""
    return quantise(export(checkpoint))


def export(checkpoint: Checkpoint):
    """The network as an onnx.ModelProto in fp32: images [B, 3, H, W] in (any B up to MAX_BATCH),
    logits, embedding and the four stage maps out."""
    wrapper = _LogitsAndEmbedding(checkpoint.build_model().float()).eval()
    example = torch.zeros(2, 3, *checkpoint.image_size)  # 2, not 1: a batch of 1 would be fixed
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # The exporter warns that torchvision is not installed (its ops are not needed here).
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    with torch.inference_mode(False), torch.no_grad(), contextlib.ExitStack() as restore:
        restore.callback(exporter_log.setLevel, level)
        # torch.export's own use of its deprecated pytree API (seen with the CPU build of torch).
        restore.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message=".*treespec.*", category=FutureWarning)
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, verbose=False, input_names=["images"],
            output_names=["logits", "embedding", *STAGE_OUTPUTS], dynamic_shapes=({0: batch},),
        )
    assert program is not None  # dynamo=True always returns the program
    model = program.model_proto
    # The exporter declares its weights' shapes too; the quantiser turns Gemm into MatMul with a
    # transposed weight and then finds the old declaration contradicting it.
    weights = {initializer.name for initializer in model.graph.initializer}
    declared = [info for info in model.graph.value_info if info.name not in weights]
    del model.graph.value_info[:]
    model.graph.value_info.extend(declared)
    return model


def quantise(model, *, per_channel: bool = True) -> bytes:
    """Every MatMul/Gemm weight of `model` (an onnx.ModelProto) to int8, per output channel
    unless told otherwise; activations are quantised per batch as the graph runs."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="birdid-int8-") as scratch, _quiet_quantiser():
        target = Path(scratch) / "model.int8.onnx"
        quantize_dynamic(model, target, weight_type=QuantType.QInt8, per_channel=per_channel)
        return target.read_bytes()


class _LogitsAndEmbedding(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images, stage_maps=True)
        return (out.logits, out.embedding, *out.stage_maps)


@contextlib.contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """The quantiser logs a suggestion to pre-process the model on the root logger, every time."""

    def drop(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _digest_file(kept: Path) -> Path:
    return kept.with_name(kept.name + ".sha256")


def _kept_bytes(kept: Path, source: str) -> bytes | None:
    """The kept conversion's bytes, if it is whole and was made from the model file whose SHA-256
    is `source`; else None (logged where a file was there but is not usable).

    Both files are read as regular files of bounded size (a named pipe or a link to /dev/zero
    in their place must not hang or fill memory), and what is checked is what is then loaded."""
    digest_file = _digest_file(kept)
    if not (os.path.lexists(kept) and os.path.lexists(digest_file)):
        return None
    try:
        try:
            recorded = json.loads(read_regular_file(digest_file, _DIGEST_LIMIT, "a digest file", _KeptProblem))
            expected, made_from = recorded["sha256"], recorded["model_sha256"]
        except (ValueError, TypeError, KeyError):
            raise _KeptProblem(digest_file, "it is not a digest this birdid wrote.") from None
        if made_from != source:
            raise _KeptProblem(kept, "it was converted from another model file.")
        data = read_regular_file(kept, KEPT_LIMIT, "an int8 model", _KeptProblem)
        if hashlib.sha256(data).hexdigest() != expected:
            raise _KeptProblem(kept, "its bytes do not match its digest.")
        if _source_of(data) != source:
            raise _KeptProblem(kept, "its graph was converted from another model file.")
    except _KeptProblem as problem:
        log.warning("The kept int8 model is not used, it will be converted again: %s", problem)
        return None
    return data


def _source_of(data: bytes) -> str | None:
    """The model file SHA-256 written into a converted graph's metadata; None if there is none."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and others: not a graph
        return None
    return next((entry.value for entry in model.metadata_props if entry.key == SOURCE_KEY), None)


def _bound(data: bytes, source: str) -> bytes:
    """The converted graph `data` with `source` (its model file's SHA-256) in its metadata."""
    import onnx

    model = onnx.load_model_from_string(data)
    entry = model.metadata_props.add()
    entry.key, entry.value = SOURCE_KEY, source
    return model.SerializeToString()


def _keep(kept: Path, data: bytes, source: str) -> None:
    """The file first, then its digest: a crash between the two leaves a file that is not trusted."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(kept, "wb") as out:
            out.write(data)
        with atomic_write(_digest_file(kept), "w", encoding="ascii") as out:
            out.write(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "model_sha256": source}) + "\n")
    except OSError as error:  # a read-only data folder: convert again next time, carry on now
        log.warning("Could not keep the int8 model in %s: %s", kept, error)
