"""Peak memory (resident set size) of the command line on big and many photos.

Each case runs `birdid` in a fresh process with the base-size Hiera (random weights, 384x384, the
published model's shape and size) and reads that process's own peak RSS from getrusage. Side by
side in one run: the model loaded on one small photo (the floor), one camera JPEG, 8, 25 and 100 large
PNGs (the same 24-megapixel file under 100 names), one 100-megapixel PNG in 8-bit colour and in
16-bit grey, and `explain` on the 100-megapixel PNG. Peak memory should not grow with the number
of photos beyond one batch, and one photo's peak should stay near the floor plus its decoded size.
Last, the window (offscreen) with the model loaded and a camera JPEG identified and shown.

Run: `.venv/bin/python benchmarks/peak_memory.py`. To measure another checkout with the same
script (the commit before a change, say): `PYTHONPATH=/that/checkout .venv/bin/python
benchmarks/peak_memory.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from birdid_app.core.model.checkpoint import write_checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from machine import cpu_flags, machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))

# Runs the command in this process, then prints this process's peak RSS (Linux: KiB).
MEASURE = (
    "import resource, sys\n"
    "from birdid_app.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def smooth_picture(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """Photo-like content that compresses well, so files are small and pixels many."""
    rng = np.random.default_rng(seed)
    width, height = size
    channels = 3 if mode == "RGB" else 1
    small = rng.integers(0, 255, (max(2, height // 200), max(2, width // 200), channels), dtype=np.uint8)
    picture = Image.fromarray(small.squeeze(), "RGB" if channels == 3 else "L").resize(size, Image.Resampling.BILINEAR)
    if mode == "I;16":
        grey16 = np.asarray(picture, dtype=np.uint16) * 257
        return Image.fromarray(grey16)  # 2-D uint16: mode "I;16"
    return picture


# The window, offscreen, with the model installed in a throwaway store and fp32 on the CPU chosen
# in its settings: a photo is opened, identified and shown, and then the window closes.
WINDOW_MEASURE = (
    "import os, resource, sys, tempfile\n"
    "from pathlib import Path\n"
    "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
    "scratch = Path(tempfile.mkdtemp())\n"
    "os.environ['BIRDID_DATA_DIR'] = str(scratch / 'data')\n"
    "os.environ['BIRDID_CONFIG_DIR'] = str(scratch / 'config')\n"
    "from PySide6.QtCore import QTimer\n"
    "from PySide6.QtWidgets import QApplication\n"
    "from birdid_app.core.model.model_store import ModelStore\n"
    "from birdid_app.core.settings import Settings, save_settings\n"
    "save_settings(Settings(device='cpu', precision='fp32'))\n"
    "ModelStore().import_file(Path(sys.argv[1]))\n"
    "app = QApplication([])\n"
    "from birdid_app.gui.main_window import MainWindow\n"
    "window = MainWindow()\n"
    "window.show()\n"
    "window.add_photos([Path(sys.argv[2])])\n"
    "def check():\n"
    "    entry = window.session.current\n"
    "    if entry is not None and (entry.outcome() is not None or entry.error):\n"
    "        QTimer.singleShot(1500, lambda: (window.close(), app.quit()))  # the photo drawn, too\n"
    "    else:\n"
    "        QTimer.singleShot(100, check)\n"
    "check()\n"
    "app.exec()\n"
    "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def peak_mib(args: list[str], code: str = MEASURE) -> tuple[float, int]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=1800)
    line = next((text for text in done.stderr.splitlines() if text.startswith("PEAK_KIB")), None)
    if line is None:
        raise SystemExit(f"birdid {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
    return int(line.split()[1]) / 1024, done.returncode


def main() -> None:
    print(machine_description())
    print(cpu_flags())
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model_file = root / "base.pt"
        model = Hiera(BASE).eval()
        write_checkpoint(model_file, model, [f"species {i}" for i in range(707)], (0.5,) * 3, (0.5,) * 3)
        del model

        small = root / "small.jpg"
        smooth_picture((640, 480), 1).save(small, quality=90)
        camera = root / "camera.jpg"
        smooth_picture((6000, 4000), 2).save(camera, quality=92)
        large_png = root / "large.png"
        smooth_picture((6000, 4000), 3).save(large_png)
        many = root / "many"
        many.mkdir()
        for i in range(100):
            os.link(large_png, many / f"large-{i:03d}.png")
        huge = root / "huge.png"
        smooth_picture((10000, 10000), 4).save(huge)
        huge16 = root / "huge16.png"
        smooth_picture((10000, 10000), 5, "I;16").save(huge16)

        identify = ["identify", "--model", str(model_file), "--device", "cpu", "--precision", "fp32", "--json"]
        cases = [
            ("identify, 1 small JPEG (the floor)", [*identify, str(small)], 0),
            ("identify, 1 JPEG 6000x4000", [*identify, str(camera)], 6000 * 4000 * 3),
            ("identify, 1 PNG 6000x4000", [*identify, str(large_png)], 6000 * 4000 * 3),
            # A batch of photos goes through the model at once: 8 photos hold the forward pass's
            # largest activations, and 100 should hold no more than that.
            ("identify, 8 PNGs 6000x4000 (one batch)", [*identify, *sorted(map(str, many.iterdir()))[:8]],
             6000 * 4000 * 3),
            ("identify, 25 PNGs 6000x4000", [*identify, *sorted(map(str, many.iterdir()))[:25]], 6000 * 4000 * 3),
            ("identify, 100 PNGs 6000x4000", [*identify, *sorted(map(str, many.iterdir()))], 6000 * 4000 * 3),
            ("identify, 1 PNG 100 MP, 8-bit RGB", [*identify, str(huge)], 10000 * 10000 * 3),
            ("identify, 1 PNG 100 MP, 16-bit grey", [*identify, str(huge16)], 10000 * 10000 * 2),
            ("explain, 1 PNG 100 MP, 8-bit RGB", ["explain", str(huge), "--model", str(model_file), "--device", "cpu",
                                                  "--precision", "fp32", "--mode", "pca", "--out", str(root / "x.png")],
             10000 * 10000 * 3),
        ]
        print(f"\n{'case':40} {'peak RSS MiB':>12} {'decoded MiB':>12} {'exit':>5}")
        for label, args, decoded_bytes in cases:
            peak, code = peak_mib(args)
            print(f"{label:40} {peak:12.0f} {decoded_bytes / 2**20:12.0f} {code:5d}", flush=True)
        peak, code = peak_mib([str(model_file), str(camera)], WINDOW_MEASURE)
        print(f"{'window, 1 JPEG 6000x4000 identified':40} {peak:12.0f} {6000 * 4000 * 3 / 2**20:12.0f} {code:5d}")


if __name__ == "__main__":
    main()
