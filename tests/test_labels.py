"""A person's own labels: set from the command line, kept apart from the model's predictions,
surviving re-indexing, a model change and a rename; found first by species search; exported."""

from __future__ import annotations

import csv
import json
import os
import time

from PySide6.QtGui import QKeySequence

from birdid_app.cli import main
from birdid_app.core.library import NOT_A_BIRD, Library
from conftest import SPECIES, make_photo


def top_species(library, path) -> str:
    with Library(library) as opened:
        return opened.photo_by_path(path).species[0][0]


def test_a_label_is_found_first_marked_and_survives_reindexing_and_a_rename(indexed, capsys):
    folder, library, common = indexed
    photo = folder / "p2.jpg"
    predicted = top_species(library, photo)
    corrected = next(name for name in SPECIES if name != predicted)
    assert main(["label", str(photo), corrected.upper(), *common]) == 0  # names match in any case
    assert capsys.readouterr().out.strip() == f"{photo}: labelled {corrected}"

    assert main(["find", corrected, "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[0]["path"] == str(photo) and found[0]["confirmed"] is True
    assert all("confirmed" not in record for record in found[1:])
    assert main(["find", predicted, "--in-top", "5", "--json", *common]) == 0
    assert str(photo) not in [r["path"] for r in json.loads(capsys.readouterr().out)]  # labelled otherwise
    assert main(["find", corrected, "--confirmed", "--json", *common]) == 0
    assert [r["path"] for r in json.loads(capsys.readouterr().out)] == [str(photo)]

    # Changed on disk and indexed again, then renamed: the label stays with the photo.
    os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert main(["index", *common]) == 0
    renamed = folder / "renamed.jpg"
    photo.rename(renamed)
    assert main(["index", *common]) == 0
    capsys.readouterr()
    with Library(library) as opened:
        assert opened.photo_by_path(renamed).label == corrected

    out = folder.parent / "out.csv"
    assert main(["export", str(out), *common]) == 0
    with out.open(newline="") as handle:
        rows = {os.path.basename(r["path"]): r for r in csv.DictReader(handle)}
    assert rows["renamed.jpg"]["label"] == corrected and rows["p1.jpg"]["label"] == ""


def test_not_a_bird_unknown_names_and_clearing(indexed, capsys):
    folder, library, common = indexed
    assert main(["label", str(folder / "p1.jpg"), "Not A Bird", *common]) == 0
    with Library(library) as opened:
        assert opened.photo_by_path(folder / "p1.jpg").label == NOT_A_BIRD
    capsys.readouterr()
    assert main(["label", str(folder / "p1.jpg"), "Dodo", *common]) == 2
    assert "The model knows no species called “Dodo”" in capsys.readouterr().err
    assert main(["label", str(folder.parent / "elsewhere.jpg"), "Great Tit", *common]) == 2
    assert "This photo is not in the library: index its folder first." in capsys.readouterr().err
    assert main(["label", str(folder / "p1.jpg"), "--clear", *common]) == 0
    with Library(library) as opened:
        assert opened.photo_by_path(folder / "p1.jpg").label is None


def test_a_label_survives_a_change_of_model(indexed, tmp_path, capsys):
    folder, library, common = indexed
    assert main(["label", str(folder / "p3.jpg"), "Grey Heron", *common]) == 0
    with Library(library, model="another-model") as opened:  # read through a model with no rows
        photo = opened.photo_by_path(folder / "p3.jpg")
        assert photo.label == "Grey Heron" and photo.species == ()
        assert [p.path.name for p, _ in opened.find_species("Grey Heron")] == ["p3.jpg"]


def test_the_window_confirms_corrects_and_clears_a_library_photos_label(qtbot, tmp_path, small_model_file, photo_dir):
    from birdid_app.core.library import default_library_path
    from birdid_app.core.model.model_store import ModelStore
    from conftest import WINDOW_WAIT_MS, open_ready_window

    folder = tmp_path / "birds"
    for i in range(2):
        make_photo(folder / f"b{i}.jpg", size=(320, 240), seed=i)
    ModelStore().import_file(small_model_file)
    assert main(["index", str(folder), "--device", "cpu"]) == 0
    window = open_ready_window(qtbot)
    panel = window.label_panel

    def stored_label():
        with Library(default_library_path()) as library:
            return library.photo_by_path(folder / "b1.jpg").label

    window.add_photos([folder / "b1.jpg"])
    qtbot.waitUntil(lambda: panel.confirm_button.isEnabled(), timeout=WINDOW_WAIT_MS)
    top = window.session.current.outcome().ranked[0].name
    assert not window.undo_action.isEnabled() and window.undo_action.text() == "&Undo"
    with qtbot.waitSignal(window.library_service.writer.label_set, timeout=WINDOW_WAIT_MS):
        panel.confirm_button.click()
    assert stored_label() == top and panel.state.text() == f"Your label: {top}"

    corrected = next(name for name in SPECIES if name != top)
    panel.species.setText(corrected.lower())
    with qtbot.waitSignal(window.library_service.writer.label_set, timeout=WINDOW_WAIT_MS):
        panel.set_button.click()
    assert stored_label() == corrected
    assert window.undo_action.text() == f"Undo label {corrected} on b1.jpg" and window.undo_action.isEnabled()

    with qtbot.waitSignal(window.library_service.writer.label_set, timeout=WINDOW_WAIT_MS):
        panel.clear_button.click()
    assert stored_label() is None

    # Edit > Undo, three times by its key: the label cleared comes back, then the first one, then none.
    for expected, text in ((corrected, "clear the label of b1.jpg"), (top, f"label {corrected} on b1.jpg"),
                           (None, f"label {top} on b1.jpg")):
        assert window.undo_action.text() == f"Undo {text}"
        # The map and the life list hear of it too, as of any label change.
        with qtbot.waitSignals([window.library_service.writer.labels_restored, window.library_service.changed],
                               timeout=WINDOW_WAIT_MS):
            qtbot.keySequence(window, QKeySequence.StandardKey.Undo)
        assert stored_label() == expected
        qtbot.waitUntil(lambda shown=f"Your label: {expected or 'none'}": panel.state.text() == shown, timeout=WINDOW_WAIT_MS)
    assert not window.undo_action.isEnabled() and window.redo_action.text() == f"Redo label {top} on b1.jpg"
    with qtbot.waitSignal(window.library_service.writer.labels_restored, timeout=WINDOW_WAIT_MS):
        window.redo_action.trigger()
    assert stored_label() == top and window.redo_action.text() == f"Redo label {corrected} on b1.jpg"
    qtbot.waitUntil(lambda: panel.clear_button.isEnabled(), timeout=WINDOW_WAIT_MS)
    with qtbot.waitSignal(window.library_service.writer.label_set, timeout=WINDOW_WAIT_MS):
        panel.clear_button.click()  # a new change: nothing is left to redo
    assert not window.redo_action.isEnabled() and window.redo_action.text() == "&Redo"

    window.add_photos([photo_dir / "robin.png"])  # in no library: nothing offered, and the tooltip says why
    qtbot.waitUntil(lambda: panel.isEnabled() and "in no library" in panel.state.text(), timeout=WINDOW_WAIT_MS)
    assert not panel.confirm_button.isEnabled() and not panel.set_button.isEnabled()
    assert "in no library" in panel.confirm_button.toolTip()
    window.close()


def test_the_library_tab_lists_labelled_photos_first_and_marks_them(qtbot, tmp_path, small_model_file):
    from PySide6.QtCore import Qt

    from birdid_app.core.model.model_store import ModelStore
    from conftest import WINDOW_WAIT_MS, open_ready_window

    folder = tmp_path / "birds"
    for i in range(4):
        make_photo(folder / f"b{i}.jpg", size=(320, 240), seed=i)
    ModelStore().import_file(small_model_file)
    assert main(["index", str(folder), "--device", "cpu"]) == 0
    assert main(["label", str(folder / "b3.jpg"), "Common Kingfisher"]) == 0
    assert main(["label", str(folder / "b0.jpg"), "Great Tit"]) == 0
    assert main(["label", str(folder / "b1.jpg"), "Eurasian Blue Tit"]) == 0
    window = open_ready_window(qtbot)
    view = window.library_view
    window.tabs.setCurrentWidget(view)
    # Typed as a person types: part of a name, chosen from the popup, then Enter to find.
    qtbot.waitUntil(lambda: view.species_completer.search.matching("alcedo") != [], timeout=WINDOW_WAIT_MS)
    qtbot.keyClicks(view.species, "KINGF")
    popup = view.species_completer.popup()
    qtbot.waitUntil(popup.isVisible, timeout=WINDOW_WAIT_MS)
    qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert view.species.text() == "Common Kingfisher"
    qtbot.keyClick(view.species, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.results.count() >= 1, timeout=WINDOW_WAIT_MS)
    first = view.results.item(0)
    species, details, _ = first.text().split("\n")
    assert first.data(0x0100) == folder / "b3.jpg" and species == "Common Kingfisher" and details.endswith("· yours")

    # Find with only part of a name (the scientific one here): the one species it fits is searched.
    view.results_label.setText("")
    view.species.setText("alcedo")
    view.find_button.click()
    qtbot.waitUntil(lambda: view.results_label.text().endswith("photos with Common Kingfisher as the top species"),
                    timeout=WINDOW_WAIT_MS)
    # A part that fits several of the library's species: which, in one sentence.
    view.species.setText("tit")
    view.find_button.click()
    qtbot.waitUntil(lambda: view.results_label.text().startswith("“tit” could be"), timeout=WINDOW_WAIT_MS)
    assert view.results_label.text() == (
        "“tit” could be 2 of the species in your library: Eurasian Blue Tit, Great Tit; name one.")
    window.close()


def test_a_pasted_paragraph_is_not_echoed_and_a_class_name_with_stray_spaces_can_be_chosen(indexed, capsys):
    folder, _, common = indexed
    assert main(["label", str(folder / "p1.jpg"), "x" * 10_000, *common]) == 2
    error = capsys.readouterr().err
    assert "The model knows no species called “xxx" in error and "…”" in error and len(error) < 300
    from birdid_app.core.model.species_names import typed_species

    names = ["\tEurasian Wren", "Great  Tit", "Robin"]
    assert typed_species("eurasian wren", names) == "\tEurasian Wren"  # the model's own spelling back
    assert typed_species(" great tit ", names) == "Great  Tit"
    assert typed_species("", names) is None and typed_species("Wren", names) is None


def test_an_error_that_starts_with_the_apps_name_keeps_its_small_letter():
    from birdid_app.core.errors import FileProblem, sentence

    assert str(FileProblem("/p/a.xmp", "birdid could not write this sidecar.")) == (
        "/p/a.xmp: birdid could not write this sidecar.")
    assert sentence("birdie seen") == "Birdie seen" and sentence("no such file.") == "No such file."


def test_labels_put_back_are_as_they_were_when_and_by_whom_and_a_photo_gone_since_is_skipped(indexed):
    from birdid_app.core.library.labels import StoredLabel, restore_labels, stored_labels

    folder, library, _ = indexed
    with Library(library) as opened:
        ids = [opened.photo_by_path(folder / f"p{i}.jpg").id for i in range(3)]
        opened.set_label(ids[0], "Great Tit", source="keywords")
        before = stored_labels(opened, [*ids, 10_000])
        assert before[ids[1]] is None and before[10_000] is None
        assert before[ids[0]] == StoredLabel("Great Tit", before[ids[0]].set_at, "keywords")
        opened.set_labels(ids, "Grey Heron")
        restore_labels(opened, {**before, 10_000: StoredLabel("Grey Heron", "2020-01-01T00:00:00Z", "person")})
        assert stored_labels(opened, [*ids, 10_000]) == before
