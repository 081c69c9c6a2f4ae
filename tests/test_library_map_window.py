"""The library map through the real window: made on a worker, hover, click to open, lasso and
label many, colours by label, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from birdid_app.core.library import Library, default_library_path
from birdid_app.core.library import map as maps
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import Settings, save_settings
from birdid_app.gui.library_map_view import inside_polygon
from conftest import SPECIES, make_photo, open_ready_window

WAIT_MS = 60_000


@pytest.fixture
def window(qtbot, small_model_file, tmp_path, capsys):
    from birdid_app.cli import main

    folder = tmp_path / "birds"
    for i in range(24):
        make_photo(folder / f"b{i:02d}.jpg", size=(200, 150), seed=i)
    assert main(["index", str(folder), "--model", str(small_model_file), "--device", "cpu", "--precision", "fp32"]) == 0
    capsys.readouterr()
    save_settings(Settings(device="cpu", precision="fp32"))  # no precision trial: not what this tests
    ModelStore().import_file(small_model_file)
    window = open_ready_window(qtbot)
    window.tabs.setCurrentWidget(window.library_view)
    return window


def open_map(qtbot, window):
    window.library_view.map_button.click()
    map_window = window.library_view.map_window
    qtbot.waitExposed(map_window)
    qtbot.waitUntil(lambda: map_window.data is not None and len(map_window.canvas.points) == 24, timeout=WAIT_MS)
    return map_window


def move(widget, position: QPoint, held=Qt.MouseButton.NoButton) -> None:
    """The mouse moved to `position` (with `held` pressed): sent as the platform would, since the
    offscreen platform makes no move events of its own from QTest's cursor moves."""
    event = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(position), QPointF(widget.mapToGlobal(position)),
                        Qt.MouseButton.NoButton, held, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def point(map_window, row) -> QPoint:
    x, y = map_window.canvas.screen_positions()[row]
    return QPoint(round(x), round(y))


def empty_spot(map_window) -> QPoint:
    """A place on the canvas with no point near it."""
    canvas = map_window.canvas
    spot = next(QPoint(x, y) for y in range(2, canvas.height(), 10) for x in range(2, canvas.width(), 10)
                if canvas.row_at(QPointF(x, y)) is None)
    return spot


