"""Start-up: launching birdid to a shown window, loading a base-size model file, first and second
identification. Each in a fresh process, as a person meets them.

Run: `.venv/bin/python benchmarks/startup.py [--runs 5]` (Qt runs offscreen unless a display is set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import machine_description  # benchmarks/machine.py

# The window, from a cold interpreter: time from process start to the first event-loop turn after
# show(), when the window is on screen. torch must not be among the imports by then.
WINDOW = """
import os, sys, time
started = time.perf_counter()
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from birdid_app.gui.main_window import MainWindow
app = QApplication(sys.argv[:1])
window = MainWindow()
window.show()
def shown():
    print(f"{time.perf_counter() - started:.3f} {'torch' in sys.modules}")
    window.close()
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""

# The model: read, checked and built from a base-size file (195 MB, like the published one),
# then the first and second identification of a 384x384 photo.
MODEL = """
import sys, time
started = time.perf_counter()
from birdid_app.core.model.inference import Classifier
imported = time.perf_counter()
classifier = Classifier.from_file(sys.argv[1], device="cpu")
loaded = time.perf_counter()
from PIL import Image
image = Image.new("RGB", (384, 384), (90, 120, 60))
classifier.identify_images([image])
first = time.perf_counter()
classifier.identify_images([image])
second = time.perf_counter()
print(f"{imported - started:.3f} {loaded - imported:.3f} {first - loaded:.3f} {second - first:.3f} {classifier.precision}")
"""


def base_model_file(folder: Path) -> Path:
    import torch
    from speed import BASE  # benchmarks/speed.py: the base model's configuration

    from birdid_app.core.model.checkpoint import write_checkpoint
    from birdid_app.core.model.hiera import Hiera

    torch.manual_seed(0)
    path = folder / "base.pt"
    model = Hiera(BASE)
    with torch.no_grad():
        model.classifier.weight.mul_(400)  # confident, separated logits, as a trained model gives
    write_checkpoint(path, model, [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
    return path


def run(code: str, *args: str, env: dict) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return done.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "BIRDID_DATA_DIR": str(Path(scratch) / "data"), "BIRDID_CONFIG_DIR": str(Path(scratch) / "config")}
        env.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")
        model = base_model_file(Path(scratch))
        model_megabytes = model.stat().st_size / 1e6
        windows = [run(WINDOW, env=env) for _ in range(args.runs)]
        first_starts, models = [], []
        for index in range(args.runs):
            # A data folder of its own: the first start measures the precision, the next reuses it.
            fresh = {**env, "BIRDID_DATA_DIR": str(Path(scratch) / f"data-{index}")}
            first_starts.append(run(MODEL, str(model), env=fresh))
            models.append(run(MODEL, str(model), env=fresh))

    def median(rows, column):
        return statistics.median(float(row[column]) for row in rows)

    print(f"machine: {machine_description()}; median of {args.runs} fresh processes each")
    print(f"launch to shown window (no model installed)     : {median(windows, 0):6.3f} s; torch imported by then: "
          f"{windows[0][1]}")
    print(f"import of the inference code (torch)             : {median(models, 0):6.3f} s (on the engine thread in the app)")
    print(f"load the {model_megabytes:.0f} MB model file, very first start     : {median(first_starts, 1):6.3f} s "
          f"(with the precision trial, which picked {first_starts[0][4]})")
    print(f"load the {model_megabytes:.0f} MB model file, every later start    : {median(models, 1):6.3f} s")
    print(f"first identification ({models[0][4]})                     : {median(models, 2):6.3f} s")
    print(f"second identification                            : {median(models, 3):6.3f} s")


if __name__ == "__main__":
    main()
