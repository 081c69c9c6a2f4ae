"""The photo view, driven through real mouse, wheel, gesture and key events."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPointingDevice,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication

from birdid_app.gui.photo_view import PhotoView

PHOTO_SIZE = QSize(1200, 800)
QUADRANT_COLOURS = (QColor("red"), QColor("green"), QColor("blue"), QColor("yellow"))


def quadrant_photo() -> QImage:
    """Four flat colours, so any pixel of the view tells which part of the photo it shows."""
    image = QImage(PHOTO_SIZE, QImage.Format.Format_RGB32)
    half_width, half_height = PHOTO_SIZE.width() // 2, PHOTO_SIZE.height() // 2
    painter = QPainter(image)
    for index, colour in enumerate(QUADRANT_COLOURS):
        painter.fillRect(half_width * (index % 2), half_height * (index // 2), half_width, half_height, colour)
    painter.end()
    return image


def show_view(qtbot, photo: QImage | None = None) -> PhotoView:
    view = PhotoView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    if photo is not None:
        view.set_photo(photo)
    return view


@pytest.fixture
def view(qtbot) -> PhotoView:
    return show_view(qtbot, quadrant_photo())


def on_screen(view: PhotoView, image_x: float, image_y: float) -> QPoint:
    return view.mapFromScene(QPointF(image_x, image_y))


def shows_whole_photo(view: PhotoView) -> bool:
    """Whether the photo's corners all map inside the viewport (to within rounding: a fitted
    photo's edge lies exactly on the viewport's)."""
    visible = QRectF(view.viewport().rect()).adjusted(-0.5, -0.5, 0.5, 0.5)
    corners = (QPointF(0, 0), QPointF(1200, 0), QPointF(0, 800), QPointF(1200, 800))
    return all(visible.contains(view.viewportTransform().map(corner)) for corner in corners)


def drag(qtbot, view: PhotoView, start: QPoint, end: QPoint, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press, move in steps with the button held, release: QTest's moves carry no buttons."""
    viewport = view.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, modifiers, start)
    for step in range(1, 5):
        point = QPointF(start + (end - start) * step / 4)
        move = QMouseEvent(
            QEvent.Type.MouseMove,
            point,
            QPointF(viewport.mapToGlobal(point)),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            modifiers,
        )
        QApplication.sendEvent(viewport, move)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, modifiers, end)


def assert_close(rect: QRect, expected: QRect, tolerance: int = 2) -> None:
    got = rect.getCoords()
    want = expected.getCoords()
    assert all(abs(a - b) <= tolerance for a, b in zip(got, want, strict=True)), (got, want)


def test_a_new_photo_is_fitted_whole_into_the_view(view):
    assert view.photo_size() == PHOTO_SIZE
    assert view.zoom_factor() < 1
    assert shows_whole_photo(view)
    assert view.grab().toImage().pixelColor(on_screen(view, 300, 200)) == QUADRANT_COLOURS[0]


def test_zoom_buttons_and_actual_size(view):
    fitted = view.zoom_factor()
    view.zoom_in()
    assert view.zoom_factor() > fitted
    view.actual_size()
    assert view.zoom_factor() == pytest.approx(1.0)
    view.zoom_out()
    assert view.zoom_factor() < 1.0
    for _ in range(50):
        view.zoom_in()
    assert view.zoom_factor() == pytest.approx(32.0)
    view.fit_to_view()
    assert view.zoom_factor() == pytest.approx(fitted)


