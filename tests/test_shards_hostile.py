"""Shards made elsewhere are untrusted (issue 23, items 1, 2, 4 and 7): built here row by row with
pyarrow, as a hostile cluster (or a hand-edited file) would write them, and imported into real
library files. No model runs: the rows carry their own embeddings."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from birdid_app.cli import main
from birdid_app.core.library import Library
from birdid_app.core.library.keywords import write_library_keywords
from birdid_app.core.library.shards import SHARD_SCHEMA, import_shards
from conftest import SPECIES, make_photo

MODEL = "small-hiera"
DIM = 256  # the small model's embedding width (conftest.SMALL_CONFIG: 32 * 8)


def row(where, *, seed: int = 0, **changes) -> dict:
    """A shard row for the photo `where` as the cluster's Embedder writes it, with `changes`."""
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    base = {
        "path": str(where), "size": 100, "mtime_ns": 1_000, "fingerprint": f"fp-{seed}", "taken_at": None,
        "latitude": None, "longitude": None, "error": None, "keywords": [], "folder": os.path.dirname(str(where)),
        "companion": None, "model": MODEL, "identified": True, "embedding": vector.tolist(),
        "species": SPECIES[:5], "probabilities": [0.5, 0.2, 0.1, 0.1, 0.05],
    }
    return {**base, **changes}


def write_shard(path, rows, schema=SHARD_SCHEMA):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def imported(library_path, shards, **options):
    with Library(library_path, model=MODEL) as library:
        summary = import_shards(library, shards, MODEL, species_names=SPECIES, embedding_dim=DIM, **options)
        paths = sorted(str(p.path) for p in library.all_photos())
        folders = library.folders()
    return summary, paths, folders


@pytest.fixture
def archive(tmp_path):
    """A folder the library already has."""
    folder = tmp_path / "archive"
    folder.mkdir()
    library = tmp_path / "library.sqlite3"
    with Library(library, model=MODEL) as opened:
        opened.add_folder(folder)
    return folder, library


def test_rows_outside_the_librarys_folders_are_refused_and_no_folder_is_added(tmp_path, archive):
    folder, library = archive
    shard = write_shard(tmp_path / "hostile.parquet", [
        row(folder / "kept.jpg", seed=1),
        row(f"{folder}/../escaped.jpg", seed=2),  # `..` leaves the folder
        row("/etc/passwd-bird.jpg", seed=3, folder="/"),  # a folder of "/" in the row adds nothing
        row(tmp_path / "elsewhere" / "x.jpg", seed=4, folder=str(tmp_path / "elsewhere")),
        row(folder, seed=5),  # the folder itself is no photo (its sidecar would be outside)
        row("relative/bird.jpg", seed=6),
        row("", seed=7),
        row(f"{folder}/nul\0.jpg", seed=8),
        row(folder / "companion-out.dng", seed=9, companion="/etc/x.jpg"),
    ])
    summary, paths, folders = imported(library, [shard])
    assert paths == [str(folder / "kept.jpg")]
    assert folders == [folder.resolve()]
    assert summary.refused_rows[:3] == [
        f"{shard}, row 6: Its path 'relative/bird.jpg' is not a full path; each row must name its photo from the "
        "top of its disk.",
        f"{shard}, row 7: Its path is empty; each row must name its photo by its full path.",
        f"{shard}, row 8: Its path '{folder}/nul\\x00.jpg' holds a NUL character, which no file name can.",
    ]
    assert [(number, path) for _, number, path in summary.outside] == [
        (2, str(tmp_path / "escaped.jpg")), (3, "/etc/passwd-bird.jpg"), (4, str(tmp_path / "elsewhere" / "x.jpg")),
        (5, str(folder)), (9, str(folder / "companion-out.dng"))]
    said = summary.sentences()
    assert said[-1] == (f"{shard}, row 2: The photo {tmp_path / 'escaped.jpg'} is not in a folder of the library "
                        "(nor are 4 more rows' photos); name its folder with --folder FOLDER to import it, or add "
                        "it with `birdid index FOLDER` first.")


