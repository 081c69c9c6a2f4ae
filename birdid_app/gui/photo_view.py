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


class PhotoView(QGraphicsView):
    """Shows one photo. Wheel or pinch zooms, left-drag pans.

    A region is drawn by a left-drag with Shift held, or by a plain left-drag while region mode
    is on; Esc clears it.
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
            self._band_origin = self._image_point(event.position())
            self._band = QRectF(self._band_origin, self._band_origin)
            event.accept()
            return
        super().mousePressEvent(event)

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

    def keyPressEvent(self, event) -> None:
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
