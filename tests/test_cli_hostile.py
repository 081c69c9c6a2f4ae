"""The installed `birdid` command on what a photo folder holds: a named pipe, a malformed TIFF,
a link loop, among good photos. Real processes with a time limit, so a hang fails the test
instead of the suite; each asserts the sentence, the exit code and that every good photo was
still identified."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_photo
from test_photo_hostile import tiff_with_text_strip_offsets


def birdid(*args: str) -> subprocess.CompletedProcess:
    # 120 s: far more than the small model needs; a process blocked in open() would never end.
    return subprocess.run([sys.executable, "-m", "birdid_app", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def hostile(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "card"
    files = {
        "good": make_photo(folder / "good.jpg", size=(320, 240), seed=1),
        "pipe": folder / "pipe.jpg",
        "tiff": folder / "scan.tif",
        "loop": folder / "loop.jpg",
        "good2": make_photo(folder / "good2.png", size=(300, 200), seed=2),
    }
    os.mkfifo(files["pipe"])
    files["tiff"].write_bytes(tiff_with_text_strip_offsets())
    files["loop"].symlink_to(files["loop"])
    return files


def test_identify_names_each_bad_file_and_identifies_the_good_ones(hostile, small_model_file):
    done = birdid("identify", "--model", str(small_model_file), "--json", *map(str, hostile.values()))
    assert done.returncode == 1  # some failed
    records = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    assert list(records) == ["good.jpg", "pipe.jpg", "scan.tif", "loop.jpg", "good2.png"]
    assert len(records["good.jpg"]["species"]) == 5 and len(records["good2.png"]["species"]) == 5
    assert records["pipe.jpg"]["error"] == f"{hostile['pipe']}: This is a named pipe, not a photo."
    assert records["scan.tif"]["error"].startswith(f"{hostile['tiff']}: The image could not be read (TypeError")
    assert records["loop.jpg"]["error"] == f"{hostile['loop']}: The path loops through symbolic links."
    assert "Traceback" not in done.stderr
    assert done.stderr.count("birdid: ") == 3  # one sentence per bad file


@pytest.mark.parametrize("command", ["similar", "explain"])
def test_similar_and_explain_on_a_named_pipe_end_with_its_sentence(hostile, small_model_file, small_model_int8_kept, tmp_path, command):
    extra = ["--out", str(tmp_path / "x.png")] if command == "explain" else ["--library", str(tmp_path / "l.sqlite3")]
    if command == "similar":
        assert birdid("index", str(hostile["good"].parent), "--model", str(small_model_file), *extra).returncode == 0
    done = birdid(command, str(hostile["pipe"]), "--model", str(small_model_file), *extra)
    assert done.returncode == 1
    # The first command to load the model on this computer also says it prepares its int8 copy.
    lines = [line for line in done.stderr.splitlines() if not line.startswith("Preparing the int8 copy")]
    assert lines == [f"birdid: {hostile['pipe']}: This is a named pipe, not a photo."]


def test_index_records_every_bad_file_and_finishes(hostile, small_model_file, small_model_int8_kept, tmp_path):
    library = str(tmp_path / "l.sqlite3")
    done = birdid("index", str(hostile["good"].parent), "--library", library, "--model", str(small_model_file))
    assert done.returncode == 0, done.stderr
    assert "indexed 2 photos (3 could not be read); the library holds 5" in done.stdout
    again = birdid("index", "--library", library, "--model", str(small_model_file))
    # The TIFF's bytes were read (a damaged image stays damaged until the file changes); the
    # pipe and the loop could not be read at all, so they are tried again, in case that is fixed.
    assert "5 photos found: 3 unchanged, 0 moved, 0 gone, 2 to identify" in again.stderr
    assert "indexed 0 photos (2 could not be read); the library holds 5" in again.stdout


def test_model_verify_with_no_model_says_so():
    done = birdid("model", "verify")
    assert done.returncode == 2
    assert done.stderr.startswith("birdid: No model is installed, so there is nothing to verify")


def test_help_says_that_plain_birdid_opens_the_window():
    done = birdid("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "With no command, `birdid` opens the window, and `birdid PHOTO...`" in text


def test_every_error_line_reads_as_a_sentence(hostile, small_model_file, tmp_path):
    """After "birdid: ", and after "PATH: ", a capital letter; at the end, a full stop."""
    runs = [
        birdid("identify", "--model", str(small_model_file), *map(str, hostile.values())),
        birdid("identify", "--model", str(tmp_path / "absent.pt"), str(hostile["good"])),
        birdid("identify", "--model", str(hostile["good"]), str(hostile["good"])),  # a JPEG is no model
        birdid("model", "verify"),
        birdid("model", "use", "nothing"),
        birdid("find", "Great Tit", "--library", str(tmp_path / "none.sqlite3")),
        birdid("index", str(hostile["good"]), "--library", str(tmp_path / "l.sqlite3")),  # a file, not a folder
    ]
    lines = [line for run in runs for line in run.stderr.splitlines() if line.startswith("birdid: ")]
    assert len(lines) >= 9
    for line in lines:
        message = line.removeprefix("birdid: ")
        after_path = re.sub(r"^/\S*: ", "", message)
        assert after_path[:1].isupper() and message.rstrip().endswith((".", ".)")), line
