"""The side panel fits the window (issue 25 item 5): at 1024x700 and 1366x768, with a photo, its
answer and a label set, nothing runs off the right edge behind a horizontal scroll bar, and the
answer's first rows are in view."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect

from birdid_app.cli import main
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import Settings, save_settings
from conftest import SPECIES, WINDOW_WAIT_MS, make_photo, open_ready_window

LONGEST = max(SPECIES, key=len)


def inside_viewport(window, widget) -> bool:
    viewport = window.side_scroll.viewport()
    top_left = widget.mapTo(viewport, QPoint(0, 0))
    return QRect(0, 0, viewport.width(), viewport.height()).contains(QRect(top_left, widget.size()))


@pytest.mark.parametrize("size", [(1024, 700), (1366, 768)])
def test_the_side_panel_fits_with_an_answer_and_a_label(qtbot, tmp_path, small_model_file, size):
    folder = tmp_path / "birds"
    make_photo(folder / "b0.jpg", size=(640, 480), seed=0)
    save_settings(Settings(device="cpu", precision="fp32"))
    ModelStore().import_file(small_model_file)
    assert main(["index", str(folder), "--device", "cpu", "--precision", "fp32"]) == 0
    window = open_ready_window(qtbot)
    window.resize(*size)
    window.add_photos([folder / "b0.jpg"])
    panel = window.label_panel
    qtbot.waitUntil(lambda: panel.isEnabled() and panel.top_species is not None, timeout=WINDOW_WAIT_MS)
    panel.species.setText(LONGEST)  # the longest name the model knows, as the label
    qtbot.waitUntil(panel.set_button.isEnabled, timeout=WINDOW_WAIT_MS)  # once the library holds the photo
    with qtbot.waitSignal(window.library_service.writer.label_set, timeout=WINDOW_WAIT_MS):
        panel.set_button.click()
    qtbot.waitUntil(lambda: window.zoom_panel.isVisible(), timeout=WINDOW_WAIT_MS)
    qtbot.wait(50)  # the layout settles

    scroll = window.side_scroll
    assert window.side_panel.minimumSizeHint().width() <= scroll.viewport().width()
    assert not scroll.horizontalScrollBar().isVisible()
    assert window.side_panel.width() <= scroll.viewport().width()
    for widget in (panel.clear_button, panel.set_button, panel.confirm_button, window.results.row_bars[0]):
        right = widget.mapTo(window.side_panel, QPoint(widget.width(), 0)).x()
        assert right <= scroll.viewport().width(), widget.text() if hasattr(widget, "text") else widget
    assert scroll.verticalScrollBar().value() == 0
    assert inside_viewport(window, window.results.headline)
    assert inside_viewport(window, window.results.row_bars[0])
    window.close()
