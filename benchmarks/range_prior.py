"""What the range prior adds to each photo's identification: reading where and when from the
photo, the range model at that place and week, and the combined ranking.

The published Geomodel cannot be downloaded here, so a stand-in of its size and shape runs in its
place: an ONNX MLP from [N, 3] to [N, 12,012] sigmoid outputs with ~3.3 M weights (the fp16 build
is 7 MB: ~3.5 M), with the real 12,012-row label list, matched against 707 real species names
from it (the eu-common list itself is not available here). The photo is a real JPEG with EXIF GPS
and date.

    .venv/bin/python benchmarks/range_prior.py [--photos 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # geomodel_files.photo_taken_at

from machine import cpu_flags, machine_description  # noqa: E402 - benchmarks/machine.py

HIDDEN = 256


def stand_in_geomodel(path: Path, outputs: int) -> None:
    """3 -> 256 -> 256 -> 256 -> `outputs`, ReLU between, sigmoid at the end, random weights."""
    rng = np.random.default_rng(0)
    sizes = [3, HIDDEN, HIDDEN, HIDDEN, outputs]
    nodes, initializers, current = [], [], "input"
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weight = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        bias = np.zeros(fan_out, dtype=np.float32)
        initializers += [numpy_helper.from_array(weight, f"W{layer}"), numpy_helper.from_array(bias, f"B{layer}")]
        nodes += [helper.make_node("MatMul", [current, f"W{layer}"], [f"m{layer}"]),
                  helper.make_node("Add", [f"m{layer}", f"B{layer}"], [f"a{layer}"])]
        last = layer == len(sizes) - 2
        nodes.append(helper.make_node("Sigmoid" if last else "Relu", [f"a{layer}"], ["output" if last else f"h{layer}"]))
        current = f"h{layer}"
    graph = helper.make_graph(
        nodes, "stand_in", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", outputs])], initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200, help="photos timed, each at its own place")
    args = parser.parse_args()
    print(machine_description())
    print(cpu_flags())

    from birdid_app.core.model.species_names import published_labels
    from birdid_app.core.photos.photo import photo_metadata
    from birdid_app.core.places.geomodel import load_geomodel_files
    from birdid_app.core.places.place import resolve_where
    from birdid_app.core.places.range_prior import RangePrior
    from geomodel_files import photo_taken_at

    labels = published_labels()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model_path = folder / "stand-in.onnx"
        stand_in_geomodel(model_path, len(labels))
        print(f"stand-in range model: {model_path.stat().st_size / 1e6:.1f} MB fp32, {len(labels):,} outputs")
        started = time.perf_counter()
        geomodel = load_geomodel_files(model_path, None)
        print(f"  loading and checking it: {(time.perf_counter() - started) * 1000:.0f} ms (once)")
        birds = [label.common for label in labels if " " in label.scientific][:5000]
        class_names = birds[::7][:707]
        started = time.perf_counter()
        prior = RangePrior(geomodel, class_names)
        print(f"  matching {len(class_names)} species names: {(time.perf_counter() - started) * 1000:.0f} ms (once); "
              f"{len(prior.match.matches)} matched")
        photo = photo_taken_at(folder / "photo.jpg", latitude=52.37, longitude=4.89, taken="2024:05:14 07:30:00")
        picture = np.random.default_rng(1).dirichlet(np.full(len(class_names), 0.05)).astype(np.float32)

        rng = np.random.default_rng(2)
        places = np.column_stack([rng.uniform(35, 70, args.photos), rng.uniform(-10, 30, args.photos)])
        metadata_ms, first_ms, again_ms = [], [], []
        for latitude, longitude in places:
            started = time.perf_counter()
            taken_at, _, _ = photo_metadata(photo)
            metadata_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            where, _ = resolve_where(option_place=None, option_date=None, photo_taken_at=taken_at,
                                     photo_latitude=latitude, photo_longitude=longitude, settings_place=None)
            prior.answer(picture, where).ranked(5)
            first_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()  # the next photo of the same place and week: the kept answer
            prior.answer(picture, where).ranked(5)
            again_ms.append((time.perf_counter() - started) * 1000)

    def line(what: str, values: list[float]) -> str:
        return f"  {what:<52} median {statistics.median(values):6.2f} ms   max {max(values):6.2f} ms"

    print(f"per photo, {args.photos} photos each at a place of its own:")
    print(line("reading the capture date and GPS (EXIF)", metadata_ms))
    print(line("where and when + range model + combined top 5", first_ms))
    print(line("the same, a photo of a place and week already run", again_ms))
    total = [a + b for a, b in zip(metadata_ms, first_ms, strict=True)]
    print(line("the prior's whole cost for a new place", total))


if __name__ == "__main__":
    main()
