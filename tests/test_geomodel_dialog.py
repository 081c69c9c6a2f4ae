"""Model > Range Model… through the real window: import a range model's two files, see which of
the loaded model's species it knows, remove it; a broken import is one sentence and keeps what
was installed; download from a loopback hub with progress, Cancel, and a resume."""

from __future__ import annotations

import html

import onnx
import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.model.species_names import published_labels
from birdid_app.core.places.geomodel import ATTRIBUTION, PUBLISHED_GEOMODEL, GeomodelStore
from birdid_app.core.settings import Settings, save_settings
from conftest import WINDOW_WAIT_MS, open_ready_window, open_window
from geomodel_files import default_spec, write_geomodel


@pytest.fixture
def window(qtbot, small_model_file):
    save_settings(Settings(device="cpu", precision="fp32"))  # no precision trial: not what this tests
    ModelStore().import_file(small_model_file)
    return open_ready_window(qtbot)


@pytest.fixture
def range_files(tmp_path):
    return write_geomodel(tmp_path / "usb")


def choose_files(monkeypatch, *paths) -> None:
    """The file chooser answers these, one per time it is opened ("" is Cancel)."""
    answers = iter([(str(path), "") for path in paths])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: next(answers))


def open_dialog(qtbot, window):
    window.range_model_action.trigger()
    dialog = window.range_model_dialog
    qtbot.waitExposed(dialog)
    settle(qtbot, dialog)
    return dialog


def settle(qtbot, dialog) -> None:
    """Until the action under way has ended and what is installed has been read again."""
    qtbot.waitUntil(lambda: dialog.panel.job is None and dialog.reading is None and dialog.facts is not None,
                    timeout=WINDOW_WAIT_MS)


def test_import_shows_what_it_knows_of_the_models_species_and_remove_takes_it_away(
    window, qtbot, range_files, photo_dir, monkeypatch
):
    window.add_photos([photo_dir / "robin.png"])
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=WINDOW_WAIT_MS)
    assert window.session.current.outcome().range_model is None

    dialog = open_dialog(qtbot, window)
    assert dialog.state.text().startswith("No range model is installed")
    assert not dialog.remove_button.isEnabled() and dialog.download_button.text() == "&Download (about 7 MB)"
    assert dialog.attribution.text() == f"{ATTRIBUTION}\nPlace names: GeoNames, CC BY 4.0."

    choose_files(monkeypatch, "")  # the person cancels the first chooser: nothing happens
    dialog.import_button.click()
    assert dialog.panel.job is None and not dialog.panel.message.text()

    model, labels = range_files
    choose_files(monkeypatch, model, labels)
    with qtbot.waitSignal(window.engine.range_prior_changed, timeout=WINDOW_WAIT_MS):
        dialog.import_button.click()
        assert not dialog.import_button.isEnabled()  # one action at a time
    settle(qtbot, dialog)
    record = GeomodelStore().record()
    assert dialog.panel.message.text() == "The range model is installed (13 species)."
    assert dialog.state.text().startswith("Installed: ")
    assert dialog.source.text() == f"imported from {model}"
    assert dialog.location.text() == str(record.model_path)
    assert dialog.species.text() == "13 species"
    assert dialog.matched.text() == "9 of 10 species matched: 8 by name, 1 through the alias table"
    assert dialog.unmatched_title.text() == "No range data for 1 species: they are ranked by the picture alone."
    assert [dialog.unmatched.item(i).text() for i in range(dialog.unmatched.count())] == ["Common Kingfisher"]
    assert dialog.remove_button.isEnabled()
    # The engine uses it, and the photo on screen is asked again: its answer is placed by it now.
    assert window.range_prior_state.sha256 == record.model_sha256 and window.range_prior_state.matched == 9
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None
                    and window.session.current.outcome().range_model == record.model_sha256, timeout=WINDOW_WAIT_MS)

    with qtbot.waitSignal(window.engine.range_prior_changed, timeout=WINDOW_WAIT_MS):
        dialog.remove_button.click()
    settle(qtbot, dialog)
    assert not GeomodelStore().installed()
    assert dialog.panel.message.text() == "The range model is removed: the species are ranked by the picture alone."
    assert dialog.state.text().startswith("No range model is installed")
    assert dialog.species.text() == "" and not dialog.unmatched.isVisible() and not dialog.remove_button.isEnabled()
    assert window.range_prior_state.sha256 is None
    entry = window.session.current
    qtbot.waitUntil(lambda: entry.outcome() is not None and entry.outcome().range_model is None, timeout=WINDOW_WAIT_MS)