def test_the_wheel_zooms_in_keeping_the_point_under_the_cursor(view):
    cursor = on_screen(view, 300, 200)
    before = view.zoom_factor()
    wheel = QWheelEvent(
        QPointF(cursor),
        QPointF(view.viewport().mapToGlobal(cursor)),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.zoom_factor() == pytest.approx(before * 1.25)
    under_cursor = view.mapToScene(cursor)
    assert abs(under_cursor.x() - 300) <= 2 and abs(under_cursor.y() - 200) <= 2


def test_a_pinch_zooms_around_the_fingers(view):
    fingers = on_screen(view, 900, 600)
    pinch = QNativeGestureEvent(
        Qt.NativeGestureType.ZoomNativeGesture,
        QPointingDevice.primaryPointingDevice(),
        2,
        QPointF(fingers),
        QPointF(fingers),
        QPointF(view.viewport().mapToGlobal(fingers)),
        0.5,
        QPointF(),
    )
    before = view.zoom_factor()
    QApplication.sendEvent(view.viewport(), pinch)
    assert view.zoom_factor() == pytest.approx(before * 1.5)
    under_fingers = view.mapToScene(fingers)
    assert abs(under_fingers.x() - 900) <= 2 and abs(under_fingers.y() - 600) <= 2


def test_the_photo_stays_fitted_on_resize_until_the_user_zooms(view, qtbot):
    view.resize(400, 300)
    assert shows_whole_photo(view)
    fitted_small = view.zoom_factor()
    view.zoom_in()
    view.resize(800, 600)
    assert view.zoom_factor() == pytest.approx(fitted_small * 1.25)


def test_a_plain_drag_pans_a_zoomed_photo(view, qtbot):
    view.actual_size()
    centre = view.viewport().rect().center()
    seen_before = view.mapToScene(centre)
    with qtbot.assertNotEmitted(view.region_selected):
        drag(qtbot, view, centre, centre + QPoint(100, 50))
    seen_after = view.mapToScene(centre)
    assert seen_after.x() == pytest.approx(seen_before.x() - 100, abs=2)
    assert seen_after.y() == pytest.approx(seen_before.y() - 50, abs=2)


def test_a_drag_in_region_mode_selects_image_pixels(view, qtbot):
    view.set_region_mode(True)
    with qtbot.waitSignal(view.region_selected) as selected:
        drag(qtbot, view, on_screen(view, 300, 200), on_screen(view, 900, 600))
    expected = QRect(300, 200, 600, 400)
    assert_close(selected.args[0], expected)
    assert view.region() == selected.args[0]


def test_a_shift_drag_selects_without_region_mode(view, qtbot):
    with qtbot.waitSignal(view.region_selected) as selected:
        drag(qtbot, view, on_screen(view, 900, 600), on_screen(view, 100, 100), Qt.KeyboardModifier.ShiftModifier)
    assert_close(selected.args[0], QRect(100, 100, 800, 500))


def test_a_drag_past_the_photo_is_clipped_to_it(view, qtbot):
    view.set_region_mode(True)
    past_bottom_right = view.viewport().rect().bottomRight()
    assert view.mapToScene(past_bottom_right).y() > 800
    with qtbot.waitSignal(view.region_selected) as selected:
        drag(qtbot, view, on_screen(view, 600, 400), past_bottom_right)
    region = selected.args[0]
    assert_close(region, QRect(600, 400, 600, 400))
    assert QRect(QPoint(0, 0), PHOTO_SIZE).contains(region)


def test_a_tiny_drag_selects_nothing(view, qtbot):
    view.set_region_mode(True)
    with qtbot.assertNotEmitted(view.region_selected):
        drag(qtbot, view, on_screen(view, 300, 200), on_screen(view, 303, 240))
    assert view.region() is None


def test_escape_clears_the_region(view, qtbot):
    view.set_region(QRect(100, 100, 200, 200))
    view.setFocus()
    with qtbot.waitSignal(view.region_cleared):
        qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert view.region() is None
    with qtbot.waitSignal(view.region_cleared):
        view.set_region(QRect(100, 100, 200, 200))
        view.clear_region()


def test_set_region_is_clipped_and_silent(view, qtbot):
    with qtbot.assertNotEmitted(view.region_selected), qtbot.assertNotEmitted(view.region_cleared):
        view.set_region(QRect(1000, 700, 500, 500))
        assert view.region() == QRect(1000, 700, 200, 100)
        view.set_region(None)
        assert view.region() is None
        view.set_region(QRect(100, 100, 50, 50))
        view.set_photo(quadrant_photo())
        assert view.region() is None


def test_the_region_dims_the_photo_outside_it(view):
    outside, inside = on_screen(view, 900, 600), on_screen(view, 300, 200)
    plain = view.grab().toImage()
    view.set_region(QRect(100, 100, 400, 250))
    marked = view.grab().toImage()
    assert marked.pixelColor(outside).lightness() < plain.pixelColor(outside).lightness() - 40
    assert marked.pixelColor(inside) == plain.pixelColor(inside)


def test_an_empty_view_shows_a_hint_and_leaves_drops_to_the_window(qtbot):
    view = show_view(qtbot)
    assert view.photo_size() is None
    assert view.accessibleName() == "Photo"
    assert not view.acceptDrops() and not view.viewport().acceptDrops()
    image = view.grab().toImage()
    background = image.pixelColor(5, 5)
    middle_band = [image.pixelColor(x, 300) for x in range(200, 600)] + [image.pixelColor(x, 296) for x in range(200, 600)]
    assert any(colour != background for colour in middle_band)

    view.set_photo(quadrant_photo())
    view.clear_photo()
    assert view.photo_size() is None and view.region() is None
