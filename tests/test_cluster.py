"""Indexing on a Ray cluster (`birdid index --engine ray`) and merging its shards into a library
(`birdid library import`), on a real local Ray cluster started here (2 CPUs, no network), the
small checkpoint, real photo files and real SQLite libraries, compared with the local indexer."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from PIL import Image

from birdid_app.cli import main
from conftest import make_photo


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "archive"
    for i in range(14):
        make_photo(root / f"site-{i % 3}" / f"frame-{i:02d}.jpg", size=(320, 240), seed=i)
    make_photo(root / "site-0" / "heron.png", size=(300, 200), seed=40)
    tagged = Image.open(make_photo(root / "site-1" / "tagged.jpg", size=(320, 240), seed=41))
    exif = tagged.getexif()
    exif.get_ifd(0x8769)[0x9003] = "2026:05:17 06:41:09"
    tagged.save(root / "site-1" / "tagged.jpg", exif=exif)
    (root / "site-2" / "broken.jpg").write_text("not a photo")
    return root


def library_rows(path: Path) -> dict:
    """Everything the library says about its photos, by path (ids differ between libraries)."""
    db = sqlite3.connect(path)
    try:
        photos = {row[0]: row[1:] for row in db.execute(
            "SELECT path, size, mtime_ns, fingerprint, taken_at, latitude, longitude, error FROM photos")}
        embeddings = {p: np.frombuffer(e, dtype=np.float32) for p, e in db.execute(
            "SELECT path, embedding FROM identifications JOIN photos ON photos.id = photo_id")}
        top5 = {}
        for p, species, probability in db.execute(
                "SELECT path, species, probability FROM predictions JOIN photos ON photos.id = photo_id "
                "ORDER BY path, rank"):
            top5.setdefault(p, []).append((species, probability))
        folders = sorted(f for (f,) in db.execute("SELECT path FROM folders"))
    finally:
        db.close()
    return {"photos": photos, "embeddings": embeddings, "top5": top5, "folders": folders}


def index_on_ray(folder, shards, model, capsys, *extra) -> tuple[int, str, str]:
    code = main(["index", "--engine", "ray", "--shards", str(shards), "--model", str(model),
                 "--device", "cpu", "--precision", "fp32", "--library", str(shards.parent / "none.sqlite3"),
                 *extra, str(folder)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow  # a local Ray cluster
def test_ray_index_then_import_gives_the_local_indexers_library(ray_cluster, tmp_path, folder, small_model_file,
                                                                  capsys):
    local, imported, shards = tmp_path / "local.sqlite3", tmp_path / "imported.sqlite3", tmp_path / "shards"
    assert main(["index", "--library", str(local), "--model", str(small_model_file), "--device", "cpu",
                 "--precision", "fp32", str(folder)]) == 0
    capsys.readouterr()

    code, out, err = index_on_ray(folder, shards, small_model_file, capsys)
    assert code == 0, err
    assert "17 photos found: 0 already in the shards or the library, 17 to identify" in err
    assert "wrote 17 photos to shards" in out
    # The shards may bring photos of the folder the person names; after that it is the library's.
    assert main(["library", "import", "--library", str(imported), "--model", str(small_model_file),
                 "--folder", str(folder), str(shards)]) == 0
    assert "imported 17 photos (1 could not be read), 0 unchanged; the library holds 17" in capsys.readouterr().out

    expected, found = library_rows(local), library_rows(imported)
    assert found["photos"] == expected["photos"]  # sizes, times, fingerprints, EXIF date, errors
    assert found["folders"] == expected["folders"]
    assert found["embeddings"].keys() == expected["embeddings"].keys() and len(expected["embeddings"]) == 16
    for path, embedding in expected["embeddings"].items():
        np.testing.assert_allclose(found["embeddings"][path], embedding, rtol=1e-5, atol=1e-5)
    for path, top in expected["top5"].items():
        assert [s for s, _ in found["top5"][path]] == [s for s, _ in top]
        np.testing.assert_allclose([p for _, p in found["top5"][path]], [p for _, p in top], atol=1e-6)

    # A rerun does no model work: everything is in the shards already (the unreadable photo with
    # its error, as the local indexer keeps it); Ray is not even started for it.
    shard_files = sorted(shards.glob("*.parquet"))
    code, out, err = index_on_ray(folder, shards, small_model_file, capsys)
    assert "17 photos found: 17 already in the shards or the library, 0 to identify" in err
    assert code == 0 and "wrote 0 photos" in out
    assert sorted(shards.glob("*.parquet")) == shard_files

    # Importing again changes nothing.
    before = library_rows(imported)
    assert main(["library", "import", "--library", str(imported), "--model", str(small_model_file), str(shards)]) == 0
    assert "imported 0 photos (0 could not be read), 17 unchanged" in capsys.readouterr().out
    after = library_rows(imported)
    assert after["photos"] == before["photos"] and after["top5"] == before["top5"]

    # A new photo and a changed one: only those two go through the model, and the import
    # replaces the changed photo's row.
    make_photo(folder / "site-0" / "new.jpg", size=(320, 240), seed=90)
    make_photo(folder / "site-1" / "frame-01.jpg", size=(320, 240), seed=91)
    code, out, err = index_on_ray(folder, shards, small_model_file, capsys)
    assert "18 photos found: 16 already in the shards or the library, 2 to identify" in err
    assert code == 0 and "wrote 2 photos" in out
    assert main(["library", "import", "--library", str(imported), "--model", str(small_model_file), str(shards)]) == 0
    assert "imported 2 photos (0 could not be read), 16 unchanged; the library holds 18" in capsys.readouterr().out
    changed = library_rows(imported)["photos"][str(folder / "site-1" / "frame-01.jpg")]
    assert changed[:2] == (os.stat(folder / "site-1" / "frame-01.jpg").st_size,
                           os.stat(folder / "site-1" / "frame-01.jpg").st_mtime_ns)


@pytest.mark.slow  # a local Ray cluster
def test_a_rerun_skips_what_the_library_holds(ray_cluster, tmp_path, folder, small_model_file, capsys):
    library = tmp_path / "library.sqlite3"
    assert main(["index", "--library", str(library), "--model", str(small_model_file), "--device", "cpu",
                 "--precision", "fp32", str(folder)]) == 0
    capsys.readouterr()
    code = main(["index", "--engine", "ray", "--shards", str(tmp_path / "shards"), "--model", str(small_model_file),
                 "--library", str(library), str(folder)])
    err = capsys.readouterr().err
    assert code == 0
    assert "17 photos found: 17 already in the shards or the library, 0 to identify" in err


@pytest.mark.slow  # a local Ray cluster
def test_half_written_and_other_model_shards_are_reported_and_the_rest_imported(
    ray_cluster, tmp_path, folder, small_model_file, capsys
):
    shards = tmp_path / "shards"
    assert index_on_ray(folder, shards, small_model_file, capsys)[0] == 0
    table = pq.read_table(next(shards.glob("*.parquet")))
    total = sum(pq.read_metadata(f).num_rows for f in shards.glob("*.parquet"))
    # A shard cut short, as a worker killed while writing leaves it, and one by another model.
    whole = (shards / "whole.bin")
    pq.write_table(table, whole)
    half = shards / "half-written.parquet"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    other = table.set_column(table.schema.get_field_index("model"), "model", [["another-model"] * table.num_rows])
    pq.write_table(other, shards / "other-model.parquet")

    library = tmp_path / "library.sqlite3"
    code = main(["library", "import", "--library", str(library), "--model", str(small_model_file),
                 "--folder", str(folder), str(shards)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"birdid: {half}: This shard cannot be read, so it was skipped (" in err
    assert (f"birdid: {shards / 'other-model.parquet'}: This shard holds identifications by another-model, "
            "not small-hiera; it was not imported.") in err
    assert f"imported {total} photos" in out
    assert len(library_rows(library)["photos"]) == total


@pytest.mark.slow  # a local Ray cluster
def test_a_worker_killed_mid_run_is_retried_and_the_shards_are_complete(
    ray_cluster, tmp_path, folder, small_model_file, capsys
):
    for i in range(40):  # enough batches that the kill lands while work remains
        make_photo(folder / "more" / f"extra-{i:02d}.jpg", size=(640, 480), seed=100 + i)
    shards = tmp_path / "shards"
    killed: list[int] = []

    def kill_the_model_worker() -> None:
        """SIGKILL the process of the actor that runs the model (Ray titles it after the class)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    if b"Embedder" in cmdline.read_bytes():
                        pid = int(cmdline.parent.name)
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
                except OSError:  # the process ended while we looked
                    continue
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_model_worker)
    killer.start()
    code, out, err = index_on_ray(folder, shards, small_model_file, capsys)
    killer.join()

    assert killed, "the model worker was never seen alive"
    assert code == 0, err
    rows = [row for f in shards.glob("*.parquet") for row in pq.read_table(f, columns=["path"]).to_pylist()]
    paths = sorted(row["path"] for row in rows)
    expected = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    assert sorted(set(paths)) == expected  # every photo, the unreadable one with its error
    library = tmp_path / "library.sqlite3"
    assert main(["library", "import", "--library", str(library), "--model", str(small_model_file),
                 "--folder", str(folder), str(shards)]) == 0
    assert len(library_rows(library)["embeddings"]) == len(expected) - 1


