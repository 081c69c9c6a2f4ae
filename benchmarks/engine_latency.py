"""How long an identification asked for while the library is being indexed waits to start.

The real engine thread (gui/engine.py) with the base-size Hiera (random weights, 384x384, fp32
on the CPU) indexes a folder of JPEGs; meanwhile an identification is asked for every 1.3 s, and
the time from asking to the engine starting on it is recorded. Side by side in one run: index
work a photo per forward (what the engine does on a CPU) and a batch of 8 per forward (what it
did before), beside the time of one forward of one photo and of eight.

Run: `.venv/bin/python benchmarks/engine_latency.py [--photos 40]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PIL import Image
from PySide6.QtCore import QCoreApplication, Qt

from birdid_app.core.model.checkpoint import write_checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from machine import cpu_flags, machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))


def measure(engine_module, model, folder: Path, photo: Path, forward_size: int, library: Path) -> list[float]:
    """Seconds from asking for an identification to the engine starting on it, while indexing."""
    from birdid_app.core.library import Library

    engine = engine_module.Engine()
    engine._indexing.forward_size = lambda: forward_size  # the engine's choice, fixed for the comparison
    app = QCoreApplication.instance()
    asked: dict[int, float] = {}
    waits: list[float] = []
    engine.working.connect(lambda rid: waits.append(time.perf_counter() - asked.pop(rid)) if rid in asked else None,
                           Qt.ConnectionType.DirectConnection)
    done = []
    engine.index_finished.connect(lambda summary: done.append(summary), Qt.ConnectionType.DirectConnection)
    loaded = []
    engine.model_loaded.connect(lambda m: loaded.append(m), Qt.ConnectionType.DirectConnection)
    engine.start()
    engine.load_model(model, engine_module.EngineSettings(device="cpu", precision="fp32"))
    while not loaded:
        app.processEvents()
        time.sleep(0.01)
    with Library(library) as opened:
        opened.add_folder(folder)
    engine.start_indexing(library, model.name)
    next_ask, request_id = time.perf_counter() + 2.0, 0
    while not done:
        app.processEvents()
        # The next request only once the last one has started: a newer request replaces a
        # waiting one, and the replaced one's wait would go unrecorded.
        if time.perf_counter() >= next_ask and not asked:
            request_id += 1
            asked[request_id] = time.perf_counter()
            engine.identify(engine_module.IdentifyRequest(request_id, "photo", path=photo))
            next_ask = time.perf_counter() + 1.3
        time.sleep(0.005)
    engine.stop()
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    args = parser.parse_args()
    print(machine_description())
    print(cpu_flags())

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        os.environ["BIRDID_DATA_DIR"] = str(root / "data")
        os.environ["BIRDID_CONFIG_DIR"] = str(root / "config")
        from birdid_app.core.model.inference import Classifier
        from birdid_app.core.model.model_store import ModelStore
        from birdid_app.gui import engine as engine_module

        write_checkpoint(root / "base.pt", Hiera(BASE).eval(), [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
        model = ModelStore().import_file(root / "base.pt")
        rng = np.random.default_rng(0)
        folder = root / "photos"
        folder.mkdir()
        for i in range(args.photos):
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(folder / f"p{i:03d}.jpg")
        photo = folder / "p000.jpg"

        classifier = Classifier.from_file(root / "base.pt", device="cpu", precision="fp32")
        images = [Image.open(photo).convert("RGB")] * 8
        one = statistics.median(_timed(lambda: classifier.identify_images(images[:1])) for _ in range(5))
        eight = statistics.median(_timed(lambda: classifier.identify_images(images)) for _ in range(3))
        print(f"one forward, 1 photo: {one:.2f} s; 8 photos: {eight:.2f} s")

        app = QCoreApplication([])  # noqa: F841 - the engine's signals need an application
        print(f"\n{'index work per forward':24} {'asked':>5} {'median wait s':>14} {'max wait s':>11}")
        for forward_size in (1, 8):
            waits = measure(engine_module, model, folder, photo, forward_size, root / f"library-{forward_size}.sqlite3")
            print(f"{forward_size:>2} photo{'s' if forward_size > 1 else ' ':22} {len(waits):5d} "
                  f"{statistics.median(waits):14.2f} {max(waits):11.2f}", flush=True)


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
