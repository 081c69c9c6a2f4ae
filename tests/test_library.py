"""The photo library: a real SQLite file, real photo folders, the small checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from birdid_app.cli import main
from birdid_app.core.insight.trust import index_identifier
from birdid_app.core.library import IndexJob, Library, LibraryError
from birdid_app.core.model.inference import Classifier
from conftest import make_photo


@pytest.fixture(scope="module")
def classifier(small_model_file):
    return Classifier.from_file(small_model_file, device="cpu", precision="fp32")


class CountingClassify:
    """The classifier's batch call, counting the photos that go through the model."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.photos = 0

    def __call__(self, images):
        self.photos += len(images)
        return self.classifier.identify_images(images)


def photo_with_exif(path: Path) -> Path:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:05:17 06:41:09"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 30.0), 3: "W", 4: (4.0, 30.0, 0.0)})
    make_photo(path, size=(320, 240), seed=41, exif=exif)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    for i in range(10):
        make_photo(root / f"walk-{i:02d}.jpg", size=(320, 240), seed=i)
    make_photo(root / "garden" / "feeder.png", size=(300, 200), seed=20)
    photo_with_exif(root / "garden" / "dawn.jpg")
    (root / "garden" / "broken.jpg").write_text("not a photo")
    (root / "notes.txt").write_text("ignored: not a photo suffix")
    (root / "garden" / "loop").symlink_to(root)  # a symbolic link back up: must not loop
    return root


def index(library: Library, classifier, counter=None) -> tuple[IndexJob, CountingClassify]:
    counter = counter or CountingClassify(classifier)
    # As the app runs it: decoded near the input size and squashed to it on the decoder threads.
    _, decode_size, prepare = index_identifier(classifier, zoom=False)
    job = IndexJob(library, counter, "small-hiera", decode_size=decode_size, prepare=prepare)
    job.run()
    return job, counter


def test_indexing_stores_the_classifiers_embeddings_and_species(tmp_path, folder, classifier):
    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        job, counter = index(library, classifier)
        assert library.count() == 13  # 12 photos and the broken one, each once despite the loop
        assert counter.photos == 12 and job.summary.failed == 1
        for path in sorted(folder.rglob("*.jpg")) + [folder / "garden" / "feeder.png"]:
            if "loop" in path.parts or path.name == "broken.jpg":
                continue
            stored = library.photo_by_path(path)
            (expected,) = classifier.identify_files([path])
            assert np.allclose(library.vectors().vector(stored.id), expected.embedding / np.linalg.norm(expected.embedding), atol=1e-5)
            assert [name for name, _ in stored.species] == [s.name for s in expected.ranked(5)]
            assert stored.model == "small-hiera"
        broken = library.photo_by_path(folder / "garden" / "broken.jpg")
        assert broken.error.endswith("broken.jpg: This is not an image birdid can read.") and broken.species == ()
        dawn = library.photo_by_path(folder / "garden" / "dawn.jpg")
        assert dawn.taken_at == "2026-05-17T06:41:09"
        assert dawn.latitude == pytest.approx(52.375) and dawn.longitude == pytest.approx(-4.5)
        assert library.integrity_ok()


def test_similar_is_the_exact_cosine_top_k_and_find_the_exact_top_1(tmp_path, folder, classifier):
    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        index(library, classifier)
        rows = library.db.execute(
            "SELECT photo_id, embedding FROM identifications WHERE model = 'small-hiera'").fetchall()
        ids = np.array([r[0] for r in rows])
        matrix = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        query = ids[3]
        scores = matrix @ matrix[3]
        order = [i for i in np.argsort(-scores, kind="stable") if ids[i] != query][:5]
        hits = library.similar_to_photo(int(query), 5)
        assert [p.id for p, _ in hits] == [int(ids[i]) for i in order]
        assert [s for _, s in hits] == pytest.approx([float(scores[i]) for i in order], abs=1e-5)

        for species, _ in library.species_counts():
            expected = {pid for (pid,) in library.db.execute(
                "SELECT photo_id FROM predictions WHERE rank = 1 AND species = ?", (species,))}
            found = library.find_species(species)
            assert {p.id for p, _ in found} == expected
            assert [prob for _, prob in found] == sorted((prob for _, prob in found), reverse=True)


