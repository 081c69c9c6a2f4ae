"""How far to trust an answer: the zoom on the evidence, the mirror-and-crops agreement, the vote
of the person's confirmed photos and the unfamiliar-photo score, in core and through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from birdid_app.cli import main
from birdid_app.core.insight import trust
from birdid_app.core.library import Library
from birdid_app.core.model.inference import Classifier
from conftest import OTHER_SPECIES, RED_PATCH, RED_SPECIES, make_photo

RED, OTHER = RED_SPECIES, OTHER_SPECIES
PATCH = RED_PATCH


@pytest.fixture(scope="module")
def red_classifier(red_model_file):
    return Classifier.from_file(red_model_file, device="cpu", precision="fp32")


def photo_with_red(box, size=(1024, 768)) -> Image.Image:
    image = Image.new("RGB", size, (0, 90, 0))  # green: no red anywhere but the patch
    image.paste((255, 0, 0), box)
    return image


def contains(box, patch) -> bool:
    x, y, width, height = box
    left, top, right, bottom = patch
    return x <= left and y <= top and x + width >= right and y + height >= bottom


# --- the box ---------------------------------------------------------------------------------


def test_the_box_holds_the_peak_and_its_neighbours_not_a_second_blob_and_is_square_inside_the_image():
    cam = np.zeros((12, 12), dtype=np.float32)
    cam[2:4, 8:10] = 1.0  # the bird
    cam[4, 10] = 0.7  # its tail, touching diagonally
    cam[10, 1] = 0.9  # something else, far away
    found = trust.evidence_box(cam, (1200, 1200))
    x, y, width, height = found.box
    assert width == height  # square, as the model's input is
    assert contains(found.box, (800, 200, 1100, 500))  # cells 8-10 across, 2-4 down, 100 px each
    assert not contains(found.box, (100, 1000, 200, 1100))  # the far blob is not in it
    assert 0 <= x and 0 <= y and x + width <= 1200 and y + height <= 1200


def test_the_box_is_moved_inside_the_image_at_a_corner_and_fits_a_narrow_image():
    cam = np.zeros((12, 12), dtype=np.float32)
    cam[0, 0] = 1.0
    box = trust.evidence_box(cam, (1200, 600)).box
    assert box[0] == 0 and box[1] == 0 and box[2] == box[3]
    cam = np.zeros((12, 12), dtype=np.float32)
    cam[5:7, 5:7] = 1.0
    box = trust.evidence_box(cam, (1200, 240)).box
    assert box[1] >= 0 and box[1] + box[3] <= 240  # never taller than the image


def test_evidence_over_most_of_the_photo_or_none_at_all_gives_no_box_and_says_why():
    spread = trust.evidence_box(np.ones((12, 12), dtype=np.float32), (800, 600))
    assert spread.box is None and "fills" in spread.reason
    nothing = trust.evidence_box(np.zeros((12, 12), dtype=np.float32), (800, 600))
    assert nothing.box is None and "no evidence" in nothing.reason


# --- zooming with a real model ---------------------------------------------------------------


def test_the_zoom_crop_contains_the_known_evidence_and_is_identified_again(red_classifier):
    image = photo_with_red(PATCH)
    (zoomed,) = trust.zoom_identify(red_classifier, [image], ["red.png"])
    assert zoomed.zoom.box is not None and contains(zoomed.zoom.box, PATCH), zoomed.zoom
    x, y, width, height = zoomed.zoom.box
    assert width * height < 0.6 * image.width * image.height
    assert zoomed.zoomed is not None
    names = red_classifier.class_names
    assert names[int(np.argmax(zoomed.whole.probabilities))] == RED
    assert names[int(np.argmax(zoomed.zoomed.probabilities))] == RED
    surer = max((zoomed.whole, zoomed.zoomed), key=lambda r: r.probabilities.max())
    assert zoomed.preferred() is surer


def test_a_bird_filling_the_photo_is_not_zoomed(red_classifier):
    (zoomed,) = trust.zoom_identify(red_classifier, [photo_with_red((0, 0, 1024, 768))], ["full.png"])
    assert zoomed.zoom.box is None and zoomed.zoomed is None and zoomed.preferred() is zoomed.whole


# --- mirror and crops ------------------------------------------------------------------------


def test_agreement_holds_when_the_evidence_survives_every_view_and_not_when_a_crop_cuts_it_off(red_classifier):
    centred = trust.tta_agreement(red_classifier, photo_with_red((480, 350, 560, 420)), class_index=0)
    assert centred.agreeing == 3 and centred.signal().state == trust.AGREES
    assert "all 3" in centred.signal().finding
    # Red only in the upper left corner: the crop to the lower right loses it.
    corner = trust.tta_agreement(red_classifier, photo_with_red((0, 0, 60, 60)), class_index=0)
    best = {view: species for view, species, _ in corner.views}
    assert best == {"mirrored": RED, "cropped to the upper left": RED, "cropped to the lower right": OTHER}
    signal = corner.signal()
    assert signal.state == trust.DISAGREES and f"{RED} in 2 of 3" in signal.finding and OTHER in signal.finding


def test_the_views_are_a_mirror_and_two_opposite_crops():
    image = Image.new("RGB", (200, 100))
    image.putpixel((0, 0), (255, 255, 255))
    mirrored, upper_left, lower_right = trust.tta_views(image)
    assert mirrored.getpixel((199, 0)) == (255, 255, 255)
    assert upper_left.size == lower_right.size == (170, 85)
    assert upper_left.getpixel((0, 0)) == (255, 255, 255) and lower_right.getpixel((0, 0)) == (0, 0, 0)


# --- the vote of the person's labels ---------------------------------------------------------


def test_the_vote_weighs_the_nearest_labelled_photos_and_ignores_far_ones():
    rng = np.random.default_rng(0)
    query = rng.normal(size=16)
    near = query + 0.1 * rng.normal(size=(3, 16))
    far = -query + 0.1 * rng.normal(size=(2, 16))  # cosine about -1: no vote at all
    vectors = np.vstack([near, far]).astype(np.float32)
    vote = trust.neighbour_vote("Great Tit", query, np.arange(5), vectors, ["Great Tit", "Great Tit", "Coal Tit",
                                                                            "Great Tit", "Great Tit"])
    assert {pid for pid, _, _ in vote.neighbours} == {0, 1, 2}
    assert vote.tally()[0][0] == "Great Tit" and vote.signal().state == trust.AGREES
    assert "2 of your 3 nearest" in vote.signal().finding
    against = trust.neighbour_vote("Coal Tit", query, np.arange(5), vectors, ["Great Tit"] * 2 + ["Coal Tit"] * 3)
    assert against.signal().state == trust.DISAGREES
    assert trust.neighbour_vote("Great Tit", query, np.arange(0), np.zeros((0, 16)), []).signal().state == trust.UNKNOWN


def test_energy_is_the_logsumexp_of_the_models_own_logits(red_classifier, small_model_file):
    classifier = Classifier.from_file(small_model_file, device="cpu", precision="fp32")
    image = Image.open(make_photo(small_model_file.parent / "energy.jpg", seed=4)).convert("RGB")
    (result,) = classifier.identify_images([image], keep_stage_maps=False)
    with torch.inference_mode():
        logits = classifier.model(classifier.model_input(image)[None], stage_maps=False).logits
    weight, bias = classifier.head_weights()
    energy = trust.energy_scores(result.embedding[None], weight, bias)[0]
    assert energy == pytest.approx(float(torch.logsumexp(logits.double(), dim=-1)[0]), abs=1e-3)


def test_familiarity_compares_with_the_library_and_needs_enough_photos():
    reference = np.linspace(0, 10, 101)
    assert trust.familiarity(-1.0, reference).signal().state == trust.WARNING
    assert "100%" in trust.familiarity(-1.0, reference).signal().finding
    assert trust.familiarity(5.0, reference).signal().state == trust.AGREES
    assert trust.familiarity(5.0, reference[:10]).signal().state == trust.UNKNOWN


# --- the command line ------------------------------------------------------------------------


def test_identify_zoom_prints_both_answers_and_the_box_that_holds_the_evidence(tmp_path, red_model_file, capsys):
    photo = tmp_path / "far-away.png"
    photo_with_red(PATCH).save(photo)
    common = ["--model", str(red_model_file), "--device", "cpu", "--precision", "fp32"]
    assert main(["identify", str(photo), "--zoom", "--json", *common]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert contains(record["zoom"]["box"], PATCH)
    assert record["whole_photo"][0]["name"] == RED and record["zoom"]["species"][0]["name"] == RED
    kept = record["zoom"]["species"] if record["answer_from"] == "zoom" else record["whole_photo"]
    assert record["species"] == kept
    assert main(["identify", str(photo), "--zoom", *common]) == 0
    out = capsys.readouterr().out
    assert "whole photo:" in out and f"zoomed on {record['zoom']['box'][2]}x{record['zoom']['box'][3]}" in out
    assert "(kept: the model is surer of it)" in out


def test_identify_trust_without_a_library_says_so_and_an_unreadable_photo_does_not_stop_the_others(
    tmp_path, red_model_file, capsys
):
    good = tmp_path / "good.png"
    photo_with_red((0, 0, 60, 60)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    common = ["--model", str(red_model_file), "--device", "cpu", "--precision", "fp32"]
    code = main(["identify", str(bad), str(good), "--trust", "--json", "--library", str(tmp_path / "none.sqlite3"),
                 *common])
    captured = capsys.readouterr()
    assert code == 1 and "bad.jpg" in captured.err
    bad_record, record = json.loads(captured.out)
    assert "error" in bad_record
    states = {s["signal"]: s["state"] for s in record["trust"]}
    assert states == {"Mirror and crops": "disagrees", "Your confirmed photos": "unknown", "Unfamiliar photo": "unknown"}
    assert all(s["meaning"] for s in record["trust"])


def test_identify_trust_reads_the_persons_labels_and_the_library_as_reference(tmp_path, small_model_file, capsys):
    folder = tmp_path / "photos"
    for i in range(32):
        make_photo(folder / f"p{i:02}.jpg", size=(160, 120), seed=i)
    library_path = tmp_path / "library.sqlite3"
    common = ["--model", str(small_model_file), "--device", "cpu", "--precision", "fp32"]
    assert main(["index", str(folder), "--library", str(library_path), *common]) == 0
    assert main(["label", str(folder / "p03.jpg"), "Grey Heron", "--library", str(library_path),
                 "--model", str(small_model_file)]) == 0
    capsys.readouterr()
    twin = tmp_path / "elsewhere" / "same-as-p03.jpg"
    twin.parent.mkdir()
    twin.write_bytes((folder / "p03.jpg").read_bytes())  # not in the library: its nearest labelled photo is p03
    assert main(["identify", str(twin), "--trust", "--json", "--library", str(library_path), *common]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    signals = {s["signal"]: s for s in record["trust"]}
    vote = signals["Your confirmed photos"]
    assert "Grey Heron" in vote["finding"] and "nearest 1.00 alike" in vote["finding"]
    assert vote["state"] == ("agrees" if record["species"][0]["name"] == "Grey Heron" else "disagrees")
    familiar = signals["Unfamiliar photo"]
    # The twin scores as p03 does, one of the 32 reference photos: at least 1/32 score no higher.
    assert familiar["state"] == "agrees" and "of your library's photos" in familiar["finding"]
    # The labelled photo itself is left out of its own vote.
    assert main(["identify", str(folder / "p03.jpg"), "--trust", "--json", "--library", str(library_path), *common]) == 0
    (own,) = json.loads(capsys.readouterr().out)
    assert {s["signal"]: s for s in own["trust"]}["Your confirmed photos"]["state"] == "unknown"


def test_index_zoom_stores_the_answer_the_model_is_surer_of(tmp_path, amount_model_file, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo_with_red(PATCH).save(folder / "far-away.png")
    library_path = tmp_path / "library.sqlite3"
    common = ["--model", str(amount_model_file), "--device", "cpu", "--precision", "fp32"]
    assert main(["identify", str(folder / "far-away.png"), "--zoom", "--json", *common]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    zoomed, whole = record["zoom"]["species"][0]["probability"], record["whole_photo"][0]["probability"]
    assert record["answer_from"] == "zoom" and zoomed > whole + 0.05  # the crop is redder: surer
    assert main(["index", str(folder), "--zoom", "--library", str(library_path), *common]) == 0
    with Library(library_path) as library:
        (photo,) = library.all_photos()
        assert photo.species[0] == (RED, pytest.approx(zoomed, abs=1e-5))
    assert main(["index", str(folder), "--zoom", "--engine", "ray", "--shards", str(tmp_path / "s"),
                 "--library", str(library_path), *common]) == 2
    assert "local engine only" in capsys.readouterr().err


def test_an_empty_library_gives_both_signals_for_a_model_of_any_width(tmp_path):
    """An empty library's index has a default width (768); a model of another (32 here) must
    still get "no labelled photos" and "too few photos", not a shape error."""
    rng = np.random.default_rng(0)
    head = (rng.standard_normal((3, 32)).astype(np.float32), np.zeros(3, dtype=np.float32))
    with Library(tmp_path / "empty.db", model="small") as library:
        vote, familiar = trust.library_signals(library, "Great Tit", rng.standard_normal(32).astype(np.float32), head)
    assert (vote.neighbours, vote.confirmed) == ((), 0)
    assert (familiar.below, familiar.reference) == (None, 0)