def test_folders_named_with_the_import_bring_their_rows_and_only_those(tmp_path):
    wanted, other = tmp_path / "wanted", tmp_path / "other"
    shard = write_shard(tmp_path / "s.parquet", [row(wanted / "a.jpg", seed=1), row(other / "b.jpg", seed=2)])
    summary, paths, folders = imported(tmp_path / "library.sqlite3", [shard], folders=[wanted])
    assert paths == [str(wanted / "a.jpg")]
    assert folders == [wanted.resolve()] and summary.folders_added == [wanted]
    assert [path for _, _, path in summary.outside] == [str(other / "b.jpg")]


def test_many_refused_rows_are_counted_and_the_first_named(tmp_path, archive):
    folder, library = archive
    shard = write_shard(tmp_path / "s.parquet", [row(f"/nowhere/{i}.jpg", seed=i) for i in range(500)]
                        + [row(folder / f"{i}.jpg", seed=i, embedding=[math.nan] * DIM) for i in range(300)])
    summary, paths, _ = imported(library, [shard])
    assert paths == []
    said = summary.sentences()
    assert said == [
        f"{shard}, row 501: Its embedding holds values that are not finite numbers (NaN, infinity or missing).",
        "300 shard rows were refused in all, for reasons like the one above; the other rows were imported.",
        f"{shard}, row 1: The photo /nowhere/0.jpg is not in a folder of the library (nor are 499 more rows' "
        "photos); name its folder with --folder FOLDER to import it, or add it with `birdid index FOLDER` first.",
    ]


def test_one_photo_spelled_two_ways_is_one_photo_and_the_newest_row_wins(tmp_path, archive):
    folder, library = archive
    first = write_shard(tmp_path / "1.parquet", [row(f"{folder}/./d.jpg", seed=1, mtime_ns=2_000),
                                                 row(f"{folder}/e.jpg", seed=3, mtime_ns=5)])
    second = write_shard(tmp_path / "2.parquet", [row(f"{folder}//d.jpg", seed=2, mtime_ns=1_000),
                                                  row(f"{folder}/./e.jpg", seed=4, mtime_ns=5)])
    summary, paths, _ = imported(library, [first, second])
    assert paths == [str(folder / "d.jpg"), str(folder / "e.jpg")]
    with Library(library, model=MODEL) as opened:
        assert opened.photo_by_path(folder / "d.jpg").id is not None
        newest = opened.db.execute("SELECT mtime_ns, fingerprint FROM photos ORDER BY path").fetchall()
    assert newest == [(2_000, "fp-1"), (5, "fp-4")]  # the newer time; on a tie, the later shard


