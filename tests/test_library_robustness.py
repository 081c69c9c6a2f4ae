"""The library against what a real disk and a real person do to it: two models, an old file,
a damaged file, two processes at once, unreadable photos and symbolic links. Real SQLite files,
real processes, the real command line."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from birdid_app.cli import main
from birdid_app.core.library import (
    _SCHEMA_V1,
    SCHEMA_VERSION,
    IndexerBusy,
    IndexJob,
    IndexLock,
    Library,
    LibraryError,
)
from birdid_app.core.model.checkpoint import write_checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from birdid_app.core.model.inference import Classifier
from birdid_app.core.model.model_store import ModelStore
from conftest import RGB_MEAN, RGB_STD, SPECIES, make_photo, randomise

# A second model, of another width: its embeddings have 384 values where the small model's have
# 256, so mixing the two in one search would not just be meaningless but a crash.
OTHER_CONFIG = HieraConfig(embed_dim=48, depths=(1, 1, 1, 1), num_heads=1, num_classes=len(SPECIES), image_size=(128, 128))


@pytest.fixture(scope="module")
def other_model_file(tmp_path_factory) -> Path:
    model = randomise(Hiera(OTHER_CONFIG), seed=5, classifier_scale=8.0)
    model.refresh_position_embedding()
    path = tmp_path_factory.mktemp("other") / "other-hiera.pt"
    write_checkpoint(path, model.eval(), SPECIES, RGB_MEAN, RGB_STD)
    return path


@pytest.fixture(scope="module")
def small(small_model_file):
    return Classifier.from_file(small_model_file, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def other(other_model_file):
    return Classifier.from_file(other_model_file, device="cpu", precision="fp32")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    for i in range(6):
        make_photo(root / f"p{i}.jpg", size=(320, 240), seed=i)
    return root


def run_index(library: Library, classifier: Classifier, model: str) -> tuple[IndexJob, list[int]]:
    counted: list[int] = []

    def classify(images):
        counted.append(len(images))
        return classifier.identify_images(images, keep_stage_maps=False)

    job = IndexJob(library, classify, model, decode_size=classifier.image_size)
    job.run()
    return job, counted


def birdid(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "birdid_app", *args], capture_output=True, text=True, timeout=timeout)


# --- each embedding belongs to the model that made it ------------------------------------------


def test_two_models_fill_in_their_own_rows_and_never_meet_in_a_search(tmp_path, folder, small, other):
    path = tmp_path / "library.sqlite3"
    with Library(path, model="small") as library:
        library.add_folder(folder)
        run_index(library, small, "small")
    with Library(path, model="other") as library:
        job, counted = run_index(library, other, "other")
        assert sum(counted) == 6 and job.summary.embedded == 6  # what "other" lacked, and only that
        _, counted = run_index(library, other, "other")
        assert sum(counted) == 0  # a rerun with the same model does nothing
        assert library.vectors().dim == 384 and len(library.vectors()) == 6
        photo = library.photo_by_path(folder / "p2.jpg")
        (expected,) = other.identify_files([folder / "p2.jpg"])
        assert [name for name, _ in photo.species] == [s.name for s in expected.ranked(5)]
        assert photo.model == "other"
        hits = library.similar(expected.embedding, 3)
        assert hits[0][0].path == folder / "p2.jpg" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(LibraryError, match="another model"):
            library.similar(np.ones(256, dtype=np.float32), 3)  # a "small" embedding: refused, not a crash
    with Library(path, model="small") as library:
        assert library.vectors().dim == 256 and len(library.vectors()) == 6
        (expected,) = small.identify_files([folder / "p2.jpg"])
        assert library.photo_by_path(folder / "p2.jpg").species[0][0] == expected.ranked(1)[0].name
    with Library(path) as library, pytest.raises(LibraryError, match="several models"):
        library.vectors()  # with two models and none named, it says so rather than guess


def test_a_changed_photo_drops_every_models_stale_rows(tmp_path, folder, small, other):
    path = tmp_path / "library.sqlite3"
    with Library(path, model="small") as library:
        library.add_folder(folder)
        run_index(library, small, "small")
    with Library(path, model="other") as library:
        run_index(library, other, "other")
        make_photo(folder / "p1.jpg", size=(320, 240), seed=70)
        os.utime(folder / "p1.jpg", ns=(time.time_ns(), time.time_ns() + 10**9))
        _, counted = run_index(library, other, "other")
        assert sum(counted) == 1
    with Library(path, model="small") as library:
        stale = library.photo_by_path(folder / "p1.jpg")
        assert stale.species == () and not library.has_embedding(stale.id)  # "small" saw the old picture
        _, counted = run_index(library, small, "small")
        assert sum(counted) == 1


def test_the_command_line_after_model_use_indexes_and_searches_with_the_new_model(
    tmp_path, folder, small_model_file, other_model_file, capsys
):
    store = ModelStore()
    store.import_file(small_model_file)
    other_name = store.import_file(other_model_file).name
    library = ["--library", str(tmp_path / "cli.sqlite3")]
    assert main(["index", str(folder), *library, "--device", "cpu", "--precision", "fp32"]) == 0
    assert "indexed 6 photos" in capsys.readouterr().out
    assert main(["model", "use", other_name]) == 0
    capsys.readouterr()

    assert main(["find", "Great Tit", *library]) == 0  # nothing by the new model yet: it says so
    assert "no photos identified by other-hiera yet" in capsys.readouterr().err
    assert main(["index", *library, "--device", "cpu", "--precision", "fp32"]) == 0
    assert "indexed 6 photos" in capsys.readouterr().out  # the new model fills in its own rows
    assert main(["similar", str(folder / "p3.jpg"), "--top-k", "2", "--json", *library]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [Path(h["path"]).name for h in hits] != ["p3.jpg"] and len(hits) == 2
    outside = tmp_path / "outside.jpg"
    make_photo(outside, size=(320, 240), seed=3)  # p3's picture, not in the library: a new forward
    # In fp32, as the library was indexed: "auto" may pick int8 here, whose embedding is within the
    # trial's rule (cosine >= 0.999) of fp32's, not within 1e-4.
    assert main(["similar", str(outside), "--top-k", "1", "--json", "--precision", "fp32", *library]) == 0
    (best,) = json.loads(capsys.readouterr().out)
    assert Path(best["path"]).name == "p3.jpg" and best["score"] == pytest.approx(1.0, abs=1e-4)


def test_a_version_1_library_is_migrated_with_its_data(tmp_path, folder, small):
    path = tmp_path / "old.sqlite3"
    (identification,) = small.identify_files([folder / "p0.jpg"])
    with sqlite3.connect(path) as db:  # a library as birdid 0.x wrote it
        for statement in _SCHEMA_V1:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO folders (path) VALUES (?)", (str(folder),))
        stat = (folder / "p0.jpg").stat()
        db.execute(
            "INSERT INTO photos VALUES (7, ?, ?, ?, 'abc', '2026-05-17T06:41:09', 52.0, -4.5, 'small', NULL, ?)",
            (str(folder / "p0.jpg"), stat.st_size, stat.st_mtime_ns, identification.embedding.tobytes()),
        )
        db.execute("INSERT INTO photos VALUES (8, ?, 1, 1, 'def', NULL, NULL, NULL, NULL, 'broken.jpg: damaged.', NULL)",
                   (str(folder / "broken.jpg"),))
        db.executemany("INSERT INTO predictions VALUES (7, ?, ?, ?)",
                       [(rank, s.name, s.probability) for rank, s in enumerate(identification.ranked(5), 1)])
    with Library(path) as library:
        assert library.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert library.folders() == [folder]
        photo = library.photo(7)
        assert photo.model == "small" and photo.taken_at == "2026-05-17T06:41:09" and photo.longitude == -4.5
        assert [name for name, _ in photo.species] == [s.name for s in identification.ranked(5)]
        assert np.array_equal(library.vectors().vector(7) * np.linalg.norm(identification.embedding),
                              identification.embedding) or np.allclose(
            library.vectors().vector(7), identification.embedding / np.linalg.norm(identification.embedding))
        assert library.photo(8).error == "broken.jpg: damaged." and library.photo(8).species == ()
        assert library.db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert library.integrity_ok()


# --- a damaged library file --------------------------------------------------------------------


def damage(path: Path) -> None:
    """Overwrite every page after the first (the schema) with noise: SQLite then says
    'database disk image is malformed' at the first read of any table."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    noise = np.random.default_rng(1).integers(0, 256, len(data) - page, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data[:page]) + noise)