def test_a_broken_import_is_one_sentence_and_keeps_the_installed_one(window, qtbot, range_files, tmp_path,
                                                                      monkeypatch):
    model, labels = range_files
    GeomodelStore().install(model, labels, origin="import", source=str(model))
    good = GeomodelStore().record()
    dialog = open_dialog(qtbot, window)
    assert dialog.species.text() == "13 species"

    two_columns = tmp_path / "labels.txt"
    two_columns.write_text("blutit\tCyanistes caeruleus\n", encoding="utf-8")
    other_model, _ = write_geomodel(tmp_path / "other")
    choose_files(monkeypatch, other_model, two_columns)
    dialog.import_button.click()
    settle(qtbot, dialog)
    message = dialog.panel.message.text()
    assert message.startswith(f"{two_columns}: ") and "Line 1 is not" in message and "\n" not in message

    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(other_model.read_bytes()[:300])
    choose_files(monkeypatch, truncated, labels)
    dialog.import_button.click()
    settle(qtbot, dialog)
    assert dialog.panel.message.text().startswith(f"{truncated}: This is not a range model ONNX Runtime can run")

    assert GeomodelStore().record() == good  # what was installed stays installed, and usable
    assert GeomodelStore().load().sha256 == good.model_sha256
    dialog.read()
    settle(qtbot, dialog)
    assert dialog.state.text().startswith("Installed: ") and dialog.species.text() == "13 species"


def test_without_a_bird_model_the_range_model_is_still_shown(qtbot, range_files):
    model, labels = range_files
    GeomodelStore().install(model, labels, origin="import", source=str(model))
    window = open_window(qtbot)  # no bird model installed: the setup page
    dialog = open_dialog(qtbot, window)
    assert dialog.species.text() == "13 species"
    assert dialog.matched.text() == "No bird model is loaded yet: its species are matched once it is."


@pytest.fixture
def geomodel_hub(tmp_path, monkeypatch):
    """A loopback hub serving a range model as wide as the published label list, as the published
    file; padded (an ONNX doc string) to about 2 MB, so a slow line gives several progress reports."""
    from hub_server import FakeHub

    model_path, _ = write_geomodel(tmp_path / "published", default_spec([tuple(label) for label in published_labels()]))
    padded = onnx.load(model_path)
    padded.doc_string = "birdid test padding " * 100_000
    onnx.save(padded, model_path)
    server = FakeHub(PUBLISHED_GEOMODEL.repo_id, PUBLISHED_GEOMODEL.filename, model_path.read_bytes()).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.stop()


def test_download_shows_progress_can_be_cancelled_and_continues_where_it_stopped(window, qtbot, geomodel_hub):
    dialog = open_dialog(qtbot, window)
    panel = dialog.panel
    geomodel_hub.faults.seconds_per_64k = 0.05  # about 1.6 s for the whole file
    dialog.download_button.click()
    assert panel.progress_bar.isVisible() and panel.cancel_button.isVisible()
    assert not dialog.download_button.isEnabled() and not dialog.import_button.isEnabled()
    qtbot.waitUntil(lambda: panel.progress_bar.value() > 0, timeout=WINDOW_WAIT_MS)
    with qtbot.waitSignal(panel.job.cancelled, timeout=WINDOW_WAIT_MS):
        panel.cancel_button.click()
    settle(qtbot, dialog)
    assert panel.message.text() == ("Cancelled. Nothing was installed; the next Download continues where this "
                                    "one stopped.")
    assert not GeomodelStore().installed() and not panel.progress_bar.isVisible()
    assert dialog.download_button.isEnabled()

    geomodel_hub.faults.seconds_per_64k = 0.01
    values = []
    panel.progress_bar.valueChanged.connect(values.append)
    requests_before = len(geomodel_hub.requests)
    with qtbot.waitSignal(window.engine.range_prior_changed, timeout=WINDOW_WAIT_MS):
        dialog.download_button.click()
    settle(qtbot, dialog)
    gets = [r for r in geomodel_hub.requests[requests_before:] if r.method == "GET"]
    assert gets and gets[0].range is not None and gets[0].range != "bytes=0-"  # resumed, not begun again
    assert values and values[-1] == 1000
    assert panel.message.text() == "The range model is installed (12,012 species)."
    record = GeomodelStore().record()
    assert record.origin == "download" and dialog.source.text() == f"downloaded from {record.source}"
    assert dialog.species.text() == "12,012 species"
    assert dialog.matched.text().startswith("10 of 10 species matched: ")
    assert window.range_prior_state.sha256 == geomodel_hub.sha256


def test_about_birdid_names_the_range_model_and_the_place_names(qtbot, monkeypatch):
    window = open_window(qtbot)
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    help_menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&Help")
    next(action for action in help_menu.actions() if action.text().startswith("&About")).trigger()
    assert html.escape(ATTRIBUTION) in shown[0] and "Place names: GeoNames, CC BY 4.0." in shown[0]
