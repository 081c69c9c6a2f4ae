"""The zoom on the bird and the how-far-to-trust panel, through the real window and its engine."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from birdid_app.cli import main
from birdid_app.core.library import Library, default_library_path
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import Settings, save_settings
from birdid_app.gui.engine import ZoomOutcome
from conftest import OTHER_SPECIES, RED_PATCH, RED_SPECIES, make_photo, open_ready_window

WAIT_MS = 30_000
LEFT = Qt.MouseButton.LeftButton
RED, OTHER = RED_SPECIES, OTHER_SPECIES
PATCH = RED_PATCH


def red_photo(path, box):
    image = Image.new("RGB", (1024, 768), (0, 90, 0))
    image.paste((255, 0, 0), box)
    image.save(path)
    return path


def ready_window(qtbot, model_file, **settings):
    """The window on `model_file`, in fp32 on the CPU (no precision trial), with `settings`."""
    save_settings(replace(Settings(device="cpu", precision="fp32"), **settings))
    ModelStore().import_file(model_file)
    return open_ready_window(qtbot)


def answered(qtbot, window, path):
    window.add_photos([path])
    qtbot.waitUntil(lambda: window.session.current is not None and window.session.current.outcome() is not None,
                    timeout=WAIT_MS)
    return window.session.current


def contains(rect, patch) -> bool:
    left, top, right, bottom = patch
    return rect.left() <= left and rect.top() <= top and rect.x() + rect.width() >= right and rect.y() + rect.height() >= bottom


def test_zoom_shows_both_answers_and_the_box_and_either_can_be_kept(qtbot, tmp_path, red_model_file):
    window = ready_window(qtbot, red_model_file)
    entry = answered(qtbot, window, red_photo(tmp_path / "far.png", PATCH))
    assert window.zoom_panel.isVisible() and window.zoom_panel.zoom_button.isVisible()
    assert entry.zoom is None  # off by default: offered, not run
    qtbot.mouseClick(window.zoom_panel.zoom_button, LEFT)
    qtbot.waitUntil(lambda: isinstance(entry.zoom, ZoomOutcome), timeout=WAIT_MS)
    box = window.photo_view.evidence_box()
    assert box is not None and contains(box, PATCH)
    assert f"Zoomed: <b>{RED}</b>" in window.zoom_panel.status.text()
    assert window.results.headline.text() == RED and "the whole photo" in window.results.detail.text()

    qtbot.mouseClick(window.zoom_panel.keep_button, LEFT)
    qtbot.waitUntil(lambda: "the zoom on the bird" in window.results.detail.text(), timeout=WAIT_MS)
    assert window.photo_view.region() == box and entry.region_outcome is entry.zoom.outcome
    assert window.zoom_panel.whole_button.isVisible() and "The whole photo said" in window.zoom_panel.status.text()

    qtbot.mouseClick(window.zoom_panel.whole_button, LEFT)
    qtbot.waitUntil(lambda: "the whole photo" in window.results.detail.text(), timeout=WAIT_MS)
    assert entry.region is None and window.photo_view.region() is None
    assert window.zoom_panel.keep_button.isVisible()  # the zoom is kept, to be taken again


def test_with_the_setting_every_photo_is_zoomed_and_one_with_nowhere_to_zoom_says_why(qtbot, tmp_path, red_model_file):
    window = ready_window(qtbot, red_model_file, zoom_every_photo=True)
    assert window.engine.index_zoom  # the window's indexer zooms too
    far = answered(qtbot, window, red_photo(tmp_path / "far.png", PATCH))
    qtbot.waitUntil(lambda: isinstance(far.zoom, ZoomOutcome), timeout=WAIT_MS)
    assert contains(window.photo_view.evidence_box(), PATCH)
    # Red everywhere: nowhere to zoom (core's tests give the reasons: fills the frame, no evidence).
    full = answered(qtbot, window, red_photo(tmp_path / "full.png", (0, 0, 1024, 768)))
    qtbot.waitUntil(lambda: isinstance(full.zoom, ZoomOutcome), timeout=WAIT_MS)
    assert full.zoom.box is None and window.zoom_panel.status.text() == full.zoom.reason
    assert window.photo_view.evidence_box() is None and not window.zoom_panel.keep_button.isVisible()


def test_the_trust_panel_shows_each_signal_without_holding_up_the_answer(qtbot, tmp_path, red_model_file):
    window = ready_window(qtbot, red_model_file)
    entry = answered(qtbot, window, red_photo(tmp_path / "corner.png", (0, 0, 60, 60)))
    assert window.results.headline.text() == RED  # the answer is there before the signals
    panel = window.trust_panel
    qtbot.waitUntil(lambda: panel.state("Mirror and crops") != "working", timeout=WAIT_MS)
    assert panel.state("Mirror and crops") == "disagrees"
    assert f"{RED} in 2 of 3; otherwise {OTHER} (1)" in panel.text("Mirror and crops")
    qtbot.waitUntil(lambda: panel.state("Your confirmed photos") != "working", timeout=WAIT_MS)
    assert panel.state("Your confirmed photos") == "unknown" and "no photo library" in panel.text("Your confirmed photos")
    assert panel.meanings["Unfamiliar photo"].text()  # what the score is and is not, always said
    assert None in entry.agreements


def test_the_trust_panel_reads_the_persons_labels_from_the_library(qtbot, tmp_path, small_model_file):
    folder = tmp_path / "photos"
    for i in range(32):
        make_photo(folder / f"p{i:02}.jpg", size=(160, 120), seed=i)
    common = ["--model", str(small_model_file), "--device", "cpu", "--precision", "fp32"]
    assert main(["index", str(folder), *common]) == 0  # the default library: the window's
    assert main(["label", str(folder / "p05.jpg"), "Grey Heron", "--model", str(small_model_file)]) == 0
    twin = tmp_path / "card" / "copy-of-p05.jpg"
    twin.parent.mkdir()
    twin.write_bytes((folder / "p05.jpg").read_bytes())
    window = ready_window(qtbot, small_model_file)
    answered(qtbot, window, twin)
    panel = window.trust_panel
    qtbot.waitUntil(lambda: panel.state("Your confirmed photos") not in ("working", None), timeout=WAIT_MS)
    text = panel.text("Your confirmed photos")
    assert "1 of your 1 nearest labelled photos are Grey Heron" in text and "nearest 1.00 alike" in text
    expected = "agrees" if window.results.ranked[0].name == "Grey Heron" else "disagrees"
    assert panel.state("Your confirmed photos") == expected
    qtbot.waitUntil(lambda: panel.state("Unfamiliar photo") not in ("working", None), timeout=WAIT_MS)
    assert panel.state("Unfamiliar photo") == "agrees" and "of your library's photos" in panel.text("Unfamiliar photo")


def test_with_the_setting_the_windows_indexer_keeps_the_answer_the_model_is_surer_of(
    qtbot, tmp_path, amount_model_file, monkeypatch, capsys
):
    folder = tmp_path / "garden"
    folder.mkdir()
    red_photo(folder / "far.png", PATCH)
    common = ["--model", str(amount_model_file), "--device", "cpu", "--precision", "fp32"]
    assert main(["identify", str(folder / "far.png"), "--zoom", "--json", *common]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    zoomed, whole = record["zoom"]["species"][0]["probability"], record["whole_photo"][0]["probability"]
    assert zoomed > whole + 0.05  # so the stored answer tells which was kept
    window = ready_window(qtbot, amount_model_file, zoom_every_photo=True)
    view = window.library_view
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        view.add_button.click()  # a folder added is indexed at once
    with Library(default_library_path()) as library:
        (photo,) = library.all_photos()
    assert photo.species[0] == (RED, pytest.approx(zoomed, abs=1e-5))


def test_a_zoom_under_way_can_be_cancelled_even_with_every_photo_zoomed(qtbot, tmp_path, red_model_file, monkeypatch):
    import time

    from birdid_app.core.insight import trust

    original = trust.zoom_box_for

    def slow_zoom_box_for(*args, **kwargs):  # the gradient pass of a big model on a slow CPU
        time.sleep(1.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(trust, "zoom_box_for", slow_zoom_box_for)
    window = ready_window(qtbot, red_model_file, zoom_every_photo=True)
    entry = answered(qtbot, window, red_photo(tmp_path / "far.png", PATCH))
    qtbot.waitUntil(lambda: window.zoom_panel.cancel_button.isVisible(), timeout=WAIT_MS)
    with qtbot.waitSignal(window.engine.cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(window.zoom_panel.cancel_button, LEFT)
    assert entry.zoom == "The zoom was cancelled." and window.zoom_panel.status.text() == entry.zoom
    assert window.zoom_panel.zoom_button.isVisible() and not window.zoom_panel.cancel_button.isVisible()
    assert not window.session.zoom_pending(entry)  # not asked again at once, setting or not
    # Asked for again, it runs.
    qtbot.mouseClick(window.zoom_panel.zoom_button, LEFT)
    qtbot.waitUntil(lambda: isinstance(entry.zoom, ZoomOutcome), timeout=WAIT_MS)
