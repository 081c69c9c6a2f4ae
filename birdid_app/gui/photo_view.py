"""The photo a birder is looking at: zoom, pan, and a rectangle marking the bird.

Scene coordinates are image pixel coordinates (the photo sits at the origin, unscaled), so a
region drawn in the scene is already in image pixels."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
    QTransform,
)
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

ZOOM_STEP = 1.25
MAX_ZOOM = 32.0
# A smaller rectangle is almost always a click or a slip, not a bird.
MIN_REGION_SIDE = 8
OUTSIDE_REGION_SHADE = QColor(0, 0, 0, 140)
# Choosing a region with the keys: each press moves or resizes the band by this share of the
# photo's side (20 presses cross it), fine enough for a bird, few enough to get anywhere.
KEYBOARD_STEP = 0.05
_ARROWS = {
    Qt.Key.Key_Left: (-1, 0),
    Qt.Key.Key_Right: (1, 0),
    Qt.Key.Key_Up: (0, -1),
    Qt.Key.Key_Down: (0, 1),
}
_KEYBOARD_REGION_KEYS = {*_ARROWS, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape}


class PhotoView(QGraphicsView):
    """Shows one photo. Wheel or pinch zooms, left-drag pans.

    A region is drawn by a left-drag with Shift held, or by a plain left-drag while region mode
    is on; Esc clears it. Without a mouse, start_keyboard_region puts a band on the photo that
    the arrows move, Shift+arrows resize, Enter accepts and Esc drops.
    """

    region_selected = Signal(QRect)
    region_cleared = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Photo")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Zooming keeps its own anchor (under the cursor or at the centre); Qt's AnchorUnderMouse
        # reads the global cursor position, which is wrong for synthesised and gesture events.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        # The window takes dropped photos; a view that accepted drags would swallow them.
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)

        # A neutral backdrop one step darker than the window (light or dark theme): a photo's
        # colours read truer against grey than against a white page.
        self.setBackgroundBrush(self.palette().color(QPalette.ColorRole.Window).darker(115))

        self.setScene(QGraphicsScene(self))
        self._photo_item = QGraphicsPixmapItem()
        self._photo_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._photo_item)
        # A map of what the model sees, stretched over the photo rectangle it describes. Cells
        # stay crisp (no smoothing): each one is a patch of the model's input.
        self._overlay_item = QGraphicsPixmapItem()
        self._overlay_item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._overlay_item.setZValue(1)
        self.scene().addItem(self._overlay_item)

        self._fitting = True
        self._region_mode = False
        self._region: QRect | None = None
        self._band_origin: QPointF | None = None
        self._band: QRectF | None = None
        self._keyboard_band = False  # the band is being moved with the keys, not dragged
        self._evidence_box: QRect | None = None  # where a zoom found the evidence, drawn dashed
        self.waiting_text: str | None = None  # shown instead of the drop hint while a photo decodes

    # The photo

    def set_photo(self, image: QImage) -> None:
        """Show an upright 8-bit image fitted to the view. Drops any region without a signal: the
        caller knows the photo changed."""
        self._photo_item.setPixmap(QPixmap.fromImage(image))
        self.setSceneRect(self._photo_item.boundingRect())
        self._region = self._evidence_box = None
        self._band_origin = self._band = None
        self._keyboard_band = False
        self.fit_to_view()

    def clear_photo(self, waiting: str | None = None) -> None:
        """Show the empty-state hint, or `waiting` ("Decoding the RAW…") while a photo is on its
        way; like set_photo, drops any region without a signal."""
        self.waiting_text = waiting
        self.set_overlay(None)
        self._photo_item.setPixmap(QPixmap())
        self.setSceneRect(QRectF())
        self._region = None
        self._band_origin = self._band = None
        self._keyboard_band = False
        self._evidence_box = None
        self.viewport().update()

    def photo_size(self) -> QSize | None:
        pixmap = self._photo_item.pixmap()
        return None if pixmap.isNull() else pixmap.size()

    def set_overlay(self, image: QImage | None, target: QRectF | None = None, opacity: float = 0.6) -> None:
        """Show `image` stretched over `target` (image pixels; the whole photo when None), or hide
        the overlay. The stretch is the inverse of the model's squash, so a cell lands on the
        photo pixels its input came from, at any zoom."""
        if image is None or image.isNull():
            self._overlay_item.setPixmap(QPixmap())
            self._overlay_item.hide()
            return
        target = target or self._photo_item.boundingRect()
        self._overlay_item.setPixmap(QPixmap.fromImage(image))
        self._overlay_item.setTransform(
            QTransform.fromScale(target.width() / image.width(), target.height() / image.height())
        )
        self._overlay_item.setPos(target.topLeft())
        self._overlay_item.setOpacity(opacity)
        self._overlay_item.show()

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay_item.setOpacity(opacity)

    def overlay_item(self) -> QGraphicsPixmapItem:
        return self._overlay_item

    # Zoom

    def zoom_factor(self) -> float:
        """Image pixels per device-independent pixel: 1.0 is actual size."""
        return self.transform().m11()

    def fit_to_view(self) -> None:
        """Show the whole photo, and keep it whole as the view resizes until the user zooms."""
        self._fitting = True
        if self.photo_size() is None:
            return
        zoom = self._fit_zoom()
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self.centerOn(self._photo_item)

    def actual_size(self) -> None:
        self._zoom_to(1.0)

    def zoom_in(self) -> None:
        self._zoom_to(self.zoom_factor() * ZOOM_STEP)

    def zoom_out(self) -> None:
        self._zoom_to(self.zoom_factor() / ZOOM_STEP)

    def _fit_zoom(self) -> float:
        size = self.photo_size()
        if size is None:
            return 1.0  # no photo: nothing to fit
        viewport = self.viewport().size()
        return min(viewport.width() / size.width(), viewport.height() / size.height())

    def _zoom_to(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom so that the scene point under `anchor` (viewport coordinates; the centre if None)
        stays under it."""
        if self.photo_size() is None:
            return
        self._fitting = False
        fit = self._fit_zoom()
        zoom = min(max(zoom, min(fit / 4, 1.0)), max(MAX_ZOOM, fit))
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        scene_point = self.viewportTransform().inverted()[0].map(anchor)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        drift = self.viewportTransform().map(scene_point) - anchor
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + round(drift.x()))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + round(drift.y()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitting:
            self.fit_to_view()

    def wheelEvent(self, event) -> None:
        notches = event.angleDelta().y() / 120
        if notches:
            self._zoom_to(self.zoom_factor() * ZOOM_STEP**notches, event.position())
        event.accept()

    def viewportEvent(self, event) -> bool:
        # Touchpad pinches arrive as native gestures (macOS, Wayland, X11 with XInput 2.4).
        # QPinchGesture is not grabbed as well: on macOS Qt makes it from these same events, and
        # the photo would zoom twice.
        if (
            event.type() == QEvent.Type.NativeGesture
            and event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture
        ):
            self._zoom_to(self.zoom_factor() * (1 + event.value()), event.position())
            return True
        return super().viewportEvent(event)

    # The region

    def set_region_mode(self, on: bool) -> None:
        """In region mode a plain left-drag draws a region instead of panning."""
        self._region_mode = on
        if on:
            self.setDragMode(QGraphicsView.DragMode.NoDrag)
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)

    def region(self) -> QRect | None:
        """The marked region in image pixels."""
        return QRect(self._region) if self._region is not None else None

    def set_region(self, rect: QRect | None) -> None:
        """Mark a region (image pixels, clipped to the photo) or unmark it; emits nothing."""
        size = self.photo_size()
        if rect is None or size is None:
            self._region = None
        else:
            clipped = rect.intersected(QRect(0, 0, size.width(), size.height()))
            self._region = None if clipped.isEmpty() else clipped
        self.viewport().update()

    def clear_region(self) -> None:
        had_region = self._region is not None
        self._region = None
        self.viewport().update()
        if had_region:
            self.region_cleared.emit()

    def _image_point(self, view_point: QPointF) -> QPointF:
        """The image pixel position under a viewport point, held inside the photo."""
        size = self.photo_size()
        point = self.viewportTransform().inverted()[0].map(view_point)
        if size is None:
            return point
        return QPointF(min(max(point.x(), 0.0), size.width()), min(max(point.y(), 0.0), size.height()))

    def mousePressEvent(self, event) -> None:
        starts_region = self._region_mode or event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        if event.button() == Qt.MouseButton.LeftButton and starts_region and self.photo_size() is not None:
            self._keyboard_band = False  # a drag takes over from the keys
            self._band_origin = self._image_point(event.position())
            self._band = QRectF(self._band_origin, self._band_origin)
            event.accept()
            return
        super().mousePressEvent(event)

    def focusOutEvent(self, event) -> None:
        # Clicked or tabbed away while choosing with the keys: the band would stay on the photo,
        # moved by no key. (A menu or another window taking focus leaves it: the person comes back.)
        reasons = (Qt.FocusReason.MouseFocusReason, Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason)
        if self._keyboard_band and event.reason() in reasons:
            self._band, self._keyboard_band = None, False
            self.viewport().update()
        super().focusOutEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._band_origin is None:
            super().mouseMoveEvent(event)
            return
        self._band = QRectF(self._band_origin, self._image_point(event.position())).normalized()
        self.viewport().update()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._band_origin is None or event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        band = QRectF(self._band_origin, self._image_point(event.position())).normalized()
        self._band_origin = self._band = None
        left, top, right, bottom = (round(edge) for edge in (band.left(), band.top(), band.right(), band.bottom()))
        if right - left >= MIN_REGION_SIDE and bottom - top >= MIN_REGION_SIDE:
            self._region = QRect(left, top, right - left, bottom - top)
            self.region_selected.emit(QRect(self._region))
        self.viewport().update()
        event.accept()

    # The region, by keyboard

    def start_keyboard_region(self) -> None:
        """Start choosing a region with the keys: a band over the region marked, or over the middle
        half of the photo; the view takes the focus so the arrows reach it."""
        size = self.photo_size()
        if size is None:
            return
        if self._region is not None:
            self._band = QRectF(self._region)
        else:
            width, height = size.width() / 2, size.height() / 2
            self._band = QRectF(width / 2, height / 2, width, height)
        self._band_origin = None
        self._keyboard_band = True
        self.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.viewport().update()

    def choosing_by_keyboard(self) -> bool:
        return self._keyboard_band

    def band(self) -> QRectF | None:
        """The region being chosen (image pixels), before it is accepted."""
        return QRectF(self._band) if self._band is not None else None

    def _step_band(self, dx: int, dy: int, resize: bool) -> None:
        size = self.photo_size()
        if size is None or self._band is None:
            return
        step_x, step_y = size.width() * KEYBOARD_STEP, size.height() * KEYBOARD_STEP
        band = QRectF(self._band)
        if resize:  # Right and Down grow it, Left and Up shrink it; the top-left corner stays
            band.setWidth(min(max(band.width() + dx * step_x, MIN_REGION_SIDE), size.width() - band.left()))
            band.setHeight(min(max(band.height() + dy * step_y, MIN_REGION_SIDE), size.height() - band.top()))
        else:  # moved, and held inside the photo
            band.moveLeft(min(max(band.left() + dx * step_x, 0.0), size.width() - band.width()))
            band.moveTop(min(max(band.top() + dy * step_y, 0.0), size.height() - band.height()))
        self._band = band
        self.viewport().update()

    def _accept_keyboard_band(self) -> None:
        band, self._band, self._keyboard_band = self._band, None, False
        if band is not None:
            rect = QRect(round(band.left()), round(band.top()), round(band.width()), round(band.height()))
            self._region = rect
            self.region_selected.emit(QRect(rect))
        self.viewport().update()

    def event(self, event) -> bool:
        # While a band is moved with the keys, the arrows, Enter and Esc are the band's: the
        # window's Left and Right (previous and next photo) must not take them first.
        if (event.type() == QEvent.Type.ShortcutOverride and self._keyboard_band
                and event.key() in _KEYBOARD_REGION_KEYS):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if self._keyboard_band:
            key = event.key()
            if key in _ARROWS:
                dx, dy = _ARROWS[key]
                self._step_band(dx, dy, resize=bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._accept_keyboard_band()
            elif key == Qt.Key.Key_Escape:
                self._band, self._keyboard_band = None, False
                self.viewport().update()
            else:
                super().keyPressEvent(event)
                return
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape and (self._band_origin is not None or self._region is not None):
            self._band_origin = self._band = None
            self.clear_region()
            event.accept()
            return
        super().keyPressEvent(event)

    # Painting

    def set_evidence_box(self, box: QRect | None) -> None:
        """Mark (dashed) the box where a zoom on the bird found the evidence, in photo pixels; None clears it."""
        self._evidence_box = box
        self.viewport().update()

    def evidence_box(self) -> QRect | None:
        return self._evidence_box

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:
        if self._evidence_box is not None and self._evidence_box != self._region:
            pen = QPen(self.palette().color(QPalette.ColorRole.Highlight), 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(self._evidence_box))
        marked = self._band if self._band is not None else self._region
        if marked is None:
            return
        marked = QRectF(marked)
        outside = QPainterPath()
        outside.addRect(self._photo_item.boundingRect())
        inside = QPainterPath()
        inside.addRect(marked)
        painter.fillPath(outside.subtracted(inside), OUTSIDE_REGION_SHADE)
        pen = QPen(self.palette().color(QPalette.ColorRole.Highlight), 2)
        pen.setCosmetic(True)  # the same width at every zoom
        if self._band is not None:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(marked)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.photo_size() is not None:
            return
        shortcut = QKeySequence(QKeySequence.StandardKey.Open).toString(QKeySequence.SequenceFormat.NativeText)
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(
            self.viewport().rect(),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            self.waiting_text or f"Drop photos here, or press {shortcut}",
        )