def wheel(widget, position: QPoint, degrees_8ths: int) -> None:
    event = QWheelEvent(QPointF(position), QPointF(widget.mapToGlobal(position)), QPoint(0, 0),
                        QPoint(0, degrees_8ths), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def lasso(qtbot, canvas, corners, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A left-button drag through `corners`, back to where it began, as a person draws a lasso."""
    start = QPoint(*corners[0])
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, modifier, pos=start)
    for x, y in [*corners[1:], corners[0]]:
        move(canvas, QPoint(round(x), round(y)), Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, modifier, pos=start)


def test_the_map_shows_every_photo_hover_names_it_and_a_click_opens_it(qtbot, window):
    map_window = open_map(qtbot, window)
    with Library(default_library_path()) as library:
        kept = maps.cached_map(library)
    assert kept is not None and np.array_equal(kept.points, map_window.data.points)  # made once, kept
    assert map_window.previews_shown > 5  # it took shape on screen while t-SNE ran
    assert "24 photos" in map_window.status.text()
    canvas = map_window.canvas
    row = 5
    move(canvas, point(map_window, row))
    qtbot.waitUntil(lambda: map_window.data.paths[row].rsplit("/", 1)[-1] in map_window.status.text(),
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: row in map_window.thumbnails, timeout=WAIT_MS)  # its thumbnail, made on a worker
    assert "<img" in canvas.toolTip()
    move(canvas, empty_spot(map_window))  # off the points, the last one's thumbnail is not offered
    assert canvas.toolTip() == "" and "24 photos" in map_window.status.text()

    # The wheel zooms about the mouse: the point under it stays there.
    before = canvas.screen_positions().copy()
    wheel(canvas, point(map_window, row), 240)
    assert canvas.zoom > 1 and not np.allclose(canvas.screen_positions(), before)
    assert np.allclose(canvas.screen_positions()[row], before[row], atol=1)  # (it was under the mouse to a pixel)
    assert canvas.row_at(QPointF(point(map_window, row))) == row
    # A right-button drag pans by as far as the mouse went.
    zoomed = canvas.screen_positions().copy()
    qtbot.mousePress(canvas, Qt.MouseButton.RightButton, pos=QPoint(200, 200))
    move(canvas, QPoint(230, 190), Qt.MouseButton.RightButton)
    qtbot.mouseRelease(canvas, Qt.MouseButton.RightButton, pos=QPoint(230, 190))
    assert np.allclose(canvas.screen_positions() - zoomed, [30, -10])

    with qtbot.waitSignal(window.library_view.show_photo, timeout=WAIT_MS) as opened:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=point(map_window, row))
    assert str(opened.args[0]) == map_window.data.paths[row]
    qtbot.waitUntil(lambda: window.session.current is not None
                    and str(window.session.current.path) == map_window.data.paths[row], timeout=WAIT_MS)

    # Labelled in the identification view, the photo takes its label's colour on the map too.
    panel = window.label_panel
    qtbot.waitUntil(panel.confirm_button.isEnabled, timeout=WAIT_MS)  # once the library says it holds the photo
    map_window.colour_by.setCurrentIndex(map_window.colour_by.findData("label"))
    assert legend_texts(map_window) == ["unlabelled (24)"]
    panel.confirm_button.click()
    qtbot.waitUntil(lambda: f"{panel.top_species} (1)" in legend_texts(map_window), timeout=WAIT_MS)
    assert map_window.data.keys["label"][row] == panel.top_species
    assert tuple(map_window.canvas.colours[row]) != maps.NO_KEY_COLOUR


def test_a_lasso_selects_the_points_inside_it_and_labels_them_all(qtbot, window):
    map_window = open_map(qtbot, window)
    canvas = map_window.canvas
    positions = canvas.screen_positions()
    # A lasso round the points left of the widest gap near the middle, drawn as a person drags
    # (its edge in that gap, on a whole pixel, so no point sits on it).
    xs = np.sort(positions[:, 0])
    gap = max(range(6, 18), key=lambda i: xs[i + 1] - xs[i])
    assert xs[gap + 1] - xs[gap] >= 2
    middle = round((xs[gap] + xs[gap + 1]) / 2)
    left_side = [(1, 1), (middle, 0), (middle, canvas.height()), (0, canvas.height())]
    right_side = [(canvas.width() - 1, 1), (middle, 0), (middle, canvas.height()), (canvas.width(), canvas.height())]
    expected = np.flatnonzero(positions[:, 0] < middle)
    assert 0 < len(expected) < 24

    # Shift adds a second lasso's points to the first's; Escape selects none; a plain lasso starts afresh.
    lasso(qtbot, canvas, right_side)
    assert np.array_equal(np.flatnonzero(canvas.selected), np.flatnonzero(positions[:, 0] > middle))
    lasso(qtbot, canvas, left_side, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.selected.all() and "24 selected" in map_window.status.text()
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert not canvas.selected.any() and not map_window.label_button.isEnabled()

    lasso(qtbot, canvas, left_side)
    assert np.array_equal(np.flatnonzero(canvas.selected), expected)
    assert f"{len(expected)} selected" in map_window.status.text() and map_window.label_button.isEnabled()

    # The dialog starts empty and offers OK only once the text names one species; its title fits.
    map_window.label_button.click()
    dialog = map_window.label_dialog
    qtbot.waitExposed(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.field.text() == "" and not ok.isEnabled()
    assert dialog.width() > dialog.fontMetrics().horizontalAdvance(dialog.windowTitle()) + 100
    qtbot.keyClicks(dialog.field, "tit")
    assert not ok.isEnabled() and "could be 2" in dialog.why.text()
    dialog.field.clear()
    qtbot.keyClicks(dialog.field, SPECIES[3].lower())
    assert ok.isEnabled()
    with qtbot.waitSignal(window.library_service.writer.labels_set, timeout=WAIT_MS):
        ok.click()
    with Library(default_library_path()) as library:
        labels = library.labels()
    ids = map_window.data.ids[expected].tolist()
    assert sorted(labels) == sorted(ids) and {label for label, _, _ in labels.values()} == {SPECIES[3]}
    assert window.undo_action.text() == f"Undo label {SPECIES[3]} on {len(expected)} photos"

    map_window.colour_by.setCurrentIndex(map_window.colour_by.findData("label"))
    qtbot.waitUntil(lambda: f"{SPECIES[3]} ({len(expected)})" in legend_texts(map_window), timeout=WAIT_MS)
    colours = map_window.canvas.colours
    assert len({tuple(c) for c in colours[expected]}) == 1
    assert {tuple(c) for c in np.delete(colours, expected, axis=0)} == {maps.NO_KEY_COLOUR}

    # Edit > Undo takes the bulk label back from every photo, and the map's colours follow.
    with qtbot.waitSignal(window.library_service.writer.labels_restored, timeout=WAIT_MS):
        window.undo_action.trigger()
    with Library(default_library_path()) as library:
        assert library.labels() == {}
    qtbot.waitUntil(lambda: legend_texts(map_window) == ["unlabelled (24)"], timeout=WAIT_MS)


def legend_texts(map_window) -> list[str]:
    return [map_window.legend.item(i).text() for i in range(map_window.legend.count())]


def test_a_map_being_made_can_be_cancelled_and_made_again(qtbot, window, monkeypatch):
    release = threading.Event()
    real_layout = maps.layout

    def slow_layout(vectors, *, should_stop, **kwargs):
        while not should_stop() and not release.is_set():
            release.wait(0.05)
        if should_stop():
            raise maps.MapStopped
        return real_layout(vectors, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(maps, "layout", slow_layout)
    window.library_view.map_button.click()
    map_window = window.library_view.map_window
    qtbot.waitUntil(lambda: "Making the map" in map_window.status.text(), timeout=WAIT_MS)
    assert map_window.cancel_button.isVisible() and not map_window.refresh_button.isEnabled()
    map_window.cancel_button.click()
    qtbot.waitUntil(lambda: map_window.status.text().startswith("Stopped"), timeout=WAIT_MS)
    assert map_window.data is None and map_window.refresh_button.isEnabled()
    release.set()
    map_window.refresh_button.click()
    qtbot.waitUntil(lambda: map_window.data is not None and len(map_window.data.ids) == 24, timeout=WAIT_MS)


def test_inside_polygon_is_the_even_odd_rule():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    points = np.array([[5, 5], [15, 5], [-1, 5], [5, 11], [9.9, 0.1]])
    assert inside_polygon(points, square).tolist() == [True, False, False, False, True]
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=float)  # crossing itself
    assert inside_polygon(np.array([[2, 5], [5, 2]]), bow).tolist() == [True, False]
