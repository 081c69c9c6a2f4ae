"""The library map's drawing (library_map_view.py's window holds it): the points drawn into an
image with numpy and found under the mouse by one vectorised distance, so 100,000 points stay
responsive; wheel zoom, pan, click and lasso."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QWidget

MARGIN = 12  # pixels around the map
HOVER_RADIUS = 8  # pixels: how near the mouse a point must be to be under it
CLICK_SLOP = 4  # pixels a press may move and still be a click, not a lasso
LASSO_STEP = 2  # pixels between a lasso's corners: a long drag stays a few hundred corners, not thousands
LIVE_PAN_SECONDS = 0.02  # points drawn faster than this follow a pan live; slower, the image moves and is redrawn after


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """[N] bool: which points [N, 2] lie inside the polygon [M, 2] (even-odd rule, vectorised over
    the points, one pass per edge)."""
    inside = np.zeros(len(points), dtype=bool)
    if len(polygon) < 3:
        return inside
    # Only the points in the polygon's bounding box are tested: a small lasso on a large map is cheap.
    (left, top), (right, bottom) = polygon.min(axis=0), polygon.max(axis=0)
    near = np.flatnonzero((points[:, 0] >= left) & (points[:, 0] <= right)
                          & (points[:, 1] >= top) & (points[:, 1] <= bottom))
    x, y = points[near, 0], points[near, 1]
    in_near = np.zeros(len(near), dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        in_near ^= crosses & (x < at_x)
    inside[near] = in_near
    return inside


class MapCanvas(QWidget):
    """The points. Wheel: zoom at the mouse; right drag: pan; left click: open; left drag: lasso
    (with Shift or Ctrl it adds to the selection); Escape: select none."""

    photo_clicked = Signal(int)  # the row of the point clicked
    hovered = Signal(object)  # the row of the point under the mouse, or None
    selection_changed = Signal(object)  # [K] rows selected (np.ndarray)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Library map")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # for Escape
        self.setMinimumSize(320, 240)
        self.points = np.zeros((0, 2), dtype=np.float32)
        self.colours = np.zeros((0, 3), dtype=np.uint8)
        self.selected = np.zeros(0, dtype=bool)
        self.zoom = 1.0
        self.pan = QPointF(0, 0)
        self._image: QImage | None = None  # the points drawn, remade when anything they depend on changes
        self._image_pan = QPointF(0, 0)  # the pan _image was drawn at (while panning, it is shifted by the rest)
        self._draw_seconds = 0.0  # how long drawing _image took
        self._buffer = np.zeros((0, 0, 4), dtype=np.uint8)  # the pixels behind _image (QImage does not copy them)
        self._positions: np.ndarray | None = None  # screen_positions(), kept until the view changes
        self._lasso: list[QPointF] = []
        self._press: QPointF | None = None
        self._adding = False  # the lasso under way adds to the selection (Shift or Ctrl held at its start)
        self._panning_from: QPointF | None = None
        self._hover: int | None = None

    # --- what is shown ------------------------------------------------------------------------

    def set_points(self, points: np.ndarray, colours: np.ndarray, *, keep_view: bool = False) -> None:
        """Show these points; `keep_view` keeps the zoom, the pan and the selection (the same
        photos, moved: the layout taking shape)."""
        if not keep_view or len(points) != len(self.points):
            self.selected = np.zeros(len(points), dtype=bool)
            self.zoom, self.pan = 1.0, QPointF(0, 0)
        self.points, self.colours = points, colours
        self._redraw()

    def set_colours(self, colours: np.ndarray) -> None:
        self.colours = colours
        self._redraw()

    def select_rows(self, rows: np.ndarray, *, add: bool = False) -> None:
        """Select these rows (`add`: as well as those selected already)."""
        if not add or len(self.selected) != len(self.points):
            self.selected = np.zeros(len(self.points), dtype=bool)
        self.selected[rows] = True
        self._redraw()
        self.selection_changed.emit(np.flatnonzero(self.selected))

    def screen_positions(self) -> np.ndarray:
        """[N, 2] float64: where each point is drawn, in widget pixels (kept until the view changes:
        every mouse move asks)."""
        if self._positions is None or len(self._positions) != len(self.points):
            side = max(min(self.width(), self.height()) - 2 * MARGIN, 1)
            left = (self.width() - side) / 2
            top = (self.height() - side) / 2
            centre = np.array([self.width() / 2, self.height() / 2])
            base = np.column_stack([left + self.points[:, 0] * side, top + self.points[:, 1] * side])
            self._positions = (base - centre) * self.zoom + centre + np.array([self.pan.x(), self.pan.y()])
        return self._positions

    def row_at(self, position: QPointF) -> int | None:
        """The nearest point within HOVER_RADIUS pixels of `position`, or None."""
        if not len(self.points):
            return None
        offsets = self.screen_positions() - np.array([position.x(), position.y()])
        distances = np.einsum("ij,ij->i", offsets, offsets)
        row = int(np.argmin(distances))
        return row if distances[row] <= HOVER_RADIUS**2 else None

    # --- drawing ------------------------------------------------------------------------------

    def _redraw(self) -> None:
        self._image = None
        self._positions = None
        self.update()

    def _points_image(self) -> QImage:
        """The points as an RGBA image the size of the widget: a square of 3 (or 5, when few)
        pixels each, selected ones larger with a dark ring."""
        started = time.perf_counter()
        width, height = max(self.width(), 1), max(self.height(), 1)
        pixels = np.zeros((height, width, 4), dtype=np.uint8)
        if len(self.points):
            positions = np.rint(self.screen_positions()).astype(np.int64)
            half = 2 if len(self.points) < 2000 else 1
            plain = ~self.selected
            for rows, size, ring in ((plain, half, False), (self.selected, half + 2, True)):
                if not rows.any():
                    continue
                xy, colour = positions[rows], self.colours[rows]
                if ring:
                    self._stamp(pixels, xy, np.zeros_like(colour), size + 1)
                self._stamp(pixels, xy, colour, size)
        self._buffer = pixels
        self._image_pan = QPointF(self.pan)
        self._draw_seconds = time.perf_counter() - started
        return QImage(self._buffer.data, width, height, width * 4, QImage.Format.Format_RGBA8888)

    @staticmethod
    def _stamp(pixels: np.ndarray, xy: np.ndarray, colour: np.ndarray, half: int) -> None:
        height, width = pixels.shape[:2]
        for dy in range(-half, half + 1):
            for dx in range(-half, half + 1):
                x, y = xy[:, 0] + dx, xy[:, 1] + dy
                keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
                pixels[y[keep], x[keep], :3] = colour[keep]
                pixels[y[keep], x[keep], 3] = 255

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        if self._image is None or self._image.size() != self.size():
            self._image = self._points_image()
        painter.drawImage(self.pan - self._image_pan, self._image)
        if self._hover is not None and self._hover < len(self.points):
            x, y = self.screen_positions()[self._hover]
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Text), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(QPointF(x, y), HOVER_RADIUS - 2, HOVER_RADIUS - 2)
        if len(self._lasso) > 1:
            path = QPainterPath(self._lasso[0])
            for point in self._lasso[1:]:
                path.lineTo(point)
            path.closeSubpath()
            highlight = self.palette().color(QPalette.ColorRole.Highlight)
            fill = QColor(highlight)
            fill.setAlpha(40)
            painter.setPen(QPen(highlight, 1.5, Qt.PenStyle.DashLine))
            painter.setBrush(fill)
            painter.drawPath(path)

    def resizeEvent(self, event) -> None:
        self._redraw()

    # --- the mouse ----------------------------------------------------------------------------

    def wheelEvent(self, event) -> None:
        factor = 1.25 ** (event.angleDelta().y() / 120)
        new_zoom = min(max(self.zoom * factor, 1.0), 200.0)
        anchor = event.position()
        centre = QPointF(self.width() / 2, self.height() / 2)
        # Keep the map point under the mouse where it is.
        self.pan = anchor - centre - (anchor - centre - self.pan) * (new_zoom / self.zoom)
        self.zoom = new_zoom
        self._redraw()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
            self._lasso = [event.position()]
            self._adding = bool(event.modifiers() & (Qt.KeyboardModifier.ShiftModifier
                                                     | Qt.KeyboardModifier.ControlModifier))
        elif event.button() in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            self._panning_from = event.position()

    def mouseMoveEvent(self, event) -> None:
        position = event.position()
        if self._panning_from is not None:
            self.pan += position - self._panning_from
            self._panning_from = position
            self._positions = None
            if self._draw_seconds < LIVE_PAN_SECONDS:
                self._image = None
            self.update()
            return
        if self._press is not None:
            if (position - self._lasso[-1]).manhattanLength() >= LASSO_STEP:
                self._lasso.append(position)
                self.update()
            return
        row = self.row_at(position)
        if row != self._hover:
            self._hover = row
            self.update()
            self.hovered.emit(row)

    def mouseReleaseEvent(self, event) -> None:
        if event.button() in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            self._panning_from = None
            self._redraw()  # the parts the shifted image did not cover
            return
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        lasso, press, self._lasso, self._press = self._lasso, self._press, [], None
        # A click, unless the mouse went further than CLICK_SLOP at any point (a lasso ends where it began).
        if max((p - press).manhattanLength() for p in [*lasso, event.position()]) <= CLICK_SLOP:
            row = self.row_at(event.position())
            if row is not None:
                self.photo_clicked.emit(row)
            elif not self._adding:
                self.select_rows(np.zeros(0, dtype=np.int64))
            return
        polygon = np.array([[p.x(), p.y()] for p in [*lasso, event.position()]], dtype=np.float64)
        self.select_rows(np.flatnonzero(inside_polygon(self.screen_positions(), polygon)), add=self._adding)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and self.selected.any():
            self.select_rows(np.zeros(0, dtype=np.int64))
        else:
            super().keyPressEvent(event)

    def leaveEvent(self, event) -> None:
        if self._hover is not None:
            self._hover = None
            self.update()
            self.hovered.emit(None)