@pytest.fixture
def damaged_library(tmp_path, folder, small_model_file) -> Path:
    path = tmp_path / "library.sqlite3"
    assert main(["index", str(folder), "--library", str(path), "--model", str(small_model_file)]) == 0
    damage(path)
    return path


@pytest.mark.parametrize("kind", ["malformed", "not a database"])
def test_every_command_says_in_one_sentence_that_the_library_is_damaged(tmp_path, folder, small_model_file,
                                                                          damaged_library, kind):
    if kind == "not a database":
        damaged_library.write_bytes(b"These are not the bytes of a SQLite database, just a text file. " * 100)
    common = ["--library", str(damaged_library), "--model", str(small_model_file)]
    for command in (["find", "Great Tit"], ["export", str(tmp_path / "out.csv")], ["duplicates"],
                    ["similar", str(folder / "p1.jpg")], ["index"]):
        done = birdid(*command, *common)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "indexed" not in done.stdout
        (line,) = done.stderr.strip().splitlines()[-1:]
        assert line.startswith(f"birdid: The library {damaged_library} is damaged (")
        assert "Your photos are untouched: rebuild it with `birdid index --rebuild`" in line
        assert kind in line


def test_index_rebuild_sets_the_damaged_file_aside_and_indexes_the_folders_again(damaged_library, folder,
                                                                                  small_model_file):
    # Every page but the schema is noise here, so the folders are named again.
    done = birdid("index", "--rebuild", str(folder), "--library", str(damaged_library), "--model", str(small_model_file))
    assert done.returncode == 0, done.stderr
    assert "indexed 6 photos" in done.stdout
    (kept,) = [p for p in damaged_library.parent.glob("library.sqlite3.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert kept.stat().st_size > 0  # the damaged bytes are kept for whoever wants to look
    with Library(damaged_library) as library:
        assert library.count() == 6 and library.integrity_ok()


# --- two processes at once -----------------------------------------------------------------------


OPEN_AT_ONCE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from birdid_app.core.library import Library
    go = Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    try:
        Library(Path(sys.argv[1])).close()
        print("ok", flush=True)
    except Exception as error:
        print(f"failed: {type(error).__name__}: {error}", flush=True)
    """
)


@pytest.mark.slow  # processes racing
def test_two_processes_creating_one_new_library_at_once_both_succeed(tmp_path):
    failures = []
    for round_number in range(12):
        path, go = tmp_path / f"new-{round_number}.sqlite3", tmp_path / f"go-{round_number}"
        processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(path), str(go)],
                                      stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        go.touch()
        failures += [line for p in processes for line in p.communicate(timeout=60)[0].splitlines() if line != "ok"]
        with Library(path) as library:
            assert library.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION and library.integrity_ok()
    assert failures == []


@pytest.mark.slow  # processes racing
def test_a_second_indexer_is_told_another_is_running_or_waits_and_redoes_nothing(tmp_path, small_model_file,
                                                                              small_model_int8_kept):
    folder = tmp_path / "many"
    for i in range(40):
        make_photo(folder / f"m{i:02d}.jpg", size=(320, 240), seed=i)
    library = tmp_path / "shared.sqlite3"
    with Library(library) as opened:
        opened.add_folder(folder)
        lock = IndexLock(library)
        lock.acquire(wait=False)
        try:  # in this process, while another indexer holds the lock
            with pytest.raises(IndexerBusy, match="Another birdid is indexing the library"):
                IndexJob(opened, lambda images: [], "x")
        finally:
            lock.release()

    command = [sys.executable, "-m", "birdid_app", "index", "--library", str(library), "--model", str(small_model_file)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    indexed = sorted(int(out.split("indexed ")[1].split()[0]) for out, _ in outputs)
    assert indexed == [0, 40]  # one did the work; the other waited for it and found nothing left
    with Library(library) as opened:
        assert opened.count() == 40


# --- what a folder holds -----------------------------------------------------------------------


def test_a_fifo_an_unreadable_file_and_a_dangling_link_are_recorded_and_the_summary_adds_up(tmp_path, folder, small):
    os.mkfifo(folder / "pipe.jpg")
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    with Library(tmp_path / "library.sqlite3", model="small") as library:
        library.add_folder(folder)
        job, counted = run_index(library, small, "small")
        summary = job.summary
        assert summary.scanned == 9 and sum(counted) == 6
        assert summary.embedded + summary.failed == summary.scanned
        errors = {Path(p).name: e for p, e in library.db.execute("SELECT path, error FROM photos WHERE error IS NOT NULL")}
        assert errors["pipe.jpg"].endswith("pipe.jpg: This is a named pipe, not a photo.")
        assert "loops" in errors["loop.jpg"]
        assert errors["gone.jpg"].endswith("gone.jpg: No such file.")
        # An unreadable file is retried every run (its fingerprint could not be read), so fixing
        # it is enough: here it is still a pipe, and is recorded again, not duplicated.
        job, counted = run_index(library, small, "small")
        assert sum(counted) == 0 and library.count() == 9


def test_a_symlinked_photo_is_kept_under_its_name_in_the_folder(tmp_path, small):
    elsewhere = make_photo(tmp_path / "elsewhere" / "real.jpg", size=(320, 240), seed=9)
    folder = tmp_path / "album"
    make_photo(folder / "own.jpg", size=(320, 240), seed=8)
    (folder / "linked.jpg").symlink_to(elsewhere)
    with Library(tmp_path / "library.sqlite3", model="small") as library:
        library.add_folder(folder)
        run_index(library, small, "small")
        paths = sorted(p for (p,) in library.db.execute("SELECT path FROM photos"))
        assert paths == [str(folder.resolve() / "linked.jpg"), str(folder.resolve() / "own.jpg")]
        assert library.photo_by_path(folder / "linked.jpg") is not None
        assert library.remove_folder(folder) == 2 and library.count() == 0