def test_re_indexing_does_the_least_work(tmp_path, folder, classifier):
    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        index(library, classifier)
        _, counter = index(library, classifier)
        assert counter.photos == 0  # nothing changed: no forward pass at all

        make_photo(folder / "new.jpg", size=(320, 240), seed=77)
        _, counter = index(library, classifier)
        assert counter.photos == 1 and library.photo_by_path(folder / "new.jpg") is not None

        changed = folder / "walk-03.jpg"
        before = library.photo_by_path(changed)
        make_photo(changed, size=(320, 240), seed=99)
        os.utime(changed, ns=(time.time_ns(), time.time_ns()))
        _, counter = index(library, classifier)
        after = library.photo_by_path(changed)
        assert counter.photos == 1 and after.id == before.id  # re-identified in place

        moved = library.photo_by_path(folder / "walk-04.jpg")
        (folder / "garden" / "walk-04-renamed.jpg").write_bytes((folder / "walk-04.jpg").read_bytes())
        (folder / "walk-04.jpg").unlink()
        job, counter = index(library, classifier)
        assert counter.photos == 0 and job.summary.renamed == 1
        assert library.photo_by_path(folder / "garden" / "walk-04-renamed.jpg").id == moved.id

        (folder / "walk-05.jpg").unlink()
        job, counter = index(library, classifier)
        assert counter.photos == 0 and job.summary.removed == 1
        assert library.photo_by_path(folder / "walk-05.jpg") is None
        assert library.count() == 13


def test_a_first_index_reads_fingerprints_on_the_decoder_threads_not_while_planning(tmp_path, folder, classifier,
                                                                                     monkeypatch):
    from birdid_app.core.library import index_job as library_module

    readers = []
    real_fingerprint = library_module.fingerprint

    def recording(path, size):
        readers.append(threading.current_thread() is threading.main_thread())
        return real_fingerprint(path, size)

    monkeypatch.setattr(library_module, "fingerprint", recording)
    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        job = IndexJob(library, classifier.identify_images, "small-hiera", decode_size=classifier.image_size)
        job.plan()
        assert readers == []  # planning a first index reads no file contents
        job.run()
        assert len(readers) == library.count() and not any(readers)  # each read once, off this thread
        stored = dict(library.db.execute("SELECT path, fingerprint FROM photos"))
    assert stored == {path: real_fingerprint(Path(path), Path(path).stat().st_size) for path in stored}


def test_a_photo_deleted_between_planning_and_indexing_is_passed_over(tmp_path, folder, classifier):
    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        job = IndexJob(library, classifier.identify_images, "small-hiera", decode_size=classifier.image_size)
        planned = job.plan().scanned
        (folder / "walk-02.jpg").unlink()
        summary = job.run()
        assert library.count() == planned - 1 and library.photo_by_path(folder / "walk-02.jpg") is None
        assert summary.failed == 1  # broken.jpg, recorded with its error; the vanished photo is not an error