BAD_ROWS = {
    "a short embedding": ({"embedding": [0.5] * (DIM - 1)}, "Its embedding has 255 values, not the model's 256"),
    "NaN in the embedding": ({"embedding": [math.nan] + [0.5] * (DIM - 1)}, "Its embedding holds values that are not finite numbers"),
    "infinity in the embedding": ({"embedding": [math.inf] + [0.5] * (DIM - 1)}, "Its embedding holds values that are not finite numbers"),
    "a null in the embedding": ({"embedding": [None] + [0.5] * (DIM - 1)}, "Its embedding holds values that are not finite numbers"),
    "an all-zero embedding": ({"embedding": [0.0] * DIM}, "Its embedding is all zeros"),
    "a NaN probability": ({"probabilities": [math.nan, 0.2, 0.1, 0.1, 0.05]}, "Its probabilities are not"),
    "probabilities over 1": ({"probabilities": [0.9, 0.9, 0.1, 0.1, 0.05]}, "Its probabilities are not"),
    "fewer probabilities": ({"probabilities": [0.5]}, "Its species and probabilities are not"),
    "another model's species": ({"species": ["=HYPERLINK(\"http://x\")", *SPECIES[1:5]]},
                                "Its species '=HYPERLINK(\"http://x\")' is not one of the model's"),
    "a null path": ({"path": None}, "Its path is missing"),
    "a null time": ({"mtime_ns": None}, "Its mtime_ns is None, not a whole number"),
    "a negative size": ({"size": -5}, "Its size is -5, not a whole number"),
    "a latitude off the Earth": ({"latitude": 1e9}, "Its latitude 1000000000.0 is not a place on Earth"),
    "a NaN longitude": ({"longitude": math.nan}, "Its longitude nan is not a place on Earth"),
    "an embedding that says not identified": ({"identified": False}, "Its identified column does not say"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_a_row_that_would_break_search_is_refused_with_a_sentence_and_the_rest_imported(tmp_path, archive, case):
    folder, library = archive
    changes, why = BAD_ROWS[case]
    shard = write_shard(tmp_path / "s.parquet", [row(folder / "good.jpg", seed=1),
                                                 row(folder / "bad.jpg", seed=2, **changes),
                                                 row(folder / "good-2.jpg", seed=3)])
    summary, paths, _ = imported(library, [shard])
    assert paths == [str(folder / "good-2.jpg"), str(folder / "good.jpg")]
    assert len(summary.refused_rows) == 1 and summary.refused_rows[0].startswith(f"{shard}, row 2: {why}")
    with Library(library, model=MODEL) as opened:  # search, duplicates and groups all still work
        good = opened.photo_by_path(folder / "good.jpg").id
        assert [photo.path.name for photo, _ in opened.similar_to_photo(good, 5)] == ["good-2.jpg"]
        assert opened.duplicate_groups(0.99) == []


def test_a_shard_without_a_column_or_with_a_column_of_the_wrong_type_is_refused_whole(tmp_path, archive):
    folder, library = archive
    no_embedding = pa.schema([f for f in SHARD_SCHEMA if f.name != "embedding"])
    missing = write_shard(tmp_path / "missing.parquet",
                          [{k: v for k, v in row(folder / "a.jpg").items() if k != "embedding"}], no_embedding)
    text_size = pa.schema([pa.field("size", pa.string()) if f.name == "size" else f for f in SHARD_SCHEMA])
    wrong = write_shard(tmp_path / "wrong.parquet", [row(folder / "b.jpg", size="100")], text_size)
    good = write_shard(tmp_path / "good.parquet", [row(folder / "c.jpg", seed=3)])
    summary, paths, _ = imported(library, [missing, wrong, good])
    assert paths == [str(folder / "c.jpg")]
    assert summary.refused == [
        f"{missing}: This shard has no embedding column, so it was not imported; write it again with "
        "`birdid index --engine ray`.",
        f"{wrong}: This shard's size column holds string, not int64, so it was not imported; write it again with "
        "`birdid index --engine ray`.",
    ]


def test_the_import_command_takes_folders_and_says_what_it_refused_in_a_few_lines(tmp_path, small_model_file,
                                                                                   capsys):
    photos = tmp_path / "photos"
    shard = write_shard(tmp_path / "s.parquet", [row(photos / f"{i}.jpg", seed=i) for i in range(50)]
                        + [row("/etc/x.jpg", seed=99)])
    library = tmp_path / "library.sqlite3"
    common = ["library", "import", "--library", str(library), "--model", str(small_model_file)]
    assert main([*common, str(shard)]) == 1
    out, err = capsys.readouterr()
    assert "imported 0 photos" in out
    assert err.count("\n") == 1 and "(nor are 50 more rows' photos)" in err
    assert main([*common, "--folder", str(photos), str(shard)]) == 1
    out, err = capsys.readouterr()
    assert "imported 50 photos" in out
    assert err == (f"birdid: {shard}, row 51: The photo /etc/x.jpg is not in a folder of the library; name its "
                   "folder with --folder FOLDER to import it, or add it with `birdid index FOLDER` first.\n")
    with Library(library) as opened:
        assert opened.folders() == [photos.resolve()]


def _library_with(tmp_path, paths: list[str], label: str = "Great Tit"):
    """A library whose photos are `paths`, written straight into it as a shard import of an older
    birdid (or a hand-edited file) could have left them, each labelled `label`."""
    folder = tmp_path / "archive"
    folder.mkdir(exist_ok=True)
    library = tmp_path / "library.sqlite3"
    with Library(library, model=MODEL) as opened:
        opened.add_folder(folder)
        with opened.db:
            for path in paths:
                opened.db.execute("INSERT INTO photos (path, size, mtime_ns) VALUES (?, 1, 1)", (path,))
        opened.set_labels([pid for (pid,) in opened.db.execute("SELECT id FROM photos")], label)
    return folder, library


@pytest.mark.parametrize("embed", [False, True])
def test_keywords_are_never_written_outside_the_librarys_folders(tmp_path, embed):
    elsewhere = tmp_path / "elsewhere"
    outside = make_photo(elsewhere / "victim.jpg", size=(160, 120))
    before = outside.read_bytes()
    folder = tmp_path / "archive"
    inside = make_photo(folder / "mine.jpg", size=(160, 120), seed=1)
    (folder / "link.jpg").symlink_to(outside)  # inside by name, outside once followed
    _, library = _library_with(tmp_path, [str(inside), f"{folder}/../elsewhere/victim.jpg", str(outside),
                                          str(folder / "link.jpg"), "", "relative.jpg", f"{folder}/a\0b.jpg"])
    errors: list[str] = []
    with Library(library, model=MODEL) as opened:
        summary = write_library_keywords(opened, min_probability=0.5, confirmed_only=False, style="lightroom",
                                         root="Birds", embed=embed, on_error=errors.append)
    assert summary.written == 1 and summary.failed == 6
    assert outside.read_bytes() == before
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.jpg"]  # no sidecar beside it
    assert not (tmp_path / "relative.xmp").exists()
    assert (folder / "mine.xmp").exists() != embed
    assert f"{outside}: This photo is not inside a folder of the library, so no keywords were written for it; " \
           "add its folder to the library to write it." in errors
    assert ("A photo in the library has the path '.', which is not a full path, so no keywords were written for "
            "it; index its folder again to replace it.") in errors
    assert all(error[0].isupper() or error[0] == "/" for error in errors)


def test_csv_exports_neutralise_formulas_but_keep_birdids_own_numbers(tmp_path, archive, capsys):
    folder, library = archive
    names = ["=HYPERLINK(\"http://evil\")", "+SUM(1)", "-2+3", "@cmd", "\tx"]
    shard = write_shard(tmp_path / "s.parquet", [
        row(folder / "a.jpg", seed=1, species=names, taken_at="=1+2", latitude=40.4, longitude=-3.7),
        row(folder / "b.jpg", seed=2, error="\r=cmd", identified=False, embedding=None, species=None,
            probabilities=None),
    ])
    with Library(library, model=MODEL) as opened:  # no species names: a caller that has none to check
        assert import_shards(opened, [shard], MODEL).imported == 2
        opened.set_label(opened.photo_by_path(folder / "a.jpg").id, "@label")
        opened.export_csv(tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["species_1"] == "'=HYPERLINK(\"http://evil\")"
    assert [rows[0][f"species_{n}"] for n in range(2, 6)] == ["'+SUM(1)", "'-2+3", "'@cmd", "'\tx"]
    assert rows[0]["taken_at"] == "'=1+2" and rows[0]["label"] == "'@label" and rows[1]["error"] == "'\r=cmd"
    assert rows[0]["longitude"] == "-3.700000" and rows[0]["latitude"] == "40.400000"  # data, not formulas


def test_the_ebird_and_life_list_files_neutralise_a_place_name(tmp_path, archive, capsys):
    from birdid_app.core.library.sightings import write_ebird_csv

    folder, library = archive
    shard = write_shard(tmp_path / "s.parquet", [row(folder / "heron.jpg", seed=1, taken_at="2024-05-01T07:12:03",
                                                     latitude=40.4, longitude=-3.7)])
    with Library(library, model=MODEL) as opened:
        import_shards(opened, [shard], MODEL, species_names=SPECIES)
        opened.set_label(opened.photo_by_path(folder / "heron.jpg").id, "Grey Heron")
        opened.set_assigned_place(folder / "heron.jpg", 40.4, -3.7, name="=HYPERLINK(\"http://evil\")")
        write_ebird_csv(opened, tmp_path / "ebird.csv")
    with (tmp_path / "ebird.csv").open(newline="", encoding="utf-8") as handle:
        (ebird,) = list(csv.reader(handle))
    assert ebird[5] == "'=HYPERLINK(\"http://evil\")" and ebird[6:8] == ["40.400000", "-3.700000"]

    assert main(["lifelist", "--csv", str(tmp_path / "life.csv"), "--library", str(library)]) == 0
    with (tmp_path / "life.csv").open(newline="", encoding="utf-8") as handle:
        (life,) = list(csv.DictReader(handle))
    assert life["first_place"] == "'=HYPERLINK(\"http://evil\")" and float(life["first_longitude"]) == -3.7
