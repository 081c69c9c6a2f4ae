"""Settings: the JSON file on disk, read forgivingly and written atomically, and the dialog that
edits them, driven through its widgets as a person would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel

from birdid_app.core import settings as settings_module
from birdid_app.core.paths import config_dir
from birdid_app.core.settings import (
    MAX_RECENT,
    PRECISIONS,
    Settings,
    SettingsError,
    add_recent_file,
    load_settings,
    max_cpu_threads,
    save_settings,
    settings_path,
)
from birdid_app.gui.settings_dialog import SettingsDialog

ENGINE_DEVICES = [("auto", "Automatic"), ("cpu", "CPU"), ("cuda:0", "NVIDIA H100 (cuda:0)")]


def write_settings_file(content: str | bytes) -> None:
    config_dir().mkdir(parents=True, exist_ok=True)
    settings_path().write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


# --- the file --------------------------------------------------------------------------------


def test_no_file_gives_the_defaults():
    assert not settings_path().exists()
    assert load_settings() == Settings(device="auto", precision="auto", top_k=5, cpu_threads=0, recent_files=[])


def test_saved_settings_load_back_from_the_config_folder(isolated_user_folders):
    chosen = Settings(device="cuda:1", precision="bf16", top_k=12, cpu_threads=1, recent_files=["/photos/a.jpg"])
    save_settings(chosen)

    expected_file = isolated_user_folders / "config" / "settings.json"
    assert settings_path() == config_dir() / "settings.json" == expected_file
    assert json.loads(expected_file.read_text(encoding="utf-8")) == asdict(chosen)
    assert load_settings() == chosen
    assert load_settings(expected_file) == chosen


def test_saving_creates_the_folder_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "er" / "settings.json"
    save_settings(Settings(top_k=7), target)
    save_settings(Settings(top_k=8), target)  # replaces the file that is now there
    assert load_settings(target).top_k == 8
    assert [p.name for p in target.parent.iterdir()] == ["settings.json"]


def test_a_folder_that_cannot_be_made_is_reported_as_a_settings_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SettingsError) as caught:
        save_settings(Settings(), blocker / "settings.json")
    assert caught.value.path == blocker / "settings.json"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "settings.json"
    save_settings(Settings(top_k=9), target)

    real_fdopen = os.fdopen

    def fdopen_onto_a_full_disk(handle, *args, **kwargs):
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, handle)
        os.close(full)
        return real_fdopen(handle, *args, **kwargs)

    monkeypatch.setattr(settings_module.os, "fdopen", fdopen_onto_a_full_disk)
    with pytest.raises(SettingsError, match="cannot be saved"):
        save_settings(Settings(top_k=40), target)
    monkeypatch.undo()

    assert load_settings(target).top_k == 9
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        '["a", "list"]',
        "null",
        "42",
        '{"top_k": 3',
        b'{"top_k": "\xff"}',
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["not-json", "empty", "list", "null", "number", "cut-short", "not-utf8", "nested-too-deep"],
)
def test_an_unreadable_file_gives_the_defaults_without_raising(content):
    write_settings_file(content)
    assert load_settings() == Settings()


def test_a_settings_path_that_is_a_folder_gives_the_defaults():
    settings_path().mkdir(parents=True)
    assert load_settings() == Settings()


def test_one_bad_field_falls_back_alone_and_the_others_are_kept():
    good = {"device": "cuda:0", "cpu_threads": 1, "recent_files": ["/b.jpg", "/a.jpg"]}
    write_settings_file(json.dumps(good | {"top_k": "lots", "precision": "fp8", "colour": "blue"}))
    assert load_settings() == Settings(
        device="cuda:0", precision="auto", top_k=5, cpu_threads=1, recent_files=["/b.jpg", "/a.jpg"]
    )


@pytest.mark.parametrize(
    ("stored", "loaded"),
    [
        ({"top_k": 0}, {"top_k": 1}),
        ({"top_k": 500}, {"top_k": 50}),
        ({"top_k": True}, {"top_k": 5}),  # JSON true is not a number of species
        ({"top_k": 7.5}, {"top_k": 5}),
        ({"top_k": None}, {"top_k": 5}),
        ({"cpu_threads": -3}, {"cpu_threads": 0}),
        ({"cpu_threads": 10_000}, {"cpu_threads": max_cpu_threads()}),
        ({"cpu_threads": "4"}, {"cpu_threads": 0}),
        ({"precision": "FP16"}, {"precision": "auto"}),
        ({"precision": ["fp16"]}, {"precision": "auto"}),
        ({"device": "cuda"}, {"device": "cuda"}),
        ({"device": "mps"}, {"device": "mps"}),
        ({"device": "cuda:12"}, {"device": "cuda:12"}),
        ({"device": "cuda:-1"}, {"device": "auto"}),
        ({"device": "cuda:"}, {"device": "auto"}),
        ({"device": "cuda:١"}, {"device": "auto"}),  # an Arabic-Indic one is a digit to \d, not to torch
        ({"device": "tpu"}, {"device": "auto"}),
        ({"device": 0}, {"device": "auto"}),
        ({"recent_files": "/a.jpg"}, {"recent_files": []}),
        ({"recent_files": ["/a.jpg", 3, "", "/a.jpg", "/b.jpg"]}, {"recent_files": ["/a.jpg", "/b.jpg"]}),
        ({"recent_files": [f"/{n}.jpg" for n in range(15)]}, {"recent_files": [f"/{n}.jpg" for n in range(10)]}),
    ],
)
def test_out_of_range_values_are_clamped_or_reset(stored, loaded):
    write_settings_file(json.dumps(stored))
    assert load_settings() == Settings(**loaded)


def test_every_precision_is_kept():
    for precision in PRECISIONS:
        save_settings(Settings(precision=precision))
        assert load_settings().precision == precision


def test_cpu_threads_are_clamped_to_this_computer(monkeypatch):
    write_settings_file(json.dumps({"cpu_threads": 64}))
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 16)
    assert load_settings().cpu_threads == 16
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: None)  # the platform cannot tell
    assert load_settings().cpu_threads == 1


# --- recent files ----------------------------------------------------------------------------


def test_a_recent_file_goes_to_the_front():
    settings = Settings()
    for name in ("/a.jpg", "/b.jpg", "/c.jpg"):
        add_recent_file(settings, name)
    assert settings.recent_files == ["/c.jpg", "/b.jpg", "/a.jpg"]


def test_opening_a_recent_file_again_moves_it_to_the_front_once():
    settings = Settings(recent_files=["/c.jpg", "/b.jpg", "/a.jpg"])
    add_recent_file(settings, "/a.jpg")
    assert settings.recent_files == ["/a.jpg", "/c.jpg", "/b.jpg"]
    add_recent_file(settings, "/a.jpg")
    assert settings.recent_files == ["/a.jpg", "/c.jpg", "/b.jpg"]


def test_recent_files_keep_only_the_newest():
    settings = Settings()
    for n in range(MAX_RECENT + 5):
        add_recent_file(settings, f"/{n}.jpg")
    assert MAX_RECENT == 10
    assert settings.recent_files == [f"/{n}.jpg" for n in range(MAX_RECENT + 4, 4, -1)]


def test_recent_files_survive_a_save():
    settings = Settings()
    add_recent_file(settings, "/photos/wren.heic")
    add_recent_file(settings, "/photos/robin.jpg")
    save_settings(settings)
    assert load_settings().recent_files == ["/photos/robin.jpg", "/photos/wren.heic"]


# --- no torch before the window --------------------------------------------------------------


def test_importing_settings_loads_no_torch():
    code = "import sys, birdid_app.core.settings\nprint('torch' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# --- the dialog ------------------------------------------------------------------------------


@pytest.fixture
def open_dialog(qtbot):
    def open_with(settings: Settings, devices: list[tuple[str, str]] | None = None) -> SettingsDialog:
        dialog = SettingsDialog(settings, devices)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        return dialog

    return open_with


def device_values(dialog: SettingsDialog) -> list[str]:
    return [dialog.device_box.itemData(i) for i in range(dialog.device_box.count())]


def press(qtbot, dialog: SettingsDialog, which: QDialogButtonBox.StandardButton) -> None:
    qtbot.mouseClick(dialog.buttons.button(which), Qt.MouseButton.LeftButton)


def test_the_dialog_shows_the_current_settings(open_dialog):
    current = Settings(device="cpu", precision="fp16", top_k=9, cpu_threads=1, recent_files=["/a.jpg"])
    dialog = open_dialog(current, ENGINE_DEVICES)
    assert dialog.device_box.currentData() == "cpu"
    assert dialog.precision_box.currentData() == "fp16"
    assert dialog.top_k_box.value() == 9
    assert dialog.threads_box.value() == 1
    assert dialog.settings() == current


def test_values_chosen_in_the_widgets_come_back_after_ok(qtbot, open_dialog):
    current = Settings(recent_files=["/b.jpg", "/a.jpg"])
    dialog = open_dialog(current, ENGINE_DEVICES)

    dialog.device_box.setCurrentIndex(device_values(dialog).index("cuda:0"))
    dialog.precision_box.setCurrentIndex(dialog.precision_box.findData("bf16"))
    dialog.top_k_box.setValue(20)
    dialog.threads_box.setValue(max_cpu_threads())
    with qtbot.waitSignal(dialog.accepted):
        press(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)

    assert dialog.result() == QDialog.DialogCode.Accepted
    chosen = dialog.settings()
    assert chosen == Settings(
        device="cuda:0", precision="bf16", top_k=20, cpu_threads=max_cpu_threads(), recent_files=["/b.jpg", "/a.jpg"]
    )
    assert chosen is not current and chosen.recent_files is not current.recent_files
    assert current == Settings(recent_files=["/b.jpg", "/a.jpg"])  # the dialog never edits its input


def test_values_typed_on_the_keyboard_come_back_after_ok(qtbot, open_dialog):
    dialog = open_dialog(Settings(), ENGINE_DEVICES)

    dialog.top_k_box.setFocus()
    dialog.top_k_box.selectAll()
    qtbot.keyClicks(dialog.top_k_box, "12")
    dialog.precision_box.setFocus()
    qtbot.keyClick(dialog.precision_box, Qt.Key.Key_Down)  # Automatic -> fp32
    dialog.threads_box.setFocus()
    qtbot.keyClick(dialog.threads_box, Qt.Key.Key_Up)  # Automatic -> 1 thread
    with qtbot.waitSignal(dialog.accepted):
        qtbot.keyClick(dialog.threads_box, Qt.Key.Key_Return)

    assert dialog.settings() == Settings(precision="fp32", top_k=12, cpu_threads=1)


def test_cancel_changes_nothing(qtbot, open_dialog):
    current = Settings(device="cpu", precision="fp32", top_k=3, cpu_threads=1, recent_files=["/a.jpg"])
    dialog = open_dialog(current, ENGINE_DEVICES)
    dialog.device_box.setCurrentIndex(device_values(dialog).index("cuda:0"))
    dialog.top_k_box.setValue(40)
    with qtbot.waitSignal(dialog.rejected):
        press(qtbot, dialog, QDialogButtonBox.StandardButton.Cancel)

    assert dialog.result() == QDialog.DialogCode.Rejected
    assert current == Settings(device="cpu", precision="fp32", top_k=3, cpu_threads=1, recent_files=["/a.jpg"])
    assert not settings_path().exists()  # the dialog never saves; its caller does


def test_a_saved_device_the_engine_did_not_list_is_kept(qtbot, open_dialog):
    dialog = open_dialog(Settings(device="cuda:3"), ENGINE_DEVICES)
    assert device_values(dialog) == ["auto", "cpu", "cuda:0", "cuda:3"]
    assert dialog.device_box.currentData() == "cuda:3"
    assert "cuda:3" in dialog.device_box.currentText()
    press(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    assert dialog.settings().device == "cuda:3"


def test_before_the_engine_loads_there_are_automatic_cpu_and_the_saved_device(open_dialog):
    assert device_values(open_dialog(Settings())) == ["auto", "cpu"]
    assert device_values(open_dialog(Settings(device="cpu"))) == ["auto", "cpu"]
    dialog = open_dialog(Settings(device="mps"))
    assert device_values(dialog) == ["auto", "cpu", "mps"]
    assert dialog.device_box.currentData() == "mps"
    assert dialog.settings().device == "mps"


def test_the_thread_count_reads_automatic_at_zero_and_stops_at_the_cpu_count(open_dialog):
    dialog = open_dialog(Settings())
    assert dialog.threads_box.text() == "Automatic"
    assert (dialog.threads_box.minimum(), dialog.threads_box.maximum()) == (0, max_cpu_threads())
    assert (dialog.top_k_box.minimum(), dialog.top_k_box.maximum()) == (1, 50)


def test_every_precision_is_offered_with_an_explanation(open_dialog):
    dialog = open_dialog(Settings())
    box = dialog.precision_box
    assert [box.itemData(i) for i in range(box.count())] == list(PRECISIONS)
    for i in range(box.count()):
        assert box.itemData(i, Qt.ItemDataRole.ToolTipRole)


def test_every_setting_has_a_name_and_a_label_with_a_shortcut(open_dialog):
    dialog = open_dialog(Settings())
    widgets = [dialog.device_box, dialog.precision_box, dialog.top_k_box, dialog.threads_box]
    labels = {label.buddy(): label.text() for label in dialog.findChildren(QLabel) if label.buddy() is not None}
    for widget in widgets:
        assert widget.accessibleName()
        assert "&" in labels[widget]
    mnemonics = [labels[widget].lower().split("&")[1][0] for widget in widgets]
    assert len(set(mnemonics)) == len(mnemonics)


def test_measure_again_forgets_the_kept_precision_trial_and_asks_for_a_reload(qtbot, open_dialog, small_model_file, monkeypatch):
    import torch

    from birdid_app.core.model import precision
    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.model_store import ModelStore

    monkeypatch.setattr(precision, "candidate_precisions", lambda device, native_bf16: ["fp32", "bf16"])
    model = ModelStore().import_file(small_model_file)
    precision.choose_precision(read_checkpoint(model.path), torch.device("cpu"), native_bf16=True)
    assert len(precision.kept_choices(model.path)) == 1

    dialog = open_dialog(Settings(precision="fp32"))
    assert not dialog.measure_button.isEnabled()  # nothing is measured for a precision asked for
    dialog.precision_box.setCurrentIndex(dialog.precision_box.findData("auto"))
    assert dialog.measure_button.isEnabled()
    with qtbot.waitSignal(dialog.measure_again, timeout=1000):
        qtbot.mouseClick(dialog.measure_button, Qt.MouseButton.LeftButton)
    assert precision.kept_choices(model.path) == []
    assert not dialog.measure_button.isEnabled() and dialog.measure_button.text() == "Measured again as the model reloads"
    assert dialog.settings().precision == "auto"


def test_a_label_shortcut_moves_the_focus_to_its_setting(qtbot, open_dialog):
    dialog = open_dialog(Settings())
    with qtbot.waitActive(dialog):
        dialog.activateWindow()
    qtbot.keyClick(dialog, Qt.Key.Key_T, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: dialog.threads_box.hasFocus())
    qtbot.keyClick(dialog, Qt.Key.Key_P, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: dialog.precision_box.hasFocus())


def test_overlay_choices_round_trip_and_bad_ones_fall_back(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(Settings(overlay_stage=2, overlay_mode="cam", overlay_colormap="magma", overlay_opacity=0.25), path)
    loaded = load_settings(path)
    assert (loaded.overlay_stage, loaded.overlay_mode, loaded.overlay_colormap, loaded.overlay_opacity) == (
        2, "cam", "magma", 0.25,
    )
    path.write_text('{"overlay_stage": 9, "overlay_mode": "x", "overlay_colormap": "jet", "overlay_opacity": 3}')
    loaded = load_settings(path)
    assert (loaded.overlay_stage, loaded.overlay_mode, loaded.overlay_colormap, loaded.overlay_opacity) == (
        3, "pca", "viridis", 1.0,
    )


def test_the_photo_editor_keyword_root_and_embedding_come_back_after_ok_and_survive_a_restart(qtbot, open_dialog):
    dialog = open_dialog(Settings(), ENGINE_DEVICES)
    assert dialog.editor_box.currentData() == "lightroom" and dialog.keyword_root_edit.text() == "Birds"
    dialog.editor_box.setCurrentIndex(dialog.editor_box.findData("darktable"))
    dialog.keyword_root_edit.setText("|Animals|Birds|")
    dialog.embed_box.setChecked(True)
    with qtbot.waitSignal(dialog.accepted):
        press(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    chosen = dialog.settings()
    assert (chosen.sidecar_style, chosen.keyword_root, chosen.embed_in_jpeg) == ("darktable", "Animals|Birds", True)
    save_settings(chosen)
    assert load_settings() == chosen
