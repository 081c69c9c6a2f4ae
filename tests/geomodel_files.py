"""Small range models in the real file format (ONNX, built with onnx's helper) whose values are
known per label: value = clip(base + per_latitude * latitude + per_week * week, 0, 1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (eBird code, scientific name, eBird English name): real rows of the published label list.
LABELS = [
    ("blutit", "Cyanistes caeruleus", "Eurasian Blue Tit"),
    ("gretit1", "Parus major", "Great Tit"),
    ("eurrob1", "Erithacus rubecula", "European Robin"),
    ("eurbla", "Turdus merula", "Eurasian Blackbird"),
    ("winwre4", "Troglodytes troglodytes", "Eurasian Wren"),
    ("comcha", "Fringilla coelebs", "Common Chaffinch"),
    ("houspa", "Passer domesticus", "House Sparrow"),
    ("whiwag", "Motacilla alba", "White Wagtail"),
    ("graher1", "Ardea cinerea", "Gray Heron"),
    ("comred2", "Phoenicurus phoenicurus", "Common Redstart"),
    ("fieldf", "Turdus pilaris", "Fieldfare"),
    ("wiltit1", "Poecile montanus", "Willow Tit"),
    ("martit2", "Poecile palustris", "Marsh Tit"),
]


@dataclass(frozen=True)
class GeomodelSpec:
    """The range model a test writes: one value rule per label."""

    labels: list[tuple[str, str, str]]
    base: np.ndarray  # [L]
    per_latitude: np.ndarray  # [L]
    per_week: np.ndarray  # [L]

    def values(self, latitude: float, longitude: float, week: int) -> np.ndarray:
        """[L] what the written model gives at a place and week."""
        raw = self.base + self.per_latitude * np.float32(latitude) + self.per_week * np.float32(week)
        return np.clip(raw.astype(np.float32), 0.0, 1.0)

    def value(self, common_name: str, latitude: float, longitude: float, week: int) -> float:
        index = [label[2] for label in self.labels].index(common_name)
        return float(self.values(latitude, longitude, week)[index])


def default_spec(labels=None) -> GeomodelSpec:
    """Every label expected (0.6) everywhere, except: the Fieldfare and the Willow Tit are
    northern birds (0.03 per degree of latitude from 1.0 below zero: 0.56 at 52 N, 0.2 at 40 N,
    0.02 at 34 N, nothing further south); the Common Redstart is a summer bird (0.02 per week:
    0.4 in May's week 20, 0.04 in January's week 2)."""
    labels = list(labels or LABELS)
    names = [label[2] for label in labels]
    base = np.full(len(labels), 0.6, dtype=np.float32)
    per_latitude = np.zeros(len(labels), dtype=np.float32)
    per_week = np.zeros(len(labels), dtype=np.float32)
    for name in ("Fieldfare", "Willow Tit"):
        if name in names:
            i = names.index(name)
            base[i], per_latitude[i] = -1.0, 0.03
    if "Common Redstart" in names:
        i = names.index("Common Redstart")
        base[i], per_week[i] = 0.0, 0.02
    return GeomodelSpec(labels, base, per_latitude, per_week)


def write_geomodel(
    folder: Path,
    spec: GeomodelSpec | None = None,
    *,
    input_name: str = "input",
    output_name: str = "output",
    extra_output: bool = False,
    output_width: int | None = None,
    name: str = "geomodel",
) -> tuple[Path, Path]:
    """(MODEL.onnx, LABELS.txt) in `folder`, for `spec` (default_spec()). Tensor names are the
    caller's, so a test proves birdid does not depend on them; `extra_output` adds a second,
    narrower output first (as a build with an embedding output would); `output_width` writes a
    model whose output is that wide whatever the label count (a mismatched pair)."""
    spec = spec or default_spec()
    width = output_width or len(spec.labels)
    # values = clip(coords @ W + base, 0, 1), W [3, L]: row 0 latitude, row 1 longitude, row 2 week.
    weights = np.zeros((3, width), dtype=np.float32)
    base = np.zeros(width, dtype=np.float32)
    count = min(width, len(spec.labels))
    weights[0, :count] = spec.per_latitude[:count]
    weights[2, :count] = spec.per_week[:count]
    base[:count] = spec.base[:count]
    nodes = [
        helper.make_node("MatMul", ["coords", "W"], ["scaled"]),
        helper.make_node("Add", ["scaled", "B"], ["raw"]),
        helper.make_node("Clip", ["raw", "lo", "hi"], [output_name]),
    ]
    initializers = [
        numpy_helper.from_array(weights, "W"), numpy_helper.from_array(base, "B"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "hi"),
    ]
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", width])]
    if extra_output:
        nodes.append(helper.make_node("Identity", ["coords"], ["echo"]))
        outputs.insert(0, helper.make_tensor_value_info("echo", TensorProto.FLOAT, ["batch", 3]))
    nodes.insert(0, helper.make_node("Identity", [input_name], ["coords"]))
    graph = helper.make_graph(
        nodes, "range_model", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3])], outputs,
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what the installed ONNX Runtime reads, whatever onnx writes by default
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    model_path, labels_path = folder / f"{name}.onnx", folder / f"{name}-labels.txt"
    model_path.write_bytes(model.SerializeToString())
    labels_path.write_text("".join(f"{c}\t{s}\t{n}\n" for c, s, n in spec.labels), encoding="utf-8")
    return model_path, labels_path


def photo_taken_at(path: Path, *, latitude: float | None, longitude: float | None, taken: str | None,
                   seed: int = 0, picture=None) -> Path:
    """A real JPEG (`picture`, a PIL image, or conftest.make_photo's) with EXIF GPS and capture
    date as a camera writes them: GPSLatitudeRef/GPSLatitude (degrees, minutes, seconds as
    rationals) and DateTimeOriginal "YYYY:MM:DD HH:MM:SS"."""
    from PIL import Image

    if picture is None:
        from conftest import make_photo

        make_photo(path, seed=seed, quality=90)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, quality=92)
    with Image.open(path) as image:
        image.load()
        exif = image.getexif()
        if taken is not None:
            exif.get_ifd(0x8769)[0x9003] = taken
        if latitude is not None and longitude is not None:
            gps = exif.get_ifd(0x8825)
            gps[1], gps[2] = ("N" if latitude >= 0 else "S"), _dms(abs(latitude))
            gps[3], gps[4] = ("E" if longitude >= 0 else "W"), _dms(abs(longitude))
        image.save(path, exif=exif, quality=90)
    return path


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return (float(degrees), float(minutes), seconds)
