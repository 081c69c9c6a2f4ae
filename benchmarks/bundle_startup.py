"""From launch to a window on screen, as a double-click starts it: the frozen bundle's birdid-gui
beside the installed package's, on a virtual X display (Xvfb), seen from outside the app with
xdotool. Each run is a fresh process with fresh user folders; no model installed, and with the
base-size model installed (the window must not wait for it: the engine thread loads it).

Needs: Debian's xvfb and xdotool; a bundle from packaging/build.sh.
Run: `.venv/bin/python benchmarks/bundle_startup.py [--runs 5] [--bundle dist/birdid]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import base_model_file

from machine import machine_description  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent
DISPLAY = ":87"


def seconds_to_window(program: list[str], env: dict) -> float:
    started = time.perf_counter()
    app = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(app.pid)],
                                   capture_output=True, env=env)
            if found.returncode == 0 and found.stdout.strip():
                return time.perf_counter() - started
            if app.poll() is not None:
                raise SystemExit(f"{program[0]} exited with {app.returncode} before showing a window:\n"
                                 f"{app.stderr.read()}")
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{program[0]} showed no window in 60 s")
            time.sleep(0.01)
    finally:
        app.terminate()
        app.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "birdid")
    args = parser.parse_args()
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install xvfb xdotool).")
    programs = {
        "frozen bundle (birdid-gui)": [str(args.bundle / "birdid-gui")],
        "installed package (birdid-gui)": [str(Path(sys.executable).with_name("birdid-gui"))],
    }
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            model = base_model_file(Path(scratch))
            base_env = {key: value for key, value in os.environ.items() if not key.startswith(("BIRDID_", "QT_"))}
            base_env |= {"DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb"}
            print(f"machine: {machine_description()}; Xvfb {DISPLAY}; {args.runs} runs each, fresh user folders")
            for with_model in (False, True):
                for label, program in programs.items():
                    times = []
                    for run in range(args.runs):
                        folder = Path(scratch) / f"user-{with_model}-{label[:6]}-{run}"
                        env = base_env | {"BIRDID_DATA_DIR": str(folder / "data"), "BIRDID_CONFIG_DIR": str(folder / "config")}
                        if with_model:
                            subprocess.run([str(Path(sys.executable).with_name("birdid")), "model", "import", str(model)],
                                           env=env, check=True, capture_output=True)
                        times.append(seconds_to_window(program, env))
                    state = "base model installed" if with_model else "no model installed  "
                    print(f"{label:<32} {state}: first {times[0]:.2f} s, median {statistics.median(times):.2f} s")
    finally:
        xvfb.terminate()


if __name__ == "__main__":
    main()
