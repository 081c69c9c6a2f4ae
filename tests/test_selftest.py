"""`birdid selftest`: the installation check the frozen app runs without a display server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from birdid_app.cli import main
from conftest import SPECIES


def test_selftest_identifies_the_bundled_sample_and_says_where_things_are(small_model_file, capsys):
    assert main(["selftest", "--model", str(small_model_file), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("birdid 0.1.0, Python package in ")
    resources = Path(lines[1].removeprefix("resources: "))
    assert (resources / "samples" / "robin.jpg").is_file() and (resources / "icons" / "birdid.svg").is_file()
    assert lines[2] == f"models and library: {os.environ['BIRDID_DATA_DIR']}"
    assert lines[3] == f"settings: {os.environ['BIRDID_CONFIG_DIR']}"
    assert lines[4].startswith(f"model: {small_model_file} (10 species), loaded in ")
    assert lines[5].startswith("device: cpu; precision: ")
    sample = lines[6].removeprefix("sample robin.jpg: ")
    names = [entry.rsplit(" ", 1)[0] for entry in sample.split(" (")[0].split("; ")]  # "Great Tit 31.2%"
    assert len(names) == 5 and set(names) <= set(SPECIES)
    assert lines[-1] == "selftest passed"


def test_selftest_in_the_window_leaves_the_persons_folders_alone(small_model_file):
    # In a process of its own, as `birdid selftest --window` always runs: run inside the test
    # process, its window's app.exec() left pytest-qt's application unable to deliver a later
    # window's engine signals for a while, and the window tests after it timed out.
    data = Path(os.environ["BIRDID_DATA_DIR"])
    done = subprocess.run(
        [sys.executable, "-m", "birdid_app.cli", "selftest", "--model", str(small_model_file), "--device", "cpu",
         "--precision", "bf16", "--window"],
        capture_output=True, text=True, timeout=300, env=os.environ | {"QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    (window_line,) = [line for line in out.splitlines() if line.startswith("window: ")]
    assert window_line.startswith("window: offscreen platform, model loaded on the engine thread, sample identified as ")
    assert any(name in window_line for name in SPECIES)
    assert window_line.endswith("s from opening), bf16 on cpu")  # --precision and --device, honoured
    assert not (data / "models").exists()  # the window ran on a throwaway store
    assert out.endswith("selftest passed\n")


def test_selftest_without_a_model_fails_in_one_sentence(capsys):
    assert main(["selftest"]) == 2
    assert capsys.readouterr().err.startswith("birdid: The selftest failed: No model is installed: run `birdid model download`")


def test_selftest_with_a_damaged_model_names_the_file(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not really")
    assert main(["selftest", "--model", str(broken)]) == 2
    assert capsys.readouterr().err == f"birdid: The selftest failed: {broken}: The model file is truncated or damaged; download or copy it again.\n"
