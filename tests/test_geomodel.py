"""The range model and where-and-when ranking: real ONNX files built with onnx's helper (known
values per label), a real checkpoint, real photos with EXIF GPS (and a real DNG), the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdid_app.cli import main
from birdid_app.core.model.species_names import LabelsError, published_labels
from birdid_app.core.places import geomodel as geomodel_module
from birdid_app.core.places.geomodel import GeomodelError, GeomodelStore, load_geomodel_files
from birdid_app.core.places.place import birdnet_week
from birdid_app.core.places.range_prior import FLOOR, UNUSUAL_BELOW, combine, prior_weights
from conftest import LOOKALIKES
from geomodel_files import GeomodelSpec, default_spec, photo_taken_at, write_geomodel


@pytest.fixture(scope="module")
def geomodel_files(tmp_path_factory):
    return write_geomodel(tmp_path_factory.mktemp("geomodel"), input_name="latlonweek", output_name="probs")


@pytest.fixture
def installed(geomodel_files):
    model, labels = geomodel_files
    assert main(["geomodel", "import", str(model), str(labels)]) == 0
    return default_spec()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("where")
    return {
        "andalusia": photo_taken_at(folder / "andalusia.jpg", latitude=37.0, longitude=-4.0, taken="2024:06:14 08:30:00"),
        "holland": photo_taken_at(folder / "holland.jpg", latitude=52.1, longitude=5.1, taken="2024:01:03 10:00:00"),
        "zero": photo_taken_at(folder / "zero.jpg", latitude=0.0, longitude=0.0, taken="2024:06:14 08:30:00"),
        "bare": photo_taken_at(folder / "bare.jpg", latitude=None, longitude=None, taken=None),
    }


def identify_json(capsys, *args) -> list[dict]:
    code = main(["identify", "--precision", "fp32", *args, "--json"])  # fp32: no precision trial in a fresh data folder
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


# --- the file -----------------------------------------------------------------------------------


def test_a_range_model_gives_its_known_values_whatever_its_tensors_are_called(tmp_path):
    spec = default_spec()
    model_path, labels_path = write_geomodel(tmp_path, spec, input_name="x", output_name="y", extra_output=True)
    geomodel = load_geomodel_files(model_path, labels_path)
    for latitude, longitude, week in [(52.0, 5.0, 20), (37.0, -4.0, 2), (-33.9, 18.4, 0)]:
        np.testing.assert_allclose(geomodel.occurrence(latitude, longitude, week),
                                   spec.values(latitude, longitude, week), atol=1e-6)
    many = geomodel.occurrences(np.array([[52.0, 5.0, 20], [37.0, -4.0, 2]], dtype=np.float32))
    assert many.shape == (2, len(spec.labels))


def test_a_model_and_labels_of_different_sizes_is_one_sentence(tmp_path):
    model_path, labels_path = write_geomodel(tmp_path, output_width=7)
    with pytest.raises(GeomodelError) as raised:
        load_geomodel_files(model_path, labels_path)
    message = str(raised.value)
    assert message.startswith(f"{model_path}: ") and "7 values per place" in message
    assert f"{len(default_spec().labels)} names" in message and message.count(". ") == 0


def test_a_truncated_onnx_file_is_one_sentence(tmp_path):
    model_path, labels_path = write_geomodel(tmp_path)
    model_path.write_bytes(model_path.read_bytes()[:200])
    with pytest.raises(GeomodelError, match=r"geomodel.onnx: This is not a range model ONNX Runtime can run"):
        load_geomodel_files(model_path, labels_path)


def test_a_file_that_is_too_big_is_refused_before_it_is_read(tmp_path, monkeypatch):
    model_path, labels_path = write_geomodel(tmp_path)
    monkeypatch.setattr(geomodel_module, "GEOMODEL_MAX_BYTES", 100)
    with pytest.raises(GeomodelError, match="larger than a range model can be"):
        load_geomodel_files(model_path, labels_path)


def test_outputs_that_are_not_probabilities_are_refused(tmp_path):
    spec = default_spec()
    wild = GeomodelSpec(spec.labels, spec.base, spec.per_latitude, spec.per_week)
    model_path, labels_path = write_geomodel(tmp_path, wild)
    # Rewrite the clip's upper bound: values of 5 are no occurrence probabilities.
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == "hi":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.array(5.0, dtype=np.float32), "hi"))
        if tensor.name == "B":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.full(len(spec.labels), 3.0, np.float32), "B"))
    model_path.write_bytes(model.SerializeToString())
    with pytest.raises(GeomodelError, match="not probabilities"):
        load_geomodel_files(model_path, labels_path)


def test_import_status_and_remove_through_the_cli(installed, lookalike_model, capsys):
    assert main(["geomodel", "status", "--model", str(lookalike_model), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["installed"] and status["origin"] == "import" and status["species"] == len(installed.labels)
    assert (status["matched"], status["of"], status["unmatched"]) == (2, 3, ["Common Kingfisher"])
    assert "CC BY-SA 4.0" in status["attribution"]
    assert main(["geomodel", "status", "--model", str(lookalike_model)]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 species matched" in out and "Common Kingfisher" in out and "BirdNET Geomodel" in out
    assert main(["geomodel", "remove"]) == 0
    assert not GeomodelStore().installed()
    assert main(["geomodel", "status"]) == 0
    assert "No range model is installed" in capsys.readouterr().out


def test_a_bad_import_is_one_sentence_and_keeps_what_was_installed(installed, tmp_path, capsys):
    good = GeomodelStore().record()
    broken_labels = tmp_path / "labels.txt"
    broken_labels.write_text("blutit\tCyanistes caeruleus\n", encoding="utf-8")
    model_path, _ = write_geomodel(tmp_path / "other")
    capsys.readouterr()
    assert main(["geomodel", "import", str(model_path), str(broken_labels)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"birdid: {broken_labels}: ") and "Line 1 is not" in err and len(err.splitlines()) == 1
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(model_path.read_bytes()[:300])
    assert main(["geomodel", "import", str(truncated), str(model_path.with_name("geomodel-labels.txt"))]) == 1
    assert f"{truncated}: This is not a range model" in capsys.readouterr().err
    assert GeomodelStore().record() == good
    assert GeomodelStore().load().sha256 == good.model_sha256


def test_an_installed_model_changed_on_disk_is_refused(installed):
    record = GeomodelStore().record()
    data = bytearray(record.model_path.read_bytes())
    data[-1] ^= 0xFF
    record.model_path.write_bytes(bytes(data))
    with pytest.raises(GeomodelError, match="changed since it was installed"):
        GeomodelStore().load()


def test_download_is_verified_against_the_hash_the_hub_publishes(tmp_path, monkeypatch, capsys):
    from birdid_app.core.places.geomodel import PUBLISHED_GEOMODEL
    from hub_server import FakeHub

    labels = [tuple(label) for label in published_labels()]
    model_path, _ = write_geomodel(tmp_path / "published", default_spec(labels))
    server = FakeHub(PUBLISHED_GEOMODEL.repo_id, PUBLISHED_GEOMODEL.filename, model_path.read_bytes()).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        server.faults.wrong_bytes = True
        assert main(["geomodel", "download"]) == 1
        assert "SHA-256 differs" in capsys.readouterr().err and not GeomodelStore().installed()
        server.faults.wrong_bytes = False
        assert main(["geomodel", "download"]) == 0
        assert "verified and installed (12,012 species" in capsys.readouterr().out
        geomodel = GeomodelStore().load()
        assert geomodel.sha256 == server.sha256 and len(geomodel.labels) == 12_012
        assert [r.method for r in server.requests][-2:] == ["HEAD", "GET"]
    finally:
        server.stop()
    # Offline, the same file fetched elsewhere imports without a label list: the published one ships.
    assert main(["geomodel", "remove"]) == 0
    assert main(["geomodel", "import", str(model_path)]) == 0
    assert GeomodelStore().record().labels_path is None and len(GeomodelStore().load().labels) == 12_012
    # A range model of another width needs its own labels: one sentence.
    small_model, _ = write_geomodel(tmp_path / "small")
    capsys.readouterr()
    assert main(["geomodel", "import", str(small_model)]) == 1
    assert "but the label list has 12012 names" in capsys.readouterr().err


# --- the rule -----------------------------------------------------------------------------------


def test_the_rule_never_hides_a_species_and_leaves_unmatched_ones_alone():
    picture = np.array([0.5, 0.3, 0.2], dtype=np.float32)
    expected = np.array([0.0, 0.6, np.nan], dtype=np.float32)
    assert prior_weights(expected).tolist() == pytest.approx([FLOOR, 1.0, 1.0])
    combined = combine(picture, expected)
    assert combined.sum() == pytest.approx(1.0) and combined.min() > 0
    # Species with no prior and fully expected species keep their picture's proportion.
    assert combined[1] / combined[2] == pytest.approx(0.3 / 0.2)
    # A picture twenty times surer still puts the out-of-range bird first.
    assert np.argmax(combine(np.array([0.95, 0.04, 0.01], np.float32), expected)) == 0


# --- identify -----------------------------------------------------------------------------------


def test_identify_ranks_by_the_photos_own_place_and_date(installed, lookalike_model, photos, capsys):
    (andalusia, holland) = identify_json(capsys, "--model", str(lookalike_model), str(photos["andalusia"]),
                                         str(photos["holland"]))
    assert andalusia["where"] == {"latitude": pytest.approx(37.0, abs=1e-4), "longitude": pytest.approx(-4.0, abs=1e-4),
                                  "week": 22, "source": "photo", "date": "2024-06-14", "date_source": "photo"}
    # By the picture, Willow Tit; in southern Spain in June, the Marsh Tit that lives there.
    assert [s["name"] for s in andalusia["species_by_picture"]] == LOOKALIKES
    assert [s["name"] for s in andalusia["species"]][:2] == ["Marsh Tit", "Willow Tit"]
    by_name = {s["name"]: s for s in andalusia["species"]}
    assert by_name["Willow Tit"]["expected_here"] == pytest.approx(installed.value("Willow Tit", 37.0, -4.0, 22),
                                                                   abs=1e-3)
    assert by_name["Common Kingfisher"]["expected_here"] is None and by_name["Common Kingfisher"]["unusual_here"] is False
    assert sum(s["probability"] for s in andalusia["species"]) == pytest.approx(1.0, abs=1e-5)
    # In the Netherlands the Willow Tit is expected: the picture's order stands.
    assert holland["where"]["week"] == birdnet_week(__import__("datetime").date(2024, 1, 3)) == 1
    assert [s["name"] for s in holland["species"]] == LOOKALIKES


def test_at_and_on_come_before_the_photo_and_no_prior_ranks_by_the_picture(installed, lookalike_model, photos,
                                                                              capsys):
    (record,) = identify_json(capsys, "--model", str(lookalike_model), str(photos["andalusia"]),
                              "--at", "33.5,-5.0", "--on", "2024-12-20")
    assert record["where"]["source"] == "option" and record["where"]["week"] == 47
    willow = next(s for s in record["species"] if s["name"] == "Willow Tit")
    assert willow["unusual_here"] is True and willow["expected_here"] < UNUSUAL_BELOW
    assert any("GPS position is not used" in note for note in record["where_notes"])
    (plain,) = identify_json(capsys, "--model", str(lookalike_model), str(photos["andalusia"]), "--no-prior")
    assert plain["species"] == plain["species_by_picture"] and plain["where"]["source"] == "photo"
    assert all(s["expected_here"] is None for s in plain["species"])


def test_no_place_zero_gps_and_the_home_place(installed, lookalike_model, photos, capsys):
    from birdid_app.core.settings import Settings, save_settings

    bare, zero = identify_json(capsys, "--model", str(lookalike_model), str(photos["bare"]), str(photos["zero"]))
    assert bare["where"] is None and zero["where"] is None
    assert bare["species"] == bare["species_by_picture"]
    assert any("0,0" in note for note in zero["where_notes"])
    save_settings(Settings(home_place=[36.5, -6.0], home_place_name="Cádiz"))
    bare, zero = identify_json(capsys, "--model", str(lookalike_model), str(photos["bare"]), str(photos["zero"]))
    assert bare["where"]["source"] == zero["where"]["source"] == "settings"
    assert bare["where"]["week"] == 0 and any("whole year" in note for note in bare["where_notes"])
    assert [s["name"] for s in bare["species"]][:2] == ["Marsh Tit", "Willow Tit"]


def test_the_plain_output_says_where_and_flags_unusual_birds(installed, lookalike_model, photos, capsys):
    assert main(["identify", "--precision", "fp32", "--model", str(lookalike_model), str(photos["andalusia"]),
                 "--at", "33.5,-5.0"]) == 0
    out = capsys.readouterr().out
    assert "where: 33.5000, -5.0000" in out and "from --at" in out and "week 22 of 48 (2024-06-14)" in out
    assert "unusual here in June" in out and "by the picture alone:" in out and "(no range data)" in out


def test_a_raw_file_with_gps_is_placed(installed, lookalike_model, tmp_path, capsys):
    from test_raw import write_dng

    dng = write_dng(tmp_path / "england.dng", exif=True, preview=(512, 384))
    (record,) = identify_json(capsys, "--model", str(lookalike_model), str(dng))
    assert record["where"]["source"] == "photo" and record["where"]["latitude"] == pytest.approx(52.5)
    assert record["where"]["date"] == "2023-05-06" and record["where"]["week"] == 17


def test_a_damaged_range_model_leaves_the_picture_answering(installed, lookalike_model, photos, capsys):
    record = GeomodelStore().record()
    record.model_path.write_bytes(record.model_path.read_bytes()[:100])
    code = main(["identify", "--precision", "fp32", "--model", str(lookalike_model), str(photos["andalusia"]), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    (answer,) = json.loads(captured.out)
    assert answer["species"] == answer["species_by_picture"]
    assert "changed since it was installed" in captured.err and "picture alone" in captured.err


def test_labels_error_names_the_line(tmp_path):
    from birdid_app.core.model.species_names import parse_labels

    with pytest.raises(LabelsError, match="Line 2"):
        parse_labels("a\tB c\tD\nbroken\n", tmp_path / "labels.txt")


# --- the library --------------------------------------------------------------------------------


def test_the_library_keeps_both_answers_and_find_reads_either(geomodel_files, lookalike_model, photos, tmp_path,
                                                               capsys):
    from birdid_app.core.library import Library

    library_path = tmp_path / "library.db"
    folder = photos["andalusia"].parent
    common = ["--model", str(lookalike_model), "--library", str(library_path)]
    # Indexed before a range model is installed: the picture's answer only.
    assert main(["index", str(folder), *common, "--precision", "fp32"]) == 0
    capsys.readouterr()
    assert main(["find", "Marsh Tit", *common, "--ranking", "place", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    model_path, labels_path = geomodel_files
    assert main(["geomodel", "import", str(model_path), str(labels_path)]) == 0
    # Indexing again identifies nothing new, but ranks the photos with a place by where and when.
    assert main(["index", *common, "--precision", "fp32"]) == 0
    assert "ranked 2 photos again by where and when" in capsys.readouterr().out
    assert main(["find", "Willow Tit", *common, "--json"]) == 0
    by_picture = {r["path"] for r in json.loads(capsys.readouterr().out)}
    assert by_picture == {str(p) for p in photos.values()}
    assert main(["find", "Marsh Tit", *common, "--ranking", "place", "--json"]) == 0
    assert [r["path"] for r in json.loads(capsys.readouterr().out)] == [str(photos["andalusia"])]
    assert main(["find", "Willow Tit", *common, "--ranking", "place", "--json"]) == 0
    assert [r["path"] for r in json.loads(capsys.readouterr().out)] == [str(photos["holland"])]

    # A place set for the folder comes before every photo's GPS: all four are now in Andalusia.
    with Library(library_path, create=False) as library:
        library.set_assigned_place(folder, 37.0, -4.0, "Andalusia")
        (andalusia,) = [p for p in library.all_photos() if p.path == photos["andalusia"]]
        before = library.place_answer(andalusia.id)
    assert before[0]["source"] == "photo"
    assert main(["index", *common, "--precision", "fp32"]) == 0
    assert "ranked 4 photos again" in capsys.readouterr().out
    assert main(["find", "Marsh Tit", *common, "--ranking", "place", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    with Library(library_path, create=False) as library:
        where, species = library.place_answer(andalusia.id)
        assert where["source"] == "folder" and species[0][0] == "Marsh Tit"
        assert species[0][2] == pytest.approx(0.6, abs=1e-3)  # the Marsh Tit's expected value, stored
    # Nothing changed since: nothing is written again.
    assert main(["index", *common, "--precision", "fp32"]) == 0
    assert "ranked" not in capsys.readouterr().out


def test_indexing_with_a_range_model_stores_the_place_answer_at_once(installed, lookalike_model, photos, tmp_path,
                                                                      capsys):
    from birdid_app.core.library import Library

    library_path = tmp_path / "library.db"
    common = ["--model", str(lookalike_model), "--library", str(library_path)]
    assert main(["index", str(photos["andalusia"].parent), *common, "--precision", "fp32"]) == 0
    assert "ranked" not in capsys.readouterr().out  # stored as each photo was indexed
    with Library(library_path, create=False) as library:
        answers = {p.path.name: library.place_answer(p.id) for p in library.all_photos()}
    assert answers["bare.jpg"] is None and answers["zero.jpg"] is None
    where, species = answers["andalusia.jpg"]
    assert (where["week"], where["source"]) == (22, "photo")
    assert [name for name, _, _ in species][:2] == ["Marsh Tit", "Willow Tit"]
    assert species[2][2] is None  # the Kingfisher: no range data