def test_without_the_cluster_extra_the_commands_say_so(tmp_path, small_model_file, capsys, monkeypatch):
    import sys

    import birdid_app

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "birdid_app.cluster", raising=False)
    monkeypatch.delattr(birdid_app, "cluster", raising=False)  # imported by an earlier test
    code = main(["index", "--engine", "ray", "--shards", str(tmp_path / "s"), "--model", str(small_model_file),
                 str(tmp_path)])
    assert code == 2
    assert 'birdid: This needs the cluster extra: pip install "birdid[cluster]"' in capsys.readouterr().err


def test_the_window_and_the_default_commands_never_import_ray():
    import subprocess
    import sys

    code = ("import sys; import birdid_app.cli, birdid_app.gui.main_window, birdid_app.core.library; "
            "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.stdout.strip() == "[]"


def test_shard_files_are_found_in_folders_and_by_name(tmp_path):
    from birdid_app.core.library.shards import shard_files

    (tmp_path / "a").mkdir()
    for name in ("2.parquet", "1.parquet", "notes.txt"):
        (tmp_path / "a" / name).write_text("")
    shutil.copy(tmp_path / "a" / "1.parquet", tmp_path / "single.parquet")
    assert shard_files([tmp_path / "a", tmp_path / "single.parquet"]) == [
        tmp_path / "a" / "1.parquet", tmp_path / "a" / "2.parquet", tmp_path / "single.parquet"]


@pytest.mark.slow  # a local Ray cluster
def test_a_model_worker_must_leave_the_decoders_a_cpu(ray_cluster, tmp_path, folder, small_model_file, capsys):
    code, out, err = index_on_ray(folder, tmp_path / "shards", small_model_file, capsys, "--cpus-per-worker", "2")
    assert code == 2
    assert ("birdid: Each model worker would take all 2 CPUs of the Ray cluster, leaving none to decode photos: "
            "give --cpus-per-worker less than 2.") in err
    assert not (tmp_path / "shards").exists()
