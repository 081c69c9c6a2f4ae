"""`birdid identify` end to end on a real small checkpoint and real photo files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from birdid_app import __version__
from birdid_app.cli import main
from conftest import SPECIES


def run_birdid(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("birdid")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "birdid_app"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_identify_json_from_the_installed_command(small_model_file, photo_dir):
    photos = [str(photo_dir / "blue-tit.jpg"), str(photo_dir / "robin.png")]
    done = run_birdid("identify", "--model", str(small_model_file), *photos, "--json", "--top-k", "3")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["path"] for r in records] == photos
    for record in records:
        # No range model is installed and the photos carry no GPS: ranked by the picture, and said so.
        assert set(record) == {"path", "species", "species_by_picture", "model", "where", "where_notes"}
        assert record["where"] is None and record["species"] == record["species_by_picture"]
        assert record["model"] == {"name": "small-hiera", "verified": False, "trust": f"not installed, file {small_model_file}"}
        assert len(record["species"]) == 3
        assert all(s["name"] in SPECIES for s in record["species"])
        probabilities = [s["probability"] for s in record["species"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1


def test_one_bad_photo_exits_1_and_the_others_are_identified(small_model_file, photo_dir, tmp_path, capsys):
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    code = main(["identify", "--model", str(small_model_file), str(photo_dir / "heron.jpg"), str(fake), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    good, bad = json.loads(captured.out)
    assert len(good["species"]) == 5
    assert set(bad) == {"path", "error"} and bad["path"] == str(fake)
    assert "fake.jpg" in bad["error"]
    assert "fake.jpg" in captured.err


def test_every_photo_failing_still_prints_json(small_model_file, tmp_path, capsys):
    code = main(["identify", "--model", str(small_model_file), str(tmp_path / "gone.jpg"), "--json"])
    assert code == 1
    (record,) = json.loads(capsys.readouterr().out)
    assert "gone.jpg: No such file." in record["error"]


def test_plain_output_lists_percentages(small_model_file, photo_dir, capsys):
    code = main(["identify", "--model", str(small_model_file), str(photo_dir / "robin.png"), "--top-k", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == f"model: small-hiera (not installed, file {small_model_file})"
    assert lines[1].endswith("robin.png")
    assert len(lines) == 4 and all(line.strip().split("%")[1].strip() in SPECIES for line in lines[2:])


def test_no_installed_model_says_how_to_get_one(photo_dir, capsys):
    code = main(["identify", str(photo_dir / "robin.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert "birdid: No model is installed" in err and "birdid model download" in err and "birdid model import" in err


def test_a_broken_model_file_exits_2_with_its_name(photo_dir, tmp_path, capsys):
    bad_model = tmp_path / "weights.pt"
    bad_model.write_text("nope")
    assert main(["identify", "--model", str(bad_model), str(photo_dir / "robin.png")]) == 2
    assert "weights.pt: This is not a PyTorch model file." in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["identify"], ["identify", "x.jpg", "--top-k", "0"], ["identify", "x.jpg", "--device", "gpu"], ["frobnicate"], ["--json"]],
)
def test_bad_usage_exits_2(args, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert "birdid" in capsys.readouterr().err


def test_version():
    done = run_birdid("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"birdid {__version__}"


@pytest.mark.parametrize("mode", ["mean", "pca", "channel:5", "cam", "cam:great tit"])
def test_explain_writes_a_picture_the_size_of_the_photo(small_model_file, photo_dir, tmp_path, mode, capsys):
    from PIL import Image

    out = tmp_path / "seen.png"
    photo = photo_dir / "robin.png"  # 300 x 420, portrait
    code = main(["explain", str(photo), "--model", str(small_model_file), "--mode", mode, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as picture, Image.open(photo) as original:
        assert picture.size == (300, 420)
        assert (np.asarray(picture) != np.asarray(original.convert("RGB"))).any()  # something was drawn
    said = capsys.readouterr().out
    assert said.startswith(f"{out}: stage 3, {mode.split(':')[0]}")
    if mode == "cam:great tit":
        assert "for Great Tit" in said


def test_explain_a_region_draws_only_inside_it(small_model_file, photo_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "region.png"
    photo = photo_dir / "heron.jpg"  # 1600 x 1200
    args = ["explain", str(photo), "--model", str(small_model_file), "--region", "400,300,320,240"]
    assert main([*args, "--max-size", "0", "--out", str(out)]) == 0
    with Image.open(out) as picture, Image.open(photo) as original:
        drawn = [(x, y) for x, y in [(401, 301), (700, 520)] if picture.getpixel((x, y)) != original.getpixel((x, y))]
        untouched = [(x, y) for x, y in [(10, 10), (399, 299), (720, 540), (1500, 1100)]
                     if picture.getpixel((x, y)) == original.convert("RGB").getpixel((x, y))]
    assert len(drawn) == 2 and len(untouched) == 4


@pytest.mark.parametrize(
    "extra, code, message",
    [
        (["--mode", "sparkle"], 2, "choose mean, pca, channel:K, cam or cam:SPECIES"),
        (["--mode", "cam:Dodo"], 2, "no species called “Dodo”"),
        (["--mode", "channel:999"], 2, "channel 999 does not exist"),
        (["--region", "5000,5000,10,10"], 2, "lies outside"),
    ],
)
def test_explain_refuses_what_it_cannot_draw(small_model_file, photo_dir, tmp_path, extra, code, message, capsys):
    args = ["explain", str(photo_dir / "robin.png"), "--model", str(small_model_file), "--out", str(tmp_path / "x.png")]
    assert main([*args, *extra]) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_explain_a_bad_photo_exits_1(small_model_file, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    assert main(["explain", str(bad), "--model", str(small_model_file), "--out", str(tmp_path / "x.png")]) == 1
    assert "bad.jpg: This is not an image birdid can read." in capsys.readouterr().err


def unavailable_device() -> tuple[str, str]:
    """A device this machine does not have, and the sentence that says so."""
    import torch

    if not torch.cuda.is_available():
        return "cuda", "CUDA was requested, but this machine has no usable CUDA GPU."
    if not torch.backends.mps.is_available():
        return "mps", "Apple MPS was requested, but it is not available on this machine."
    pytest.skip("this machine has every kind of device")


def test_every_command_that_runs_the_model_runs_it_on_the_device_asked_for(small_model_file, photo_dir, tmp_path, capsys):
    device, sentence = unavailable_device()
    photo, library = str(photo_dir / "robin.png"), ["--library", str(tmp_path / "l.sqlite3")]
    model = ["--model", str(small_model_file)]
    assert main(["index", str(photo_dir), *library, *model, "--device", "cpu"]) == 0
    commands = {
        "identify": ["identify", photo],
        "explain": ["explain", photo, "--out", str(tmp_path / "x.png")],
        "index": ["index", str(photo_dir), *library],
        "similar": ["similar", str(tmp_path / "not-in-the-library.jpg"), *library],
        "selftest": ["selftest"],
    }
    capsys.readouterr()
    for name, args in commands.items():
        assert main([*args, *model, "--device", device, "--precision", "fp32"]) == 2, name
        assert capsys.readouterr().err.strip().endswith(sentence), name


def test_ctrl_c_exits_130_with_one_sentence(small_model_file, photo_dir, tmp_path):
    """Stopped while waiting for another indexer (a lock this test holds): no traceback."""
    from birdid_app.core.library import IndexLock

    library = tmp_path / "l.sqlite3"
    lock = IndexLock(library)
    lock.acquire(wait=False)
    command = [sys.executable, "-m", "birdid_app", "index", str(photo_dir), "--library", str(library),
               "--model", str(small_model_file), "--device", "cpu", "--precision", "fp32"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        waiting = process.stderr.readline()
        assert "waiting for it to finish (Ctrl+C to stop)" in waiting
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        lock.release()
    assert process.returncode == 130
    assert err == "birdid: Stopped.\n"


def test_a_file_that_cannot_be_written_is_one_sentence_and_nothing_is_left(small_model_file, photo_dir, tmp_path, capsys):
    library = ["--library", str(tmp_path / "l.sqlite3"), "--model", str(small_model_file)]
    assert main(["index", str(photo_dir), *library, "--device", "cpu"]) == 0
    out = tmp_path / "missing" / "out.csv"
    capsys.readouterr()
    assert main(["export", str(out), *library]) == 1
    assert capsys.readouterr().err == f"birdid: {out}: No such file or directory.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.sqlite3", "l.sqlite3.lock"]


def test_explain_replaces_an_older_picture_whole(small_model_file, photo_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "seen.png"
    out.write_bytes(b"an older picture")
    args = ["explain", str(photo_dir / "robin.png"), "--model", str(small_model_file), "--out", str(out)]
    assert main([*args, "--mode", "pca:3"]) == 2  # pca takes no number: refused before anything is written
    assert out.read_bytes() == b"an older picture"
    assert main(args) == 0
    with Image.open(out) as picture:
        assert picture.size == (300, 420)
    assert sorted(os.listdir(tmp_path)) == ["seen.png"]


def test_progress_reads_the_same_for_downloads_and_indexing():
    from birdid_app.core.library import IndexProgress
    from birdid_app.core.model.download import DownloadProgress
    from birdid_app.core.progress import describe_progress

    download = DownloadProgress(done=12_500_000, total=194_900_000, bytes_per_second=3_100_000, seconds_left=62.4,
                                resumed_from=0)
    assert describe_progress(download) == "12.5 of 194.9 MB, 3.1 MB/s, 1 min 2 s left"
    resumed = DownloadProgress(done=50_000_000, total=None, bytes_per_second=0, seconds_left=None, resumed_from=40_000_000)
    assert describe_progress(resumed, " · ") == "50.0 of 0.0 MB · 0.0 MB/s · resumed at 40.0 MB"
    indexing = IndexProgress(done=40, total=120, photos_per_second=5.2, seconds_left=15.2, current="p040.jpg")
    assert describe_progress(indexing) == "40 of 120 photos, 5.2/s, 15 s left"


def test_progress_off_a_terminal_is_a_line_every_tenth():
    import io

    from birdid_app.cli.progress import ProgressPrinter
    from birdid_app.core.library import IndexProgress

    stream = io.StringIO()
    printer = ProgressPrinter(stream, done_word="indexed", bar=False)
    for done in range(0, 101):
        printer.update(IndexProgress(done=done, total=100, photos_per_second=10.0, seconds_left=None, current=""))
    printer.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[0] == "indexed 0%: 0 of 100 photos, 10.0/s" and lines[-1] == "indexed 100%: 100 of 100 photos, 10.0/s"


def test_one_photo_does_not_pay_for_a_precision_trial_and_says_so(small_model_file, photo_dir, capsys):
    from birdid_app.core.model.precision import kept_choices

    code = main(["identify", "--model", str(small_model_file), str(photo_dir / "robin.png"), "--json"])
    err = capsys.readouterr().err
    assert code == 0
    assert "1 photo too few to measure the fastest precision first" in err and "birdid model retune" in err
    assert kept_choices(small_model_file) == []  # nothing measured, nothing kept
