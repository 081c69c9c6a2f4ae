"""The window without a model: download with progress and cancel, import, and About the model."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtWidgets import QFileDialog

from birdid_app.core.model import model_store
from birdid_app.core.model.model_store import ModelStore, sha256_file
from birdid_app.gui.main_window import MainWindow
from birdid_app.gui.model_about import ModelAboutDialog
from conftest import open_window

JOB_TIMEOUT_MS = 30_000


def auto_precision_on_cpu(model_path) -> str:
    """What "auto" picked for this model on this machine's CPU (kept from the engine's trial):
    the window must say so."""
    import torch

    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.inference import cpu_has_native_bf16
    from birdid_app.core.model.precision import choose_precision

    choice = choose_precision(read_checkpoint(model_path), torch.device("cpu"), native_bf16=cpu_has_native_bf16())
    assert not choice.measured_now  # the engine's trial was kept, and is reused
    return choice.precision


@pytest.fixture
def window(qtbot):
    return open_window(qtbot)


def measured(qtbot, window) -> None:
    """Wait for "auto" to be measured beside the answers and switched to (or kept)."""
    qtbot.waitUntil(lambda: "picked automatically" in window.model_status.toolTip(), timeout=90_000)


def test_without_a_model_the_window_says_so_and_offers_both_ways(window):
    assert window.pages.currentWidget() is window.setup_page
    assert window.setup_page.title.text() == "No bird model is installed yet"
    installer = window.setup_page.installer
    assert installer.download_button.text() == "Download (195 MB)" and installer.download_button.isEnabled()
    assert installer.import_button.text() == "Import model file…" and installer.import_button.isEnabled()
    assert not installer.progress_bar.isVisible() and not installer.cancel_button.isVisible()
    assert not window.about_model_action.isEnabled()
    # Nothing is cut off: the wrapped explanation gets the height its width needs, buttons theirs.
    explanation = window.setup_page.explanation
    assert explanation.height() >= explanation.heightForWidth(explanation.width())
    for button in (installer.download_button, installer.import_button):
        assert button.height() >= button.sizeHint().height()


def test_download_shows_progress_and_the_app_becomes_ready(window, qtbot, hub):
    hub.faults.seconds_per_64k = 0.01  # about 0.7 s: several progress reports, 0.1 s apart
    installer = window.setup_page.installer
    values = []
    installer.progress_bar.valueChanged.connect(values.append)
    with qtbot.waitSignal(installer.installed, timeout=JOB_TIMEOUT_MS):
        installer.download_button.click()
        assert installer.progress_bar.isVisible() and installer.cancel_button.isVisible()
        assert not installer.download_button.isEnabled()
    qtbot.waitUntil(lambda: installer.job is None)
    assert window.pages.currentWidget() is window.workspace
    # The engine loads it without a restart, answers at once, and measures "auto" beside the answers.
    qtbot.waitUntil(lambda: "· cpu ·" in window.model_status.text(), timeout=JOB_TIMEOUT_MS)
    measured(qtbot, window)
    precision = auto_precision_on_cpu(ModelStore().active().path)
    expected = f"hiera_abswin_base_mim-intermediate-eu-common (verified) · cpu · {precision}"
    assert window.model_status.text() == expected
    assert values and values[-1] == 1000 and len(set(values)) > 3
    assert ModelStore().active().verified
    assert window.about_model_action.isEnabled() and not window.download_action.isEnabled()

    # The next start asks the network nothing.
    requests_before = len(hub.requests)
    next_start = MainWindow()
    qtbot.addWidget(next_start)
    assert next_start.pages.currentWidget() is next_start.workspace
    qtbot.waitUntil(lambda: "· cpu ·" in next_start.model_status.text(), timeout=JOB_TIMEOUT_MS)
    assert len(hub.requests) == requests_before


def test_cancel_during_download_installs_nothing(window, qtbot, hub):
    hub.faults.seconds_per_64k = 0.02  # about 1.5 s for the whole file
    installer = window.setup_page.installer
    installer.download_button.click()
    qtbot.waitUntil(lambda: installer.progress_bar.value() > 0, timeout=JOB_TIMEOUT_MS)
    with qtbot.waitSignal(installer.job.cancelled, timeout=JOB_TIMEOUT_MS):
        installer.cancel_button.click()
    qtbot.waitUntil(lambda: installer.job is None)
    assert "Cancelled. Nothing was installed" in installer.message.text()
    assert ModelStore().models() == []
    assert window.pages.currentWidget() is window.setup_page
    assert installer.download_button.isEnabled() and not installer.progress_bar.isVisible()


def test_a_failed_download_says_why_and_the_window_carries_on(window, qtbot, hub, small_model_file, monkeypatch):
    hub.faults.head_status = 500
    installer = window.setup_page.installer
    installer.download_button.click()
    qtbot.waitUntil(lambda: installer.job is None, timeout=JOB_TIMEOUT_MS)
    assert "had a server error (HTTP 500): try again later, or import the model file." in installer.message.text()
    assert installer.import_button.isEnabled()

    # The person imports the file instead, through the button and its file dialog.
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(small_model_file), ""))
    with qtbot.waitSignal(installer.installed, timeout=JOB_TIMEOUT_MS):
        installer.import_button.click()
    assert window.pages.currentWidget() is window.workspace


def test_importing_a_file_that_is_not_a_model_is_explained(window, qtbot, tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("shopping list")
    installer = window.setup_page.installer
    installer.import_file(bad)
    qtbot.waitUntil(lambda: installer.job is None, timeout=JOB_TIMEOUT_MS)
    assert installer.message.text() == f"{bad}: This is not a PyTorch model file."
    assert window.pages.currentWidget() is window.setup_page


def test_about_the_model_shows_name_source_classes_size_hash_and_place(window, qtbot, small_model_file, monkeypatch):
    published = dataclasses.replace(model_store.PUBLISHED_MODEL, sha256=sha256_file(small_model_file))
    monkeypatch.setattr(model_store, "PUBLISHED_MODEL", published)
    model = ModelStore().import_file(small_model_file)
    window.show_model_state()
    dialog = ModelAboutDialog(model, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: "species" in dialog.classes.text(), timeout=JOB_TIMEOUT_MS)
    assert dialog.name.text() == published.name
    assert dialog.source.text() == str(small_model_file)
    assert dialog.classes.text() == "10 species · input 128×128 pixels"
    assert dialog.file_size.text() == f"{small_model_file.stat().st_size / 1e6:.1f} MB"
    assert dialog.hash_state.text().startswith("SHA-256 matches the published model")
    assert dialog.location.text() == str(model.path)

    model.path.write_bytes(b"tampered")
    dialog.verify_button.click()
    qtbot.waitUntil(lambda: dialog.verify_button.isEnabled(), timeout=JOB_TIMEOUT_MS)
    assert "missing or changed since it was installed" in dialog.hash_state.text()


def test_an_imported_fine_tune_is_labelled_unverified(window, qtbot, small_model_file):
    model = ModelStore().import_file(small_model_file)  # not the published hash here
    window.show_model_state()
    qtbot.waitUntil(lambda: "· cpu ·" in window.model_status.text(), timeout=JOB_TIMEOUT_MS)
    measured(qtbot, window)
    expected = f"small-hiera (unverified, imported from {small_model_file}) · cpu · {auto_precision_on_cpu(model.path)}"
    assert window.model_status.text() == expected
    assert window.model_status.toolTip().startswith(f"Precision: {auto_precision_on_cpu(model.path)}, picked automatically")
    assert ModelAboutDialog(model, window).hash_state.text().endswith(f"unverified, imported from {small_model_file}")


def test_the_window_says_when_it_measures_the_fastest_precision(window, qtbot, small_model_file, monkeypatch):
    from birdid_app.core.model import inference

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)  # so there are two modes to compare
    model = ModelStore().import_file(small_model_file)
    before = ModelAboutDialog(model, window)
    qtbot.addWidget(before)
    assert before.precision.text().startswith("Not measured on this computer yet")
    # First the int8 copy (in a process of its own), then the trial, both beside the answers.
    with qtbot.waitSignals([window.engine.notice, window.engine.notice], timeout=90_000, order="strict",
                           check_params_cbs=[lambda m: m.startswith("Preparing the int8 copy of the model beside"),
                                             lambda m: m.startswith("Finding the fastest precision")]):
        window.show_model_state()
    qtbot.waitUntil(lambda: "· cpu ·" in window.model_status.text(), timeout=JOB_TIMEOUT_MS)
    measured(qtbot, window)
    # Once measured, a line says what runs now and why, and stays.
    reason = window.model_status.toolTip().removeprefix("Precision: ")
    assert window.statusBar().currentMessage().endswith(f"measured fastest on this computer ({reason}).")
    # About the model says it too, with where it was measured.
    about = ModelAboutDialog(model, window)
    qtbot.addWidget(about)
    assert about.precision.text().startswith(f"{reason} (cpu, ")


def test_measure_again_in_settings_reloads_the_model_and_measures(window, qtbot, small_model_file, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from birdid_app.core.model import inference, precision
    from birdid_app.gui.settings_dialog import SettingsDialog

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "candidate_precisions", lambda device, native_bf16: ["fp32", "bf16"])  # no int8
    ModelStore().import_file(small_model_file)
    with qtbot.waitSignal(window.engine.model_loaded, timeout=JOB_TIMEOUT_MS):
        window.show_model_state()  # measured once, and kept

    def press_measure_again_then_cancel():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, SettingsDialog)
        dialog.measure_button.click()
        dialog.reject()  # Cancel: the trial is forgotten all the same, so the model measures again

    QTimer.singleShot(0, press_measure_again_then_cancel)
    with qtbot.waitSignal(window.engine.notice, timeout=JOB_TIMEOUT_MS) as told:
        window.show_settings()
    assert told.args[0].startswith("Finding the fastest precision")
    qtbot.waitUntil(lambda: "picked automatically" in window.model_status.toolTip(), timeout=JOB_TIMEOUT_MS)
