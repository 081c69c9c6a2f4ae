"""The library in the window, through qtbot: a folder added and indexed with progress, a species
search, a similar-image grid, what each result says, pause and cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtWidgets import QFileDialog

from birdid_app.core.library import Library, default_library_path
from birdid_app.core.model import inference
from birdid_app.core.model.model_store import ModelStore
from birdid_app.gui.library_results import probability_text
from birdid_app.gui.library_view import PHOTO_ROLE
from conftest import make_photo, open_ready_window, open_window

WAIT_MS = 60_000


@pytest.fixture
def folder(tmp_path):
    for i in range(12):
        make_photo(tmp_path / "birds" / f"b{i:02d}.jpg", size=(320, 240), seed=i)
    return tmp_path / "birds"


@pytest.fixture
def window(qtbot, small_model_file, folder):
    """The window with `folder` in its library, not yet indexed (each test starts the index)."""
    ModelStore().import_file(small_model_file)
    with Library(default_library_path()) as library:
        library.add_folder(folder)
    window = open_ready_window(qtbot)
    window.tabs.setCurrentWidget(window.library_view)
    qtbot.waitUntil(lambda: window.library_view.folders.count() == 1, timeout=WAIT_MS)
    return window


def test_index_a_folder_then_search_by_species_and_similarity(window, qtbot, folder):
    view = window.library_view
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        view.index_button.click()
    assert view.progress.value() == view.progress.maximum() == 12
    assert "Done: 12 photos identified" in view.progress_label.text()

    with Library(default_library_path()) as library:
        species, count = library.species_counts()[0]
        expected = [str(p.path) for p, _ in library.find_species(species)]
    view.species.setText(species.lower())
    view.find_button.click()
    qtbot.waitUntil(lambda: view.results.count() == count and view.results_label.text().startswith(str(count)), timeout=WAIT_MS)
    assert [str(view.results.item(i).data(0x0100)) for i in range(count)] == expected

    # Similar to the photo on screen: identify one, then search with its embedding.
    window.tabs.setCurrentWidget(window.identify_view)
    window.add_photos([folder / "b03.jpg"])
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=WAIT_MS)
    with Library(default_library_path()) as library:
        expected = [str(p.path) for p, _ in library.similar(window.session.current.whole.identification.embedding, 40)]
    view.similar_button.click()
    qtbot.waitUntil(lambda: view.results.count() == 12, timeout=WAIT_MS)
    shown = [str(view.results.item(i).data(0x0100)) for i in range(12)]
    assert shown == expected and shown[0] == str(folder / "b03.jpg")
    qtbot.waitUntil(lambda: not view.results.item(0).icon().isNull(), timeout=WAIT_MS)  # thumbnails arrive

    # Similar to a library photo, from its stored embedding (the photo itself left out).
    with Library(default_library_path()) as library:
        b07 = library.photo_by_path(folder / "b07.jpg")
        expected = [str(p.path) for p, _ in library.similar_to_photo(b07.id, 40)]
    view.find_similar_to(b07.id, "b07.jpg")
    qtbot.waitUntil(lambda: view.results_label.text() == "The 11 photos most like b07.jpg", timeout=WAIT_MS)
    assert [str(view.results.item(i).data(0x0100)) for i in range(11)] == expected
    view.find_similar()
    qtbot.waitUntil(lambda: view.results.count() == 12, timeout=WAIT_MS)

    # Activating a result shows it in the identification view.
    view.results.itemActivated.emit(view.results.item(2))
    assert window.tabs.currentWidget() is window.identify_view
    assert str(window.session.current.path) == shown[2]


def test_pause_and_cancel_indexing_while_identifying_stays_first(window, qtbot, folder, monkeypatch):
    original = inference.Classifier.identify_images

    def slow(self, images, *args, **kwargs):
        time.sleep(0.2)
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(inference.Classifier, "identify_images", slow)
    for i in range(12, 48):  # 6 batches of 8: room to pause and cancel part-way
        make_photo(folder / f"b{i:02d}.jpg", size=(320, 240), seed=i)
    view = window.library_view
    view.index_button.click()
    qtbot.waitUntil(lambda: view.progress.value() >= 1, timeout=WAIT_MS)
    view.pause_button.click()
    time.sleep(0.5)
    qtbot.wait(100)
    paused_at = view.progress.value()
    qtbot.wait(600)
    assert view.progress.value() == paused_at  # nothing moves while paused

    # An interactive identification still goes ahead while indexing is paused.
    window.tabs.setCurrentWidget(window.identify_view)
    window.add_photos([folder / "b05.jpg"])
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=WAIT_MS)

    view.pause_button.click()  # resume
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS) as finished:
        view.cancel_button.click()
    assert 0 < finished.args[0].embedded < 48
    assert view.index_button.isEnabled()
    with Library(default_library_path()) as library:
        assert library.integrity_ok() and library.count() == finished.args[0].embedded


def test_removing_a_folder_while_indexing_plans_again_without_it(window, qtbot, folder, tmp_path, monkeypatch):
    """Folder changes go through the library's writer thread: a folder removed mid-index leaves
    the library, and the running index is planned again without its photos."""
    other = tmp_path / "garden"
    for i in range(3):
        make_photo(other / f"g{i}.jpg", size=(320, 240), seed=50 + i)
    view = window.library_view
    original = inference.Classifier.identify_images

    def slow(self, *args, **kwargs):
        time.sleep(0.3)  # the engine is slow, so the removal lands mid-index
        return original(self, *args, **kwargs)

    monkeypatch.setattr(inference.Classifier, "identify_images", slow)
    plans = []
    window.engine.index_started.connect(plans.append)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(other))
    with qtbot.waitSignal(window.library_service.folders_changed, timeout=WAIT_MS):
        view.add_button.click()  # adding a folder starts indexing: both folders, 15 photos
    assert sorted(view.folders.item(i).text() for i in range(view.folders.count())) == [str(folder), str(other)]
    assert view.indexing and not view.index_button.isEnabled()
    qtbot.waitUntil(lambda: view.progress.maximum() == 15, timeout=WAIT_MS)
    view.folders.setCurrentRow([view.folders.item(i).text() for i in range(view.folders.count())].index(str(folder)))
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        view.remove_button.click()
    assert [view.folders.item(i).text() for i in range(view.folders.count())] == [str(other)]
    assert len(plans) == 2  # planned again after the removal
    with Library(default_library_path()) as library:
        assert library.folders() == [other]
        indexed = sorted(Path(path).name for (path,) in library.db.execute("SELECT path FROM photos"))
    assert indexed == ["g0.jpg", "g1.jpg", "g2.jpg"]


def test_a_slow_folder_scan_does_not_hold_up_identifying_a_photo(window, qtbot, folder, monkeypatch):
    """The scan walks the folders off the engine thread: a photo dropped meanwhile is answered
    before the index is even planned."""
    from birdid_app.core.library import index_job as library_module

    real_scan = library_module._scan

    def slow_scan(folders, should_stop=lambda: False):
        for _ in range(30):  # a slow disk: three seconds before the first folder is walked
            if should_stop():
                return
            time.sleep(0.1)
        yield from real_scan(folders, should_stop)

    monkeypatch.setattr(library_module, "_scan", slow_scan)
    # "auto" is measured beside the answers on a first start, and the shown photo is identified
    # again in the mode it picks: let that happen first (quick once int8 is kept), so the events
    # below are the ones this test causes.
    qtbot.waitUntil(lambda: "picked automatically" in window.model_status.toolTip(), timeout=90_000)
    events = []
    window.engine.identified.connect(lambda outcome: events.append("identified"))
    window.engine.index_started.connect(lambda summary: events.append("planned"))
    window.library_view.index_button.click()
    window.tabs.setCurrentWidget(window.identify_view)
    window.add_photos([folder / "b01.jpg"])
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        pass
    assert events == ["identified", "planned"]
    assert window.library_view.progress.value() == 12


def test_near_duplicates_at_the_similarity_the_person_sets(window, qtbot, folder):
    (folder / "b00-copy.jpg").write_bytes((folder / "b00.jpg").read_bytes() + b"\0")  # the same picture, other bytes
    view = window.library_view
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        view.index_button.click()
    shown_at = {}
    for threshold in (0.99, 0.80):
        with Library(default_library_path()) as library:
            groups = library.duplicate_groups(threshold)
        expected = [(str(photo.path), number) for number, group in enumerate(groups, 1) for photo in group]
        view.duplicate_threshold.setValue(threshold)
        view.duplicates_button.click()
        title = f"Near-duplicates (alike ≥ {threshold:.2f}), group by group"
        qtbot.waitUntil(lambda t=title: view.results_label.text() == t, timeout=WAIT_MS)
        shown = [(str(view.results.item(i).data(0x0100)), int(view.results.item(i).text().split("\n")[1].split("group ")[1]))
                 for i in range(view.results.count())]
        assert shown == expected
        shown_at[threshold] = shown
    assert sorted(Path(path).name for path, _ in shown_at[0.99]) == ["b00-copy.jpg", "b00.jpg"]
    assert len(shown_at[0.80]) >= len(shown_at[0.99])


def dated_photo(path: Path, seed: int, taken: str) -> Path:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = taken  # the EXIF IFD's DateTimeOriginal, as a camera writes it
    return make_photo(path, size=(320, 240), seed=seed, exif=exif)


def test_each_result_says_its_species_probability_and_date_and_similarity_apart(window, qtbot, folder):
    dated = dated_photo(folder / "dated.jpg", 20, "2024:05:01 07:12:03")
    view = window.library_view
    assert view.hint.isVisible() and view.hint.text() == "Index a folder, then search it."
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        view.index_button.click()
    with Library(default_library_path()) as library:
        photo = library.photo_by_path(dated)
        species, probability = photo.species[0]
        similar = library.similar_to_photo(photo.id, 40)

    view.species.setText(species)
    view.find_button.click()
    qtbot.waitUntil(lambda: view.results.count() > 0, timeout=WAIT_MS)
    assert not view.hint.isVisible()  # the grid is full: no hint beside it
    shown = {view.results.item(i).data(PHOTO_ROLE): view.results.item(i) for i in range(view.results.count())}
    assert shown[dated].text() == f"{species}\n{probability_text(probability)}\n2024-05-01 07:12"
    tooltip = shown[dated].toolTip().split("\n")
    assert tooltip[:2] == [str(dated), "Taken: 2024-05-01 07:12"]
    assert tooltip[2].startswith(f"The model: {species} {probability_text(probability)}, ")

    # Similar photos: how alike, apart from the probability of each one's species.
    view.find_similar_to(photo.id, "dated.jpg")
    qtbot.waitUntil(lambda: view.results_label.text() == "The 12 photos most like dated.jpg", timeout=WAIT_MS)
    for row, (other, similarity) in enumerate(similar):
        top, top_probability = other.species[0]
        assert view.results.item(row).text() == (
            f"{top}\n{probability_text(top_probability)} · alike {similarity:.2f}\nno date"
        )
        assert f"Alike {similarity:.3f}: how alike it looks" in view.results.item(row).toolTip()

    view.species.setText("Dodo")  # no such photo: the grid empties and the hint is back
    view.find_button.click()
    qtbot.waitUntil(lambda: view.results_label.text().startswith("0 photos with Dodo"), timeout=WAIT_MS)
    assert view.results.count() == 0 and view.hint.isVisible()


def test_adding_a_folder_indexes_it_at_once(window, qtbot, tmp_path, monkeypatch):
    other = tmp_path / "garden"
    for i in range(2):
        make_photo(other / f"g{i}.jpg", size=(320, 240), seed=60 + i)
    view = window.library_view
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(other))
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS) as finished:
        view.add_button.click()
    assert finished.args[0].embedded == 14  # the new folder's 2 and the 12 not yet indexed
    assert "Done: 14 photos identified" in view.progress_label.text()
    assert view.index_button.isEnabled() and not view.indexing


def test_adding_a_folder_with_no_model_says_when_it_is_indexed(qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "birds"
    make_photo(folder / "b0.jpg", size=(320, 240))
    window = open_window(qtbot)  # no model installed
    view = window.library_view
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    view.add_button.click()
    qtbot.waitUntil(lambda: view.folders.count() == 1, timeout=WAIT_MS)
    assert view.progress_label.text() == "The folder is added. No model is loaded yet: press Index now once one is."
    assert not view.indexing and view.index_button.isEnabled()
    window.close()
