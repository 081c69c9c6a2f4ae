"""Sightings: confirmed photos with their capture date and GPS (real EXIF in real JPEGs, indexed
by the real indexer into a real library file) as a life list, a year list, a list per place, and
an eBird Record Format file; and the `birdid lifelist` and `birdid export --ebird` commands."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from birdid_app.cli import main
from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES, Library
from birdid_app.core.library.sightings import EBIRD_COLUMNS, life_list, places_list, write_ebird_csv
from conftest import make_photo

AMSTERDAM = (52.3731, 4.8922)
NEAR_AMSTERDAM = (52.3740, 4.8930)  # ~100 m away: the same checklist on the same day
DEN_BURG = (53.0546, 4.7977)  # on Texel, ~75 km north: a checklist of its own
NO_FIX = (0.0, 0.0)  # what a camera without a GPS fix writes
UNMATCHED = "Northern Wandering Tit"  # a name eBird's list does not have
AMSTERDAM_NAME = "Amsterdam, North Holland, Netherlands"
DEN_BURG_NAME = "Den Burg, North Holland, Netherlands"

# name: (EXIF DateTimeOriginal or None, GPS position or None, the person's label or None)
PHOTOS = {
    "heron-2023.jpg": ("2023:04:02 08:15:00", AMSTERDAM, "Grey Heron"),
    "heron-may.jpg": ("2024:05:01 07:12:03", NEAR_AMSTERDAM, "Grey Heron"),
    "heron-may-2.jpg": ("2024:05:01 07:13:10", NEAR_AMSTERDAM, "Grey Heron"),
    "robin-may.jpg": ("2024:05:01 07:30:00", AMSTERDAM, "European Robin"),
    "heron-texel.jpg": ("2024:05:01 16:00:00", DEN_BURG, "Grey Heron"),
    "robin-no-fix.jpg": ("2024:06:10 09:00:00", NO_FIX, "European Robin"),
    "kingfisher-undated.jpg": (None, AMSTERDAM, "Common Kingfisher"),
    "wandering-tit.jpg": ("2024:05:02 11:00:00", AMSTERDAM, UNMATCHED),
    "rock.jpg": ("2024:05:01 08:00:00", AMSTERDAM, NOT_A_BIRD),
    "blur.jpg": ("2024:05:01 08:01:00", AMSTERDAM, UNKNOWN_SPECIES),
    "unlabelled.jpg": ("2024:05:01 09:00:00", AMSTERDAM, None),
}


def _degrees_minutes_seconds(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(round(seconds * 10_000), 10_000)


def exif_bytes(taken: str | None, position: tuple[float, float] | None) -> bytes:
    """EXIF as a camera writes it: DateTimeOriginal in the Exif IFD, degrees-minutes-seconds
    rationals and hemisphere letters in the GPS IFD."""
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if position is not None:
        latitude, longitude = position
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N" if latitude >= 0 else "S", _degrees_minutes_seconds(abs(latitude))
        gps[3], gps[4] = "E" if longitude >= 0 else "W", _degrees_minutes_seconds(abs(longitude))
    return exif.tobytes()


@pytest.fixture(scope="module")
def birding(tmp_path_factory, small_model_file):
    """A library of PHOTOS, indexed with the real indexer and labelled through Library.set_label;
    read, never changed, by the tests (each keeps its own output files)."""
    root = tmp_path_factory.mktemp("sightings")
    folder = root / "photos"
    for seed, (name, (taken, position, _)) in enumerate(PHOTOS.items()):
        make_photo(folder / name, size=(160, 120), seed=seed, exif=exif_bytes(taken, position))
    library = root / "library.sqlite3"
    common = ["--library", str(library), "--model", str(small_model_file)]
    with pytest.MonkeyPatch.context() as patch:  # the autouse folders are per test; this is per module
        patch.setenv("BIRDID_DATA_DIR", str(root / "data"))
        patch.setenv("BIRDID_CONFIG_DIR", str(root / "config"))
        # fp32: "auto" would convert the model to int8 first, most of this fixture's time.
        assert main(["index", str(folder), "--device", "cpu", "--precision", "fp32", *common]) == 0
    with Library(library) as opened:
        for name, (_, _, label) in PHOTOS.items():
            if label is not None:
                opened.set_label(opened.photo_by_path(folder / name).id, label)
    return folder, library, common


def test_the_photos_carry_their_exif_into_the_library(birding):
    folder, library, _ = birding
    with Library(library) as opened:
        photo = opened.photo_by_path(folder / "heron-may.jpg")
        assert photo.taken_at == "2024-05-01T07:12:03"
        assert photo.latitude == pytest.approx(NEAR_AMSTERDAM[0], abs=1e-7)
        assert photo.longitude == pytest.approx(NEAR_AMSTERDAM[1], abs=1e-7)
        labelled = opened.labelled_photos()
    assert sorted(p.path.name for p in labelled) == sorted(n for n, (_, _, label) in PHOTOS.items() if label)
    assert all(p.species == () and p.model is None for p in labelled)


def test_the_life_list_has_each_species_once_first_seen_first_with_its_counts(birding):
    _, library, _ = birding
    with Library(library) as opened:
        statements = []
        opened.db.set_trace_callback(statements.append)
        listed = life_list(opened)
        opened.db.set_trace_callback(None)
    # The labelled photos and the places set for folders: not a query per photo.
    assert sum(s.lstrip().upper().startswith("SELECT") for s in statements) == 2

    assert [e.species for e in listed.entries] == ["Grey Heron", "European Robin", UNMATCHED]
    heron, robin, tit = listed.entries
    assert (heron.ebird_name, heron.scientific_name) == ("Gray Heron", "Ardea cinerea")
    assert heron.first_seen == "2023-04-02T08:15:00" and heron.last_seen == "2024-05-01T16:00:00"
    assert heron.first_place == AMSTERDAM_NAME
    assert (heron.first_latitude, heron.first_longitude) == pytest.approx(AMSTERDAM, abs=1e-7)
    assert (heron.photos, heron.days) == (4, 2)
    assert (robin.first_seen, robin.first_place, robin.photos, robin.days) == (
        "2024-05-01T07:30:00", AMSTERDAM_NAME, 2, 2)
    assert robin.last.where is None  # the 0,0 photo: a sighting, place unknown
    assert (tit.ebird_name, tit.scientific_name) == (None, None)
    assert (listed.species, listed.photos, listed.days, listed.unplaced, listed.undated) == (3, 7, 4, 1, 1)
    assert listed.notes == [
        "1 confirmed photo has no capture date and is not in the list.",
        "1 sighting has no known place (no GPS position, or one that cannot be right, such as 0,0).",
        f"eBird's list has no name for {UNMATCHED}.",
    ]
    # Not a bird, unknown species, no label, no date: none of them is a sighting.
    assert "Common Kingfisher" not in [e.species for e in listed.entries]


def test_the_year_list_and_the_place_filter(birding):
    _, library, _ = birding
    with Library(library) as opened:
        year_2023 = life_list(opened, year=2023)
        year_2024 = life_list(opened, year=2024)
        texel = life_list(opened, place="den BURG")
        amsterdam_2024 = life_list(opened, year=2024, place="amsterdam")
    assert [(e.species, e.photos) for e in year_2023.entries] == [("Grey Heron", 1)]
    heron = year_2024.entries[0]
    assert (heron.species, heron.first_seen, heron.photos, heron.days) == ("Grey Heron", "2024-05-01T07:12:03", 3, 1)
    assert [e.species for e in year_2024.entries] == ["Grey Heron", "European Robin", UNMATCHED]
    assert year_2024.undated == 1  # an undated photo may be of any year: still said
    assert [(e.species, e.first_seen, e.first_place) for e in texel.entries] == [
        ("Grey Heron", "2024-05-01T16:00:00", DEN_BURG_NAME)]
    assert [(e.species, e.photos) for e in amsterdam_2024.entries] == [
        ("Grey Heron", 2), ("European Robin", 1), (UNMATCHED, 1)]
    assert "1 sighting with no known place could not be matched to 'amsterdam' and is not in the list." in (
        amsterdam_2024.notes)


def test_the_list_per_place(birding):
    _, library, _ = birding
    with Library(library) as opened:
        listed = places_list(opened)
    shown = {entry.place: [(kind.species, kind.photos, kind.days) for kind in entry.species] for entry in listed.places}
    assert list(shown) == [AMSTERDAM_NAME, DEN_BURG_NAME, None]  # by name, the unknown place last
    assert shown[AMSTERDAM_NAME] == [("Grey Heron", 3, 2), ("European Robin", 1, 1), (UNMATCHED, 1, 1)]
    assert shown[DEN_BURG_NAME] == [("Grey Heron", 1, 1)]
    assert shown[None] == [("European Robin", 1, 1)]


def read_rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_the_ebird_file_is_the_record_format_one_row_per_species_per_checklist(birding, tmp_path):
    _, library, _ = birding
    out = tmp_path / "ebird.csv"
    with Library(library) as opened:
        written = write_ebird_csv(opened, out)
    rows = read_rows(out)
    assert len(EBIRD_COLUMNS) == 19 and all(len(row) == 19 for row in rows)
    assert rows[0][0] != "Common Name"  # no header: eBird reads every line as a record
    tail = ["", "NL", "incidental", "1", "", "N", "", "", "Exported from birdid"]
    assert rows == [
        ["Gray Heron", "Ardea", "cinerea", "X", "Photographed: 1 photo (heron-2023.jpg), identified with birdid",
         AMSTERDAM_NAME, "52.373100", "4.892200", "04/02/2023", "08:15", *tail],
        # One checklist: the two herons and the robin of that morning, within a kilometre; its place
        # and start time are its first photo's.
        ["Gray Heron", "Ardea", "cinerea", "X",
         "Photographed: 2 photos (heron-may.jpg, heron-may-2.jpg), identified with birdid",
         AMSTERDAM_NAME, "52.374000", "4.893000", "05/01/2024", "07:12", *tail],
        ["European Robin", "Erithacus", "rubecula", "X", "Photographed: 1 photo (robin-may.jpg), identified with birdid",
         AMSTERDAM_NAME, "52.374000", "4.893000", "05/01/2024", "07:12", *tail],
        ["Gray Heron", "Ardea", "cinerea", "X", "Photographed: 1 photo (heron-texel.jpg), identified with birdid",
         DEN_BURG_NAME, "53.054600", "4.797700", "05/01/2024", "16:00", *tail],
    ]
    assert (written.rows, written.species, written.checklists, written.photos) == (4, 2, 3, 5)
    assert (written.no_place, written.no_ebird_name, written.no_date) == (1, {UNMATCHED: 1}, 1)
    assert written.sentence() == (
        f"{out}: 4 sightings of 2 species on 3 checklists; 1 confirmed photo without a place left out "
        f"(eBird needs a location); {UNMATCHED} (1 photo) left out: eBird's list has no such species; "
        "1 confirmed photo without a capture date left out"
    )
    assert out.read_bytes().count(b"\r\n") == 4  # csv's own line ends, nothing added


def test_the_ebird_file_of_one_year(birding, tmp_path):
    _, library, _ = birding
    out = tmp_path / "2023.csv"
    with Library(library) as opened:
        written = write_ebird_csv(opened, out, year=2023)
    assert [row[8] for row in read_rows(out)] == ["04/02/2023"]
    assert written.sentence() == (
        f"{out}: 1 sighting of 1 species on 1 checklist in 2023; 1 confirmed photo without a capture date left out")


def test_lifelist_prints_the_table_totals_and_notes(birding, capsys):
    _, _, common = birding
    assert main(["lifelist", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Species", "First", "seen", "Where", "Photos"]
    assert lines[1].split("  ")[0] == "Grey Heron" and "2023-04-02" in lines[1] and AMSTERDAM_NAME in lines[1]
    assert lines[1].rstrip().endswith(" 4")
    assert lines[2].startswith("European Robin") and lines[3].startswith(UNMATCHED)
    assert lines[4:] == [
        "3 species, 7 photos on 4 days.",
        "1 confirmed photo has no capture date and is not in the list.",
        "1 sighting has no known place (no GPS position, or one that cannot be right, such as 0,0).",
        f"eBird's list has no name for {UNMATCHED}.",
    ]

    assert main(["lifelist", "--year", "2023", *common]) == 0
    assert "1 species, 1 photo on 1 day in 2023." in capsys.readouterr().out
    assert main(["lifelist", "--year", "1999", *common]) == 0
    assert capsys.readouterr().out.startswith("No sightings in 1999: label photos with a species")


def test_lifelist_json_by_place_and_csv(birding, tmp_path, capsys):
    _, _, common = birding
    assert main(["lifelist", "--year", "2024", "--place", "burg", "--json", *common]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [{
        "species": "Grey Heron", "ebird_name": "Gray Heron", "scientific_name": "Ardea cinerea",
        "first_seen": "2024-05-01T16:00:00", "first_place": DEN_BURG_NAME,
        "first_latitude": pytest.approx(DEN_BURG[0]), "first_longitude": pytest.approx(DEN_BURG[1]),
        "photos": 1, "days": 1, "last_seen": "2024-05-01T16:00:00",
    }]
    assert "birdid: 1 confirmed photo has no capture date and is not in the list." in captured.err

    assert main(["lifelist", "--by-place", "--json", *common]) == 0
    places = json.loads(capsys.readouterr().out)
    assert [p["place"] for p in places] == [AMSTERDAM_NAME, DEN_BURG_NAME, None]
    assert places[1]["species"] == [{"species": "Grey Heron", "photos": 1, "days": 1,
                                     "first_seen": "2024-05-01T16:00:00"}]
    assert main(["lifelist", "--by-place", *common]) == 0
    out = capsys.readouterr().out
    assert f"{DEN_BURG_NAME}: 1 species\n  {'Grey Heron':{len(UNMATCHED)}}  2024-05-01  1 photo\n" in out
    assert f"place unknown: 1 species\n  {'European Robin':{len(UNMATCHED)}}  2024-06-10  1 photo\n" in out

    listed = tmp_path / "life.csv"
    assert main(["lifelist", "--csv", str(listed), *common]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{listed}: 3 species from 7 photos\n"
    with listed.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["species"] for r in rows] == ["Grey Heron", "European Robin", UNMATCHED]
    assert rows[0]["ebird_name"] == "Gray Heron" and rows[0]["first_seen"] == "2023-04-02T08:15:00"
    assert rows[0]["photos"] == "4" and rows[2]["ebird_name"] == "" and rows[1]["last_seen"] == "2024-06-10T09:00:00"
    assert float(rows[0]["first_latitude"]) == pytest.approx(AMSTERDAM[0])


def test_export_ebird_from_the_command_line(birding, tmp_path, capsys):
    _, _, common = birding
    out = tmp_path / "ebird.csv"
    assert main(["export", "--ebird", str(out), *common]) == 0
    assert capsys.readouterr().out == (
        f"{out}: 4 sightings of 2 species on 3 checklists; 1 confirmed photo without a place left out "
        f"(eBird needs a location); {UNMATCHED} (1 photo) left out: eBird's list has no such species; "
        "1 confirmed photo without a capture date left out\n"
    )
    assert len(read_rows(out)) == 4
    assert main(["export", "--ebird", str(out), "--year", "2023", *common]) == 0
    assert capsys.readouterr().out.startswith(f"{out}: 1 sighting of 1 species on 1 checklist in 2023;")

    identifications = tmp_path / "all.csv"  # the export of identifications is unchanged
    assert main(["export", str(identifications), *common]) == 0
    assert capsys.readouterr().out.strip() == f"{identifications}: {len(PHOTOS)} photos"
    assert read_rows(identifications)[0][0] == "path"


@pytest.mark.parametrize("arguments", [[], ["a.csv", "--ebird", "b.csv"]])
def test_export_needs_exactly_one_file(birding, arguments, tmp_path, capsys, monkeypatch):
    _, _, common = birding
    monkeypatch.chdir(tmp_path)
    assert main(["export", *arguments, *common]) == 2
    assert capsys.readouterr().err == (
        "birdid: Name one file: `birdid export FILE.csv` for the identifications, or "
        "`birdid export --ebird FILE.csv` for your sightings in eBird's format.\n")
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_and_a_missing_library(tmp_path, capsys):
    assert main(["export", str(tmp_path / "a.csv"), "--year", "2024"]) == 2
    assert "--year goes with --ebird" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # argparse's own usage errors exit from inside it
        main(["lifelist", "--year", "24"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "birdid: Argument --year: expected a year as YYYY, not '24'\n"
    missing = tmp_path / "none.sqlite3"
    for command in (["lifelist"], ["export", "--ebird", str(tmp_path / "e.csv")]):
        assert main([*command, "--library", str(missing)]) == 2
        assert capsys.readouterr().err.startswith(f"birdid: There is no library at {missing} yet")
    assert not missing.exists() and not (tmp_path / "e.csv").exists()


def test_a_place_set_for_a_photo_comes_before_its_gps(birding, tmp_path):
    import shutil

    folder, library, _ = birding
    copy = tmp_path / "library.sqlite3"
    shutil.copy(library, copy)
    with Library(copy) as opened:
        opened.set_assigned_place(folder / "robin-no-fix.jpg", *DEN_BURG, "My garden on Texel")
        listed = life_list(opened)
    assert listed.unplaced == 0
    robin = next(e for e in listed.entries if e.species == "European Robin")
    assert robin.last.where == "My garden on Texel" and robin.last.position == pytest.approx(DEN_BURG)
