"""Seeing what the model sees, in the window: every view comes from the maps of the one
identification pass; only a class-activation map asks the engine for a (gradient) pass."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRect, QRectF
from PySide6.QtWidgets import QFileDialog

from birdid_app.core.insight import trust
from birdid_app.core.model import inference
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import Settings, load_settings, save_settings
from conftest import identified, open_ready_window

WAIT_MS = 30_000


@pytest.fixture
def forward_passes(monkeypatch):
    """Counts identification passes the engine makes. The mirror-and-crops check that follows an
    answer (core/insight/trust.py) only grades it, whenever the engine is free: it is not counted."""
    calls = []
    original = inference.Classifier.identify_images

    def counted(self, *args, **kwargs):
        if list(args[1:2]) != [list(trust.TTA_VIEWS)]:
            calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(inference.Classifier, "identify_images", counted)
    return calls


@pytest.fixture
def window(qtbot, small_model_file):
    ModelStore().import_file(small_model_file)
    return open_ready_window(qtbot)


def overlay_size(window):
    pixmap = window.photo_view.overlay_item().pixmap()
    return None if pixmap.isNull() else (pixmap.width(), pixmap.height())


def wait_for_overlay(qtbot, window, size):
    qtbot.waitUntil(lambda: window.photo_view.overlay_item().isVisible() and overlay_size(window) == size, timeout=WAIT_MS)


def test_stages_modes_channels_opacity_and_species_need_no_new_identification(
    window, qtbot, photo_dir, forward_passes
):
    identified(qtbot, window, [photo_dir / "robin.png"])
    passes = len(forward_passes)
    panel = window.overlay
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("mean"))
    panel.show_box.setChecked(True)
    for stage, cells in [(1, 32), (2, 16), (3, 8), (4, 4)]:  # a 128-pixel input: strides 4 to 32
        panel.stage_box.setCurrentIndex(stage - 1)
        wait_for_overlay(qtbot, window, (cells, cells))

    panel.mode_box.setCurrentIndex(panel.mode_box.findData("pca"))
    qtbot.waitUntil(lambda: window.overlay_controller.values is not None and window.overlay_controller.values.ndim == 3, timeout=WAIT_MS)

    panel.stage_box.setCurrentIndex(1)
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("channel"))
    qtbot.waitUntil(lambda: "1st strongest of 64" in panel.channel_label.text(), timeout=WAIT_MS)
    first = panel.channel_label.text()
    panel.next_channel.click()
    qtbot.waitUntil(lambda: "2nd strongest of 64" in panel.channel_label.text(), timeout=WAIT_MS)
    assert panel.channel_label.text().split(" ")[1] != first.split(" ")[1]  # another channel

    panel.opacity_slider.setValue(25)
    assert window.photo_view.overlay_item().opacity() == pytest.approx(0.25)
    panel.colormap_box.setCurrentText("magma")

    # A class-activation map for the second-ranked species: a gradient pass, not an identification.
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("cam"))
    with qtbot.waitSignal(window.engine.explained, timeout=WAIT_MS):
        panel.species_box.setCurrentIndex(1)
    second = window.session.current.whole.ranked[1].name
    assert panel.species_box.currentText().startswith(f"2. {second}")
    wait_for_overlay(qtbot, window, (16, 16))
    cam = window.overlay_controller.values
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    assert "Grad-CAM" in panel.help.text() and "not what makes the species" in panel.help.text()
    assert len(forward_passes) == passes


def test_the_overlay_sits_on_the_selected_region(window, qtbot, photo_dir):
    identified(qtbot, window, [photo_dir / "heron.jpg"])
    window.overlay.show_box.setChecked(True)
    window.photo_view.region_selected.emit(QRect(200, 100, 640, 480))
    qtbot.waitUntil(lambda: window.session.current.region_outcome is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.photo_view.overlay_item().isVisible(), timeout=WAIT_MS)
    assert window.photo_view.overlay_item().sceneBoundingRect() == QRectF(200, 100, 640, 480)


def test_export_overlay_and_blended(window, qtbot, photo_dir, tmp_path, monkeypatch):
    identified(qtbot, window, [photo_dir / "heron.jpg"])  # 1600 x 1200
    window.overlay.show_box.setChecked(True)
    qtbot.waitUntil(lambda: window.overlay_controller.values is not None, timeout=WAIT_MS)
    for blended, name in [(True, "blended.png"), (False, "alone.png")]:
        target = tmp_path / name
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, t=target, **k: (str(t), ""))
        (window.overlay.export_blended if blended else window.overlay.export_overlay).click()
        qtbot.waitUntil(lambda t=target: window.statusBar().currentMessage() == f"Saved {t}", timeout=WAIT_MS)
        with Image.open(target) as picture:
            assert picture.size == (1600, 1200)
            assert picture.mode == ("RGB" if blended else "RGBA")


def test_maps_are_kept_for_the_photo_on_screen_only_and_choices_are_remembered(window, qtbot, photo_dir):
    identified(qtbot, window, [photo_dir / "robin.png", photo_dir / "heron.jpg"])
    first = window.session.current
    assert first.whole.identification.stage_maps
    window.overlay.stage_box.setCurrentIndex(1)
    window.overlay.mode_box.setCurrentIndex(window.overlay.mode_box.findData("mean"))
    window.overlay.colormap_box.setCurrentText("grey")
    window.strip.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=WAIT_MS)
    assert first.whole.identification.stage_maps == ()
    assert first.whole.ranked  # the answer itself is kept
    window.close()
    remembered = load_settings()
    assert (remembered.overlay_stage, remembered.overlay_mode, remembered.overlay_colormap) == (2, "mean", "grey")


def test_the_explain_command_writes_the_windows_blended_picture(window, qtbot, photo_dir, small_model_file, tmp_path, monkeypatch):
    from birdid_app.cli import main

    photo = photo_dir / "blue-tit.jpg"
    # "auto" is measured beside the answers on a first start and the engine then switches to the
    # mode it picks: let that happen first, so the window draws in the precision named below.
    qtbot.waitUntil(lambda: "picked automatically" in window.model_status.toolTip(), timeout=90_000)
    identified(qtbot, window, [photo])
    panel = window.overlay
    panel.stage_box.setCurrentIndex(1)
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("pca"))
    panel.show_box.setChecked(True)
    qtbot.waitUntil(lambda: window.overlay_controller.values is not None and window.overlay_controller.values.shape[:2] == (16, 16), timeout=WAIT_MS)
    from_window = tmp_path / "window.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(from_window), ""))
    panel.export_blended.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == f"Saved {from_window}", timeout=WAIT_MS)

    from_command = tmp_path / "command.png"
    # The same device and precision as the window's engine chose ("auto" is measured, and a
    # busy machine can make the two measurements choose differently).
    loaded = window.loaded_model
    args = ["explain", str(photo), "--model", str(small_model_file), "--stage", "2", "--mode", "pca",
            "--device", loaded.device.split(":")[0], "--precision", loaded.precision]
    assert main([*args, "--opacity", "0.6", "--max-size", "0", "--out", str(from_command)]) == 0
    with Image.open(from_window) as a, Image.open(from_command) as b:
        assert a.size == b.size == (640, 480)
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_turning_the_overlay_on_for_a_photo_gone_back_to_draws_its_maps(qtbot, small_model_file, photo_dir):
    """Issue 25 item 3: the maps of a photo not on screen are let go; going back to it with the
    overlay off shows the kept answer, and turning the overlay on then must fetch the maps again
    rather than silently draw nothing. (A fixed precision: the "auto" trial's switch identifies
    the photo on screen again, which would hide the bug.)"""
    save_settings(Settings(device="cpu", precision="fp32"))
    ModelStore().import_file(small_model_file)
    window = open_ready_window(qtbot)
    identified(qtbot, window, [photo_dir / "robin.png", photo_dir / "heron.jpg"])
    window.strip.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.session.current.outcome() is not None, timeout=WAIT_MS)
    window.strip.setCurrentRow(0)
    qtbot.waitUntil(lambda: window.photo_view.photo_size() is not None, timeout=WAIT_MS)
    assert window.session.current.whole.identification.stage_maps == ()  # let go while away
    window.overlay.mode_box.setCurrentIndex(window.overlay.mode_box.findData("mean"))
    window.overlay.show_box.setChecked(True)
    qtbot.waitUntil(lambda: window.photo_view.overlay_item().isVisible(), timeout=WAIT_MS)
    assert window.overlay_controller.values is not None