def test_duplicates_and_csv_export(tmp_path, folder, classifier):
    (folder / "walk-00-copy.jpg").write_bytes((folder / "walk-00.jpg").read_bytes() + b"\0")  # a copy, other bytes
    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        index(library, classifier)
        groups = library.duplicate_groups(0.999)
        assert [sorted(p.path.name for p in g) for g in groups] == [["walk-00-copy.jpg", "walk-00.jpg"]]
        assert library.export_csv(tmp_path / "birds.csv") == 14
    with (tmp_path / "birds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    dawn = next(r for r in rows if r["path"].endswith("dawn.jpg"))
    assert dawn["taken_at"] == "2026-05-17T06:41:09" and float(dawn["latitude"]) == pytest.approx(52.375)
    assert dawn["species_1"] and 0 < float(dawn["probability_1"]) <= 1 and dawn["model"] == "small-hiera"
    assert next(r for r in rows if r["path"].endswith("broken.jpg"))["error"]


def test_a_library_from_a_newer_birdid_is_refused(tmp_path):
    path = tmp_path / "library.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(LibraryError, match="newer birdid"):
        Library(path)


def test_command_line_index_similar_find_duplicates_export(tmp_path, folder, small_model_file, capsys):
    library = tmp_path / "cli.sqlite3"
    common = ["--library", str(library), "--model", str(small_model_file)]
    assert main(["index", str(folder), *common]) == 0
    assert "indexed 12 photos (1 could not be read); the library holds 13" in capsys.readouterr().out

    assert main(["similar", str(folder / "walk-01.jpg"), "--top-k", "3", "--json", *common]) == 0
    similar = json.loads(capsys.readouterr().out)
    assert len(similar) == 3 and all(set(r) == {"path", "score"} for r in similar)
    assert [r["score"] for r in similar] == sorted((r["score"] for r in similar), reverse=True)
    assert str(folder / "walk-01.jpg") not in [r["path"] for r in similar]

    with Library(library) as opened:
        species, count = opened.species_counts()[0]
    assert main(["find", species.upper(), "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found) == count and all(set(r) == {"path", "probability"} for r in found)

    assert main(["duplicates", "--threshold", "0.9999", *common]) == 0
    assert main(["export", str(tmp_path / "out.csv"), *common]) == 0
    assert capsys.readouterr().out.strip().endswith("out.csv: 13 photos")


def indexed_rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # a real indexer process killed three times: about half a minute each
@pytest.mark.parametrize("kill_after_rows", [0, 8, 40])
def test_killed_while_indexing_the_next_run_finishes_consistently(tmp_path, small_model_file, small_model_int8_kept, kill_after_rows):
    folder = tmp_path / "many"
    for i in range(120):
        make_photo(folder / f"p{i:03d}.jpg", size=(480, 360), seed=i % 17)
    library = tmp_path / "killed.sqlite3"
    command = [sys.executable, "-m", "birdid_app", "index", str(folder), "--library", str(library),
               "--model", str(small_model_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while indexed_rows(library) < kill_after_rows or (kill_after_rows == 0 and not library.exists()):
        assert process.poll() is None, "the indexer finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()  # reaps it and closes its pipes
    at_kill = indexed_rows(library)
    assert at_kill < 120  # it really was stopped part-way

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"indexed {120 - at_kill} photos" in done.stdout  # carries on; redoes nothing committed
    with Library(library) as opened:
        assert opened.integrity_ok()
        assert opened.count() == 120
        assert opened.db.execute("SELECT COUNT(DISTINCT path) FROM photos").fetchone()[0] == 120
        assert opened.db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 120 * 5


def test_a_large_librarys_index_holds_float16_and_reads_its_candidates_back_from_the_file(
    tmp_path, folder, classifier, monkeypatch
):
    from birdid_app.core.library import vectors as vectors_module

    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        index(library, classifier)
    monkeypatch.setattr(vectors_module, "TWO_PASS_MIN_ROWS", 0)  # "large" from the first row
    with Library(tmp_path / "library.sqlite3") as library:
        rows = library.db.execute(
            "SELECT photo_id, embedding FROM identifications WHERE model = 'small-hiera'").fetchall()
        ids = np.array([r[0] for r in rows])
        matrix = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        assert not library.vectors().holds_float32
        assert library.vectors().nbytes() == matrix.size * 2 + ids.size * 8

        for position in (0, 3, 7):
            scores = matrix @ matrix[position]
            order = [i for i in np.lexsort((ids, -scores)) if i != position][:6]
            hits = library.similar_to_photo(int(ids[position]), 6)
            assert [p.id for p, _ in hits] == [int(ids[i]) for i in order]
            assert [s for _, s in hits] == pytest.approx([float(scores[i]) for i in order], abs=1e-6)

        # Another process forgets a photo while this index is loaded: it is no longer an answer.
        other = sqlite3.connect(tmp_path / "library.sqlite3")
        with other:
            other.execute("DELETE FROM identifications WHERE photo_id = ?", (int(ids[1]),))
        other.close()
        assert int(ids[1]) not in [p.id for p, _ in library.similar_to_photo(int(ids[0]), len(ids))]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_decoding_and_the_squash_run_on_the_decoder_threads_below_the_model(tmp_path, folder, classifier):
    """The squash to the input size runs beside the forward, not before it on the indexing thread,
    and the decoder threads are scheduled below the model's (see index_job._decode_below_the_model)."""
    from birdid_app.core.library import DECODER_NICENESS

    seen = []
    _, decode_size, squash = index_identifier(classifier, zoom=False)

    def prepare(image):
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return squash(image)

    with Library(tmp_path / "library.sqlite3") as library:
        library.add_folder(folder)
        IndexJob(library, classifier.identify_images, "small-hiera", decode_size=decode_size, prepare=prepare).run()
        assert library.count() == 13
    assert len(seen) == 12  # every decodable photo, and only on the pool's threads
    assert all(name.startswith("birdid-decode") and nice >= DECODER_NICENESS for name, nice in seen)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < DECODER_NICENESS  # this thread untouched


def test_rows_for_ids_reads_more_ids_than_sqlite_takes_in_one_statement():
    import sqlite3

    from birdid_app.core.library.database import SQL_VARIABLES, rows_for_ids

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, model TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, "a" if i % 2 else "b") for i in range(3 * SQL_VARIABLES)])
    wanted = list(range(0, 3 * SQL_VARIABLES, 1)) + [10**9]  # 2,701 ids, one not there
    rows = list(rows_for_ids(db, "SELECT id FROM t WHERE model = ? AND id IN ({ids})", wanted, first=("a",)))
    assert sorted(pid for (pid,) in rows) == list(range(1, 3 * SQL_VARIABLES, 2))
    assert list(rows_for_ids(db, "SELECT id FROM t WHERE id IN ({ids})", [])) == []
