"""The photographer's workflow end to end, as issue 13 asks: a folder of DNGs and JPEGs indexed,
labelled and keyworded; the sidecars read back with the real exiftool show the species, and
every field darktable wrote before is still there."""

from __future__ import annotations

from test_raw import write_dng
from test_sidecar import DARKTABLE_SIDECAR, as_list, others, place, tags

from birdid_app.cli import main
from birdid_app.core.library import Library
from conftest import SPECIES, make_photo


def test_a_card_of_raws_and_jpegs_is_indexed_labelled_and_keyworded(tmp_path, small_model_file, capsys):
    folder = tmp_path / "card"
    folder.mkdir()
    raw = write_dng(folder / "IMG_0001.dng")
    jpeg = make_photo(folder / "IMG_0002.jpg", size=(320, 240), seed=2)
    dull = make_photo(folder / "IMG_0003.jpg", size=(320, 240), seed=3)
    darktable = place(folder, "IMG_0001.dng.xmp", DARKTABLE_SIDECAR)  # darktable was here first
    before = others(tags(darktable))
    library = tmp_path / "library.sqlite3"
    common = ["--library", str(library), "--model", str(small_model_file)]
    assert main(["index", str(folder), *common]) == 0

    with Library(library) as opened:
        predicted = opened.photo_by_path(jpeg).species[0][0]
    corrected = next(name for name in SPECIES if name != predicted)
    assert main(["label", str(raw), "Grey Heron", *common]) == 0
    assert main(["label", str(jpeg), corrected, *common]) == 0
    assert main(["label", str(dull), "not a bird", *common]) == 0
    capsys.readouterr()
    assert main(["keywords", "write", "--confirmed-only", *common]) == 0
    # The photo labelled "not a bird" has no sidecar, so nothing is written for it.
    assert capsys.readouterr().out.startswith(
        "Keywords written to 2 sidecars: 2 with a species. 1 photo skipped: nothing to write (no label, "
        "or labelled not a bird or unknown species)."
    )

    after = tags(darktable)  # the darktable sidecar, found and merged, not a second one made
    assert "Grey Heron" in as_list(after.get("XMP-dc:Subject"))
    assert "Birds|Grey Heron" in as_list(after.get("XMP-lr:HierarchicalSubject"))
    assert others(after) == before  # history, rating, darktable's own keywords: all still there
    assert not (folder / "IMG_0001.xmp").exists()
    lightroom = tags(folder / "IMG_0002.xmp")  # a new sidecar: Lightroom's naming, the default
    assert as_list(lightroom.get("XMP-dc:Subject")) == [corrected]
    assert not (folder / "IMG_0003.xmp").exists()  # "not a bird": no species written

    # A corrected label replaces the species birdid wrote; it does not add a second one.
    assert main(["label", str(raw), "Great Tit", *common]) == 0
    assert main(["keywords", "write", "--confirmed-only", *common]) == 0
    after = tags(darktable)
    assert "Great Tit" in as_list(after.get("XMP-dc:Subject"))
    assert "Grey Heron" not in as_list(after.get("XMP-dc:Subject"))
    assert others(after) == before


def test_keywords_an_editor_wrote_become_labels_when_indexed(tmp_path, small_model_file):
    from birdid_app.core.photos.sidecar import write_keywords

    folder = tmp_path / "lightroom"
    tagged = make_photo(folder / "tagged.jpg", size=(320, 240), seed=4)
    mine = make_photo(folder / "mine.jpg", size=(320, 240), seed=5)
    plain = make_photo(folder / "plain.jpg", size=(320, 240), seed=6)
    # As an editor would have it: a species among other keywords, in any case.
    place(folder, "tagged.xmp", DARKTABLE_SIDECAR)
    write_keywords(tagged, "eurasian wren", model="lightroom", probability=None, confirmed=True)
    library = tmp_path / "library.sqlite3"
    common = ["--library", str(library), "--model", str(small_model_file)]
    assert main(["index", str(folder), *common]) == 0
    with Library(library) as opened:
        assert opened.photo_by_path(tagged).label == "Eurasian Wren"  # the model's spelling
        assert opened.photo_by_path(plain).label is None
        assert opened.labels()[opened.photo_by_path(tagged).id][2] == "keywords"
    assert main(["label", str(mine), "Great Tit", *common]) == 0
    place(folder, "mine.xmp", DARKTABLE_SIDECAR)
    write_keywords(mine, "Grey Heron", model="lightroom", probability=None, confirmed=True)
    mine.touch()
    assert main(["index", *common]) == 0
    with Library(library) as opened:
        assert opened.photo_by_path(mine).label == "Great Tit"  # the person's own label wins


def test_the_library_tab_says_exactly_what_it_wrote_and_what_it_skipped(qtbot, tmp_path, small_model_file):
    from birdid_app.core.library import default_library_path
    from birdid_app.core.model.model_store import ModelStore
    from conftest import WINDOW_WAIT_MS, open_ready_window

    folder = tmp_path / "birds"
    photo = make_photo(folder / "b0.jpg", size=(320, 240), seed=0)
    empty = make_photo(folder / "b1.jpg", size=(320, 240), seed=1)
    (folder / "b2.jpg").write_bytes(b"not a JPEG at all")  # indexed as a photo that cannot be read
    ModelStore().import_file(small_model_file)
    main(["index", str(folder), "--device", "cpu"])  # says that b2.jpg could not be read
    assert main(["label", str(photo), "Common Kingfisher"]) == 0
    assert main(["label", str(empty), "not a bird"]) == 0
    window = open_ready_window(qtbot)
    view = window.library_view
    with qtbot.waitSignal(window.library_service.writer.keywords_written, timeout=WINDOW_WAIT_MS):
        view.keywords_button.click()
    assert view.results_label.text() == (
        "Keywords written to 1 sidecar: 1 with a species. 1 photo skipped: nothing to write (no label and no "
        "species at 50% or more, or labelled not a bird or unknown species). 1 photo skipped: unreadable when indexed."
    )
    assert sorted(p.name for p in folder.glob("*.xmp")) == ["b0.xmp"]
    assert "Birds|Common Kingfisher" in as_list(tags(folder / "b0.xmp").get("XMP-lr:HierarchicalSubject"))
    assert default_library_path().exists()
    window.close()
