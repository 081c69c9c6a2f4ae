"""Where and when in the window, driven for real: a real range model (ONNX, known values per label)
installed through the CLI, a real look-alike checkpoint, real photos with EXIF GPS and dates; the
window's answers equal `birdid identify --json`'s in both rankings."""

from __future__ import annotations

import datetime
import json
from dataclasses import replace

import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from birdid_app.cli import main
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.places.geomodel import ATTRIBUTION, GeomodelStore
from birdid_app.core.places.place import birdnet_week
from birdid_app.core.settings import Settings, load_settings, save_settings
from birdid_app.gui.results_panel import (
    INSTALL_LINE,
    UNAVAILABLE_LINE,
    UNKNOWN_LINE,
    UNKNOWN_PASTED_LINE,
    SpeciesListDialog,
)
from birdid_app.gui.settings_dialog import SettingsDialog
from conftest import LOOKALIKES, open_ready_window
from geomodel_files import default_spec, photo_taken_at, write_geomodel

WAIT_MS = 30_000
# The test range model has the Willow Tit as a northern bird and no range for the Kingfisher.
BY_PLACE_IN_SPAIN = ["Marsh Tit", "Willow Tit", "Common Kingfisher"]


@pytest.fixture(scope="module")
def range_model(tmp_path_factory):
    return write_geomodel(tmp_path_factory.mktemp("geomodel"), default_spec())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("where")
    return {
        "andalusia": photo_taken_at(folder / "andalusia.jpg", latitude=37.0, longitude=-4.0, taken="2024:06:14 08:30:00"),
        "bare": photo_taken_at(folder / "bare.jpg", latitude=None, longitude=None, taken=None),
        # A folder of a trip: one photo with the camera's GPS (the Netherlands in January), one without.
        "holland": photo_taken_at(folder / "trip" / "holland.jpg", latitude=52.1, longitude=5.1,
                                  taken="2024:01:03 10:00:00", seed=1),
        "trip bare": photo_taken_at(folder / "trip" / "no-gps.jpg", latitude=None, longitude=None, taken=None, seed=2),
    }


def install_range_model(range_model) -> None:
    model, labels = range_model
    assert main(["geomodel", "import", str(model), str(labels)]) == 0


def ready_window(qtbot):
    """The window with its model loaded, and its range prior said (loaded, absent or failed)."""
    window = open_ready_window(qtbot)
    qtbot.waitUntil(lambda: window.range_prior_state is not None, timeout=WAIT_MS)
    return window


@pytest.fixture
def window(qtbot, lookalike_model, range_model):
    save_settings(Settings(device="cpu", precision="fp32"))  # fp32 on the CPU, as the CLI below
    install_range_model(range_model)
    ModelStore().import_file(lookalike_model)
    return ready_window(qtbot)


def answered(qtbot, window, path):
    window.add_photos([path])
    entry = window.session.current
    qtbot.waitUntil(lambda: entry.outcome() is not None and window.session.pending(entry) is None, timeout=WAIT_MS)
    return entry


def shown(window) -> list[str]:
    return [s.name for s in window.results.ranked[:3]]


