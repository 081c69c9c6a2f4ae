"""The range model: BirdNET's Geomodel, which says how likely each of 12,012 taxa is at a place
in a week of the year, installed once and run offline with ONNX Runtime.

The file is untrusted like any other from elsewhere: it is read whole (at most
GEOMODEL_MAX_BYTES) through the regular-file opener, hashed, handed to ONNX Runtime as bytes
(no second read of a path that may have changed), and checked before it is used: one input that
takes [N, 3] numbers, an output as wide as the label list, and a probe at a known place whose
values must be probabilities. Whatever the file names its tensors, the first input and the
output of the right width are used.

The installed copy lives in `data_dir()/geomodel/`: the model, its labels (the published
labels ship with birdid, resources/geomodel/labels.txt, for the downloaded model), and
`geomodel.json` recording where they came from and their SHA-256. `birdid geomodel download`
takes the fp16 build from the hub (verified against the SHA-256 the hub publishes for it);
`birdid geomodel import MODEL.onnx LABELS.txt` takes any build offline.

Licence: the Geomodel's code is MIT, its weights CC BY-SA 4.0; ATTRIBUTION is shown wherever
the prior is (About, `geomodel status`, the README).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import BirdidError, FileProblem
from birdid_app.core.files import read_regular_file
from birdid_app.core.model.species_names import (
    GeoLabel,
    LabelsError,
    parse_labels,
    published_labels,
    published_labels_path,
)
from birdid_app.core.paths import data_dir

GEOMODEL_MAX_BYTES = 64 * 1024 * 1024  # the fp32 build is ~15 MB; a file 4x that is not one
LABELS_MAX_BYTES = 8 * 1024 * 1024  # 12,012 lines are 0.6 MB
# The probe: a place and week any real range model has an answer for (the Netherlands in May).
_PROBE = np.array([[52.0, 5.0, 20.0]], dtype=np.float32)
ATTRIBUTION = (
    "Range prior: BirdNET Geomodel by the BirdNET team (K. Lisa Yang Center for Conservation Bioacoustics, "
    "Cornell Lab of Ornithology, and Chemnitz University of Technology), github.com/birdnet-team/geomodel; "
    "code MIT, model weights CC BY-SA 4.0."
)


@dataclass(frozen=True)
class PublishedGeomodel:
    """The range model `birdid geomodel download` fetches."""

    repo_id: str
    filename: str
    revision: str
    approx_size_mb: int


# The fp16 build: half the download of the fp32 one, and ONNX Runtime computes in float32 (its
# inputs and outputs are float32), so the prior differs by far less than its own uncertainty.
PUBLISHED_GEOMODEL = PublishedGeomodel(
    repo_id="tphakala/BirdNET-Geomodel",
    filename="birdnet-geomodel-v3.0-fp16.onnx",
    revision="main",
    approx_size_mb=7,
)


class GeomodelError(FileProblem):
    """A range model or label file that cannot be used: one sentence naming the file."""


class NoGeomodel(BirdidError):
    """No range model is installed."""


def geomodel_dir() -> Path:
    return data_dir() / "geomodel"


@dataclass(frozen=True)
class GeomodelRecord:
    """What geomodel.json says about the installed range model."""

    model_path: Path
    model_sha256: str
    labels_path: Path | None  # None: the published labels that ship with birdid
    labels_sha256: str
    origin: str  # "download" or "import"
    source: str  # the URL downloaded from, or the file imported from

    def to_json(self) -> dict:
        return {
            "model_path": str(self.model_path), "model_sha256": self.model_sha256,
            "labels_path": None if self.labels_path is None else str(self.labels_path),
            "labels_sha256": self.labels_sha256, "origin": self.origin, "source": self.source,
        }


class Geomodel:
    """A checked range model: `occurrence(latitude, longitude, week)` -> [n_labels] float32 in 0..1.

    Thread-safe: an ONNX Runtime session may be run from several threads at once."""

    def __init__(self, model_bytes: bytes, labels: list[GeoLabel], *, path: Path, sha256: str) -> None:
        import onnxruntime

        self.path = path
        self.sha256 = sha256
        self.labels = labels
        options = onnxruntime.SessionOptions()
        # A few thousand multiply-adds per place: one thread answers in well under a millisecond,
        # and more would only compete with the image model for the cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # ONNX Runtime's warnings about the graph are not the person's to read
        try:
            self._session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises its own classes, and RuntimeError, for a bad file
            raise GeomodelError(path, f"this is not a range model ONNX Runtime can run ({_first_line(error)}).") from None
        inputs = self._session.get_inputs()
        # A dimension ONNX leaves open is None or a name ("batch"); the second must be 3 or open.
        if len(inputs) != 1 or len(inputs[0].shape) != 2 or isinstance(inputs[0].shape[1], int) and inputs[0].shape[1] != 3:
            shapes = ", ".join(str(i.shape) for i in inputs)
            raise GeomodelError(path, f"the model takes {shapes}, not one [N, 3] input of latitude, longitude and week.")
        self._input = inputs[0].name
        self._input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        # Whatever the file names its outputs: the one as wide as the label list.
        try:
            outputs = self._session.run(None, {self._input: _PROBE.astype(self._input_dtype)})
        except Exception as error:
            raise GeomodelError(path, f"the model fails on a place and week ({_first_line(error)}).") from None
        widths = [o.shape[-1] if o.ndim == 2 and o.shape[0] == 1 else None for o in outputs]
        if len(labels) not in widths:
            given = ", ".join(str(w) for w in widths if w is not None) or "no [1, N] output"
            raise GeomodelError(
                path, f"its output has {given} values per place, but the label list has {len(labels)} names."
            )
        self._output_index = widths.index(len(labels))
        self._output = self._session.get_outputs()[self._output_index].name
        probe = outputs[self._output_index]
        if not np.all(np.isfinite(probe)) or probe.min() < -1e-3 or probe.max() > 1 + 1e-3:
            raise GeomodelError(path, "its outputs are not probabilities between 0 and 1, so it is not a range model.")

    def occurrences(self, places: np.ndarray) -> np.ndarray:
        """places [N, 3] (latitude, longitude, week) -> [N, n_labels] float32 in 0..1."""
        places = np.asarray(places, dtype=np.float32).reshape(-1, 3)
        (values,) = self._session.run([self._output], {self._input: places.astype(self._input_dtype)})
        # A value outside 0..1 or NaN for some place the probe did not try: never let it rank.
        return np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0), 0.0, 1.0)

    def occurrence(self, latitude: float, longitude: float, week: int) -> np.ndarray:
        return self.occurrences(np.array([[latitude, longitude, week]], dtype=np.float32))[0]


def load_geomodel_files(model_path: Path, labels_path: Path | None) -> Geomodel:
    """A Geomodel from a model file and a label file (None: the published labels), checked."""
    model_bytes = read_regular_file(model_path, GEOMODEL_MAX_BYTES, "a range model", GeomodelError)
    labels = _read_labels(labels_path)
    return Geomodel(model_bytes, labels, path=model_path, sha256=hashlib.sha256(model_bytes).hexdigest())


def _read_labels(labels_path: Path | None) -> list[GeoLabel]:
    if labels_path is None:
        return published_labels()
    data = read_regular_file(labels_path, LABELS_MAX_BYTES, "a label list", LabelsError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LabelsError(labels_path, f"the file is not UTF-8 text (byte {error.start}).") from None
    return parse_labels(text, labels_path)


class GeomodelStore:
    """The installed range model: at most one, in geomodel_dir()."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or geomodel_dir()
        self._lock = threading.Lock()
        self._loaded: Geomodel | None = None

    @property
    def record_path(self) -> Path:
        return self.root / "geomodel.json"

    def record(self) -> GeomodelRecord | None:
        """What is installed, or None. A record that cannot be read is treated as none installed
        (the files are checked again by their hashes at load, so nothing unverified is used)."""
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
            return GeomodelRecord(
                model_path=Path(data["model_path"]), model_sha256=str(data["model_sha256"]),
                labels_path=None if data["labels_path"] is None else Path(data["labels_path"]),
                labels_sha256=str(data["labels_sha256"]), origin=str(data["origin"]), source=str(data["source"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def installed(self) -> bool:
        return self.record() is not None

    def load(self) -> Geomodel:
        """The installed range model, checked against the hashes recorded when it was installed;
        loaded once per store. Raises NoGeomodel or GeomodelError."""
        with self._lock:
            record = self.record()
            if record is None:
                raise NoGeomodel(
                    "No range model is installed: run `birdid geomodel download`, or `birdid geomodel import "
                    "MODEL.onnx LABELS.txt` with a copy of its files."
                )
            if self._loaded is not None and self._loaded.sha256 == record.model_sha256:
                return self._loaded
            # The hash first: a file changed since it was checked is not parsed at all.
            model_bytes = read_regular_file(record.model_path, GEOMODEL_MAX_BYTES, "a range model", GeomodelError)
            sha256 = hashlib.sha256(model_bytes).hexdigest()
            if sha256 != record.model_sha256:
                raise GeomodelError(
                    record.model_path,
                    "the range model changed since it was installed: download or import it again.",
                )
            labels = _read_labels(record.labels_path)
            if _labels_digest(labels) != record.labels_sha256:
                raise LabelsError(
                    record.labels_path or published_labels_path(),
                    "the label list changed since the range model was installed: import it again.",
                )
            geomodel = Geomodel(model_bytes, labels, path=record.model_path, sha256=sha256)
            self._loaded = geomodel
            return geomodel

    def install(self, model_path: Path, labels_path: Path | None, *, origin: str, source: str) -> Geomodel:
        """Check a model file and its labels, copy both into the store (a download's model is
        copied out of the hub cache too: the store then owns what it checked) and record them.
        Nothing installed before is touched until the new files have passed every check."""
        # Read once: the bytes checked are the bytes kept, whatever happens to the file meanwhile.
        model_bytes = read_regular_file(model_path, GEOMODEL_MAX_BYTES, "a range model", GeomodelError)
        geomodel = Geomodel(model_bytes, _read_labels(labels_path), path=model_path,
                            sha256=hashlib.sha256(model_bytes).hexdigest())
        self.root.mkdir(parents=True, exist_ok=True)
        stored_model = self.root / "geomodel.onnx"
        with atomic_write(stored_model, "wb") as out:
            out.write(model_bytes)
        stored_labels = None
        if labels_path is not None:
            stored_labels = self.root / "labels.txt"
            with atomic_write(stored_labels, "w", encoding="utf-8", newline="\n") as out:
                out.writelines(f"{label.code}\t{label.scientific}\t{label.common}\n" for label in geomodel.labels)
        record = GeomodelRecord(
            model_path=stored_model, model_sha256=geomodel.sha256, labels_path=stored_labels,
            labels_sha256=_labels_digest(geomodel.labels), origin=origin, source=source,
        )
        with atomic_write(self.record_path, "w", encoding="utf-8") as out:
            json.dump(record.to_json(), out, indent=2)
        geomodel.path = stored_model
        with self._lock:
            self._loaded = geomodel
        return geomodel

    def remove(self) -> bool:
        with self._lock:
            self._loaded = None
            existed = self.record_path.exists()
            self.record_path.unlink(missing_ok=True)
            for name in ("geomodel.onnx", "labels.txt"):
                (self.root / name).unlink(missing_ok=True)
            return existed


def download_geomodel(
    store: GeomodelStore,
    *,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    progress: Callable | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Geomodel:
    """Fetch the published range model (resumable, verified against the SHA-256 the hub
    publishes for it), check it with the published labels and install it."""
    from birdid_app.core.model.download import download_hub_file

    published = PUBLISHED_GEOMODEL
    path, source = download_hub_file(
        published.repo_id, published.filename, published.revision, sha256=None, what="range model",
        cache_dir=cache_dir, endpoint=endpoint, progress=progress, should_cancel=should_cancel,
    )
    return store.install(path, None, origin="download", source=source)


def _labels_digest(labels: list[GeoLabel]) -> str:
    digest = hashlib.sha256()
    for label in labels:
        digest.update(f"{label.code}\t{label.scientific}\t{label.common}\n".encode())
    return digest.hexdigest()


def _first_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:160].rstrip(". ")