def identify_json(capsys, lookalike_model, path) -> dict:
    capsys.readouterr()
    code = main(["identify", "--model", str(lookalike_model), "--device", "cpu", "--precision", "fp32", "--json",
                 str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (record,) = json.loads(captured.out)
    return record


def assert_same_as_cli(window, species: list[dict]) -> None:
    """The window's rows are the CLI's species, to 0.1 percentage points."""
    assert [s.name for s in window.results.ranked] == [s["name"] for s in species]
    for row, theirs in zip(window.results.ranked, species, strict=True):
        assert row.probability == pytest.approx(theirs["probability"], abs=0.001)


def test_a_photo_with_gps_is_ranked_by_where_and_when_as_the_cli_ranks_it(window, qtbot, photos, lookalike_model,
                                                                         capsys):
    entry = answered(qtbot, window, photos["andalusia"])
    panel = window.results
    line = panel.place_line.text()
    week = birdnet_week(datetime.date(2024, 6, 14))
    assert line == f"Alhama de Granada, Andalusia, Spain · June (week {week}) · from the photo's GPS"
    assert ATTRIBUTION in panel.place_line.toolTip() and panel.attribution.isVisible()
    assert panel.rank_switch.isVisible() and panel.rank_switch.isChecked()
    # In southern Spain in June, the Marsh Tit that lives there comes first.
    assert shown(window) == BY_PLACE_IN_SPAIN and panel.headline.text() == "Marsh Tit"
    assert "expected here in June: 0.60" in panel.row_names[0].text()
    assert "expected here in June: 0.11" in panel.row_names[1].text()
    assert "no range data for this species" in panel.row_names[2].text()
    cli = identify_json(capsys, lookalike_model, photos["andalusia"])
    assert_same_as_cli(window, cli["species"])
    for row, theirs in zip(panel.ranked, cli["species"], strict=True):
        if theirs["expected_here"] is not None:
            assert f"{theirs['expected_here']:.2f}" in row.prior

    # Off: the picture's own ranking, each species still saying what the range model says; no new request.
    identified = []
    window.engine.identified.connect(identified.append)
    panel.rank_switch.click()
    assert window.session.pending(entry) is None
    assert shown(window) == LOOKALIKES and panel.headline.text() == "Perhaps Willow Tit"
    assert "expected here in June: 0.11" in panel.row_names[0].text()
    assert_same_as_cli(window, cli["species_by_picture"])
    assert panel.place_line.text() == line and window.settings.rank_by_place is False

    # Copy Result and All species follow the ranking shown, with where and when.
    window.copy_action.trigger()
    copied = QGuiApplication.clipboard().text()
    assert line in copied and "Ranked by the picture alone." in copied
    assert "Willow Tit  (expected here in June: 0.11)" in copied
    panel.show_all_species()
    dialog = next(d for d in panel.findChildren(SpeciesListDialog) if d.isVisible())
    assert line in dialog.heading.text() and dialog.visible_rows()[0].startswith("1. Willow Tit — 49.0%")
    dialog.close()
    assert identified == []

    # The switch is remembered by a new window.
    window.close()
    again = ready_window(qtbot)
    assert load_settings().rank_by_place is False and not again.results.rank_switch.isChecked()
    answered(qtbot, again, photos["andalusia"])
    assert shown(again) == LOOKALIKES
    again.results.rank_switch.click()
    assert shown(again) == BY_PLACE_IN_SPAIN and again.settings.rank_by_place is True


def test_a_photo_without_gps_is_unknown_until_a_home_place_is_set_in_settings(window, qtbot, photos):
    answered(qtbot, window, photos["bare"])
    panel = window.results
    assert panel.place_line.text() == UNKNOWN_LINE and not panel.rank_switch.isVisible()
    assert shown(window) == LOOKALIKES

    def type_home_place(text: str):
        def choose():
            dialog = QApplication.activeModalWidget()
            assert isinstance(dialog, SettingsDialog)
            dialog.home_edit.setText(text)
            ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
            if text:
                assert not ok.isEnabled()  # looked up on a worker: OK waits for it
                qtbot.waitUntil(lambda: dialog.home_found.text().startswith("Found"), timeout=WAIT_MS)
            assert ok.isEnabled()
            ok.click()

        QTimer.singleShot(0, choose)
        window.show_settings()

    type_home_place("36.5, -6.0")  # near Cádiz
    assert window.settings.home_place == pytest.approx([36.5, -6.0])
    assert load_settings().home_place == pytest.approx([36.5, -6.0])
    assert "Medina Sidonia" in load_settings().home_place_name
    assert window.engine.index_home_place == pytest.approx((36.5, -6.0))
    qtbot.waitUntil(lambda: "your home place" in panel.place_line.text(), timeout=WAIT_MS)
    assert "all year: no capture date" in panel.place_line.text()
    assert shown(window) == BY_PLACE_IN_SPAIN
    # A pasted picture, which has no file and so no GPS, is placed at home too.
    window.add_image(Image.open(photos["andalusia"]).convert("RGB"), "Pasted image")
    pasted = window.session.current
    qtbot.waitUntil(lambda: pasted.outcome() is not None, timeout=WAIT_MS)
    assert "your home place" in panel.place_line.text() and shown(window) == BY_PLACE_IN_SPAIN

    type_home_place("")  # an empty field clears it
    assert load_settings().home_place == [] and window.engine.index_home_place is None
    qtbot.waitUntil(lambda: panel.place_line.text() == UNKNOWN_PASTED_LINE, timeout=WAIT_MS)
    assert shown(window) == LOOKALIKES
    window.strip.setCurrentRow(0)  # the photo without GPS: asked again, as its home place is gone
    qtbot.waitUntil(lambda: panel.place_line.text() == UNKNOWN_LINE, timeout=WAIT_MS)


def set_place(qtbot, window, text: str | None, *, folder: bool = False) -> None:
    """Photo > Set Place: `text` set for the photo (or its folder), or None to clear."""
    window.place_action.trigger()
    dialog = window.place_dialog
    assert dialog.isVisible()
    (dialog.whole_folder if folder else dialog.this_photo).setChecked(True)
    with qtbot.waitSignal(window.library_service.writer.place_set, timeout=WAIT_MS):
        if text is None:
            dialog.clear_button.click()
        else:
            dialog.text.setText(text)
            qtbot.waitUntil(dialog.set_button.isEnabled, timeout=WAIT_MS)  # found on a worker
            assert dialog.found.text().startswith("Found")
            dialog.set_button.click()


def test_a_place_set_for_a_photo_or_its_folder_re_ranks_it(window, qtbot, photos, lookalike_model, capsys):
    answered(qtbot, window, photos["holland"])
    panel = window.results
    assert panel.place_line.text() == "Utrecht, Netherlands · January (week 1) · from the photo's GPS"
    assert shown(window) == LOOKALIKES  # the Willow Tit lives in the Netherlands: the picture's order stands

    set_place(qtbot, window, "33.5, -5.0")  # the Middle Atlas, before the photo's own GPS
    qtbot.waitUntil(lambda: "the place you set for this photo" in panel.place_line.text(), timeout=WAIT_MS)
    assert "Morocco · January (week 1)" in panel.place_line.text()
    assert "GPS position is not used" in panel.place_line.toolTip()
    # Out of its range the Willow Tit falls behind even the Kingfisher, which has no range to go by.
    assert shown(window) == ["Marsh Tit", "Common Kingfisher", "Willow Tit"]
    willow = panel.row_names[2].text()
    expected = default_spec().value("Willow Tit", 33.5, -5.0, 1)
    assert "⚠" in willow and f"unusual here in January ({expected:.2f})" in willow
    # The CLI reads the same place from the library, and ranks the same.
    assert_same_as_cli(window, identify_json(capsys, lookalike_model, photos["holland"])["species"])

    # A place for the whole folder serves its photo without GPS (the photo's own place stays first).
    set_place(qtbot, window, "Texel", folder=True)
    assert "Morocco" in panel.place_line.text()
    answered(qtbot, window, photos["trip bare"])
    assert "North Holland, Netherlands · all year: no capture date" in panel.place_line.text()  # Texel's town
    assert "the place you set for its folder" in panel.place_line.text()
    assert window.place_action.shortcut().toString() == "Ctrl+L"
    set_place(qtbot, window, None, folder=True)
    qtbot.waitUntil(lambda: panel.place_line.text() == UNKNOWN_LINE, timeout=WAIT_MS)


def test_a_damaged_range_model_is_a_notice_and_the_picture_still_answers(qtbot, lookalike_model, range_model, photos):
    save_settings(Settings(device="cpu", precision="fp32"))
    install_range_model(range_model)
    record = GeomodelStore().record()
    data = bytearray(record.model_path.read_bytes())
    data[-1] ^= 0xFF
    record.model_path.write_bytes(bytes(data))
    ModelStore().import_file(lookalike_model)
    window = ready_window(qtbot)
    assert window.loaded_model is not None  # the image model loaded all the same
    state = window.range_prior_state
    assert state.installed and state.sha256 is None and "changed since it was installed" in state.problem
    assert "picture alone" in window.statusBar().currentMessage()
    answered(qtbot, window, photos["andalusia"])
    panel = window.results
    assert panel.place_line.text() == UNAVAILABLE_LINE and state.problem in panel.place_line.toolTip()
    assert not panel.rank_switch.isVisible() and shown(window) == LOOKALIKES

    # The window carries on: the range model installed again, the range-model dialog's reload uses it.
    install_range_model(range_model)
    window.engine.reload_range_prior()
    qtbot.waitUntil(lambda: window.range_prior_state.sha256 is not None, timeout=WAIT_MS)
    assert window.range_prior_state.matched == 2 and window.range_prior_state.species == 3
    qtbot.waitUntil(lambda: panel.rank_switch.isVisible(), timeout=WAIT_MS)
    assert shown(window) == BY_PLACE_IN_SPAIN


def test_without_a_range_model_the_window_says_how_to_get_one(qtbot, lookalike_model, photos):
    save_settings(replace(Settings(device="cpu", precision="fp32"), home_place=[36.5, -6.0]))
    ModelStore().import_file(lookalike_model)
    window = ready_window(qtbot)
    assert not window.range_prior_state.installed and window.range_prior_state.problem is None
    answered(qtbot, window, photos["andalusia"])
    panel = window.results
    assert panel.place_line.text() == INSTALL_LINE and not panel.rank_switch.isVisible()
    assert not panel.attribution.isVisible() and shown(window) == LOOKALIKES
    assert window.session.current.outcome().place_answer is None


def test_the_windows_indexer_ranks_photos_indexed_before_the_range_model(qtbot, lookalike_model, range_model,
                                                                          photos):
    from birdid_app.core.library import Library, default_library_path

    save_settings(Settings(device="cpu", precision="fp32"))
    ModelStore().import_file(lookalike_model)
    folder = photos["andalusia"].parent
    assert main(["index", str(folder), "--device", "cpu", "--precision", "fp32"]) == 0
    with Library(default_library_path()) as library:
        andalusia = library.photo_by_path(photos["andalusia"])
        assert library.place_answer(andalusia.id) is None
    install_range_model(range_model)
    window = ready_window(qtbot)
    window.tabs.setCurrentWidget(window.library_view)
    qtbot.waitUntil(lambda: window.library_view.folders.count() == 1, timeout=WAIT_MS)
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        window.library_view.index_button.click()
    with Library(default_library_path()) as library:
        where, species = library.place_answer(andalusia.id)
    assert (where["source"], where["week"]) == ("photo", 22)
    assert [name for name, _, _ in species][:2] == ["Marsh Tit", "Willow Tit"]
