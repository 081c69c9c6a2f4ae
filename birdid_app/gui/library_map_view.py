"""The library map in a window of its own: every photo a point, alike photos together.

Colour by the model's top species or by your label; hover a point for its thumbnail; click a
point to open the photo; drag round points (a lasso) to select them, and label them all at once.
The layout (core/library_map.py) and the colours are made on a worker; this module only draws
them and answers the mouse. Points are drawn into an image with numpy and found under the mouse
by one vectorised distance, so 100,000 points stay responsive.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.species_names import shown_name, typed_species
from birdid_app.gui.jobs import Job

MARGIN = 12  # pixels around the map
HOVER_RADIUS = 8  # pixels: how near the mouse a point must be to be under it
CLICK_SLOP = 4  # pixels a press may move and still be a click, not a lasso
LASSO_STEP = 2  # pixels between a lasso's corners: a long drag stays a few hundred corners, not thousands
LIVE_PAN_SECONDS = 0.02  # points drawn faster than this follow a pan live; slower, the image moves and is redrawn after
LEGEND_ENTRIES = 15
COLOUR_BY_LABELS = {"species": "Top species", "label": "Your label"}


@dataclass
class MapData:
    """What the worker hands the window: the layout and, per way of colouring, each point's colour."""

    ids: np.ndarray  # [N] int64
    points: np.ndarray  # [N, 2] float32 in 0..1
    paths: list[str]  # [N], the photos' paths
    keys: dict[str, list[str | None]]  # colour-by -> [N] keys (species or label)
    colours: dict[str, np.ndarray]  # colour-by -> [N, 3] uint8
    legends: dict[str, list[tuple[str, int, tuple[int, int, int]]]]  # colour-by -> (key, count, colour), most first
    final: bool = True  # False: the layout so far, while t-SNE runs


def colouring(keys: list[str | None]) -> tuple[np.ndarray, list[tuple[str, int, tuple[int, int, int]]]]:
    """[N, 3] uint8 colours for keys, and the legend: core.library_map's palette, grey for none."""
    from collections import Counter

    from birdid_app.core.library_map import NO_KEY_COLOUR, palette

    colours_by_key = palette(keys)
    table = {key: np.array(colour, dtype=np.uint8) for key, colour in colours_by_key.items()}
    grey = np.array(NO_KEY_COLOUR, dtype=np.uint8)
    colours = np.stack([table.get(key, grey) if key is not None else grey for key in keys]) if keys else \
        np.zeros((0, 3), dtype=np.uint8)
    counts = Counter(key for key in keys if key is not None)
    legend = [(key, counts[key], colours_by_key[key]) for key in sorted(counts, key=lambda k: (-counts[k], k))]
    return colours, legend


def compute_map_data(library_path: Path, model: str | None):
    """A job: the library's map (kept, or laid out now), its keys and colours, from its own connection
    (the window's reader thread stays free for searches while a large map is laid out). While
    t-SNE runs it reports the layout so far (MapData with final=False), coloured already."""

    def work(report, should_cancel):
        from birdid_app.core.library import Library
        from birdid_app.core.library_map import LibraryMap, library_map

        with Library(library_path, model=model, create=False) as library:
            ids = library.vectors().ids()  # the order library_map's points come in
            shell = _described(library, LibraryMap(ids, np.zeros((len(ids), 2), np.float32), model))

            def preview(points: np.ndarray) -> None:
                report(MapData(ids, points, shell.paths, shell.keys, shell.colours, shell.legends, final=False))

            laid_out = library_map(library, should_stop=should_cancel, on_stage=report, on_progress=preview)
            if not np.array_equal(laid_out.ids, ids):  # the indexer committed photos meanwhile
                return _described(library, laid_out)
        shell.points = laid_out.points
        return shell

    return work


def _described(library, laid_out) -> MapData:
    """`laid_out` with each point's path, keys, colours and the legends."""
    from birdid_app.core.library_map import COLOUR_BY, point_keys

    keys = {by: point_keys(library, laid_out, by) for by in COLOUR_BY}
    paths_by_id = library.paths_by_id(laid_out.ids.tolist())
    paths = [str(paths_by_id[pid]) if pid in paths_by_id else "" for pid in laid_out.ids.tolist()]
    colours, legends = {}, {}
    for by, point_keys_by in keys.items():
        colours[by], legends[by] = colouring(point_keys_by)
    return MapData(laid_out.ids, laid_out.points, paths, keys, colours, legends)


def relabelled(data: MapData, library_path: Path, model: str | None):
    """A job: `data` with the labels read again (after the person labelled some photos)."""

    def work(report, should_cancel):
        from birdid_app.core.library import Library
        from birdid_app.core.library_map import LibraryMap, point_keys

        with Library(library_path, model=model, create=False) as library:
            keys = point_keys(library, LibraryMap(data.ids, data.points, model), "label")
        colours, legend = colouring(keys)
        return keys, colours, legend

    return work


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


class LibraryMapWindow(QWidget):
    """The map's window: the canvas, colour-by, a legend, a status line, and labelling."""

    show_photo = Signal(object)  # a Path to open in the identification view

    def __init__(self, library_view, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Library map")
        self.library_view = library_view
        self.data: MapData | None = None
        self.previews_shown = 0  # layouts so far drawn while t-SNE ran
        self.job: Job | None = None
        self.species_names: list[str] = []
        self._hover_row: int | None = None  # read by thumbnail workers too: one no longer hovered is not made
        self.thumbnails: dict[int, str] = {}  # row -> thumbnail file, as loaded for hovering

        self.canvas = MapCanvas()
        self.colour_by = QComboBox()
        self.colour_by.setAccessibleName("Colour by")
        for value, text in COLOUR_BY_LABELS.items():
            self.colour_by.addItem(text, value)
        self.label_button = QPushButton("&Label selected…")
        self.label_button.setEnabled(False)
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setToolTip("Lay out the library again if photos were added, changed or removed")
        self.cancel_button = QPushButton("Cance&l")
        self.status = QLabel()
        self.status.setAccessibleName("Map status")
        self.status.setWordWrap(True)
        self.legend = QListWidget()
        self.legend.setAccessibleName("Legend")
        self.legend.setMaximumWidth(260)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.colour_by)
        bar.addWidget(self.label_button)
        bar.addStretch()
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.cancel_button)
        splitter = QSplitter()
        splitter.addWidget(self.canvas)
        splitter.addWidget(self.legend)
        splitter.setStretchFactor(0, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status)
        self.resize(1000, 720)

        self.colour_by.currentIndexChanged.connect(self._show_colours)
        self.label_button.clicked.connect(self.ask_label)
        self.refresh_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(self.cancel)
        self.canvas.photo_clicked.connect(self._open_row)
        self.canvas.hovered.connect(self._hover)
        self.canvas.selection_changed.connect(self._selection_changed)
        library_view.writer.labels_set.connect(self._labels_set)
        # A photo labelled in the identification view changes its colour here too.
        library_view.writer.label_set.connect(self._label_set)

    # --- computing ----------------------------------------------------------------------------

    def compute(self) -> None:
        """Lay out the library (or take the kept map) on a worker; the window stays responsive."""
        from birdid_app.core.library_map import MapStopped

        if self.job is not None and self.job.running:
            return
        view = self.library_view
        self.job = Job(compute_map_data(view.library_path, view.model_name), cancel_errors=(MapStopped,))
        self.job.progress.connect(self._progress)
        self.job.succeeded.connect(self._show_data)
        self.job.failed.connect(lambda message: self.status.setText(f"The map could not be made: {message}"))
        self.job.cancelled.connect(lambda: self.status.setText("Stopped. Refresh to make the map."))
        self.job.finished.connect(lambda: self._set_computing(False))
        self._set_computing(True)
        self.previews_shown = 0
        self.status.setText("Making the map…")
        self.job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _progress(self, news) -> None:
        """A stage's sentence, or the layout so far (drawn at once: the map takes shape)."""
        if isinstance(news, MapData):
            if self.previews_shown == 0 or self.data is not None:
                self.data = None  # until the layout is done, points are not yet photos to open or label
                self._show_legend(news)
            self.previews_shown += 1
            self.canvas.set_points(news.points, news.colours[self.colour_by.currentData()], keep_view=True)
            return
        self.status.setText(f"Making the map: {news}…")

    def _set_computing(self, computing: bool) -> None:
        self.cancel_button.setVisible(computing)
        self.refresh_button.setEnabled(not computing)

    def _show_data(self, data: MapData) -> None:
        self.data = data
        self.thumbnails.clear()
        by = self.colour_by.currentData()
        self.canvas.set_points(data.points, data.colours[by], keep_view=True)
        self._show_legend(data)
        self._selection_changed(np.zeros(0, dtype=np.int64))
        if not len(data.ids):
            self.status.setText("The library has no identified photos yet: index a folder first.")

    def _show_colours(self) -> None:
        if self.data is not None:
            self.canvas.set_colours(self.data.colours[self.colour_by.currentData()])
            self._show_legend(self.data)

    def _show_legend(self, data: MapData) -> None:
        from birdid_app.core.library_map import NO_KEY_COLOUR

        by = self.colour_by.currentData()
        self.legend.clear()
        legend = data.legends[by]
        for key, count, colour in legend[:LEGEND_ENTRIES]:
            self.legend.addItem(self._legend_item(f"{key} ({count:,})", colour))
        if len(legend) > LEGEND_ENTRIES:
            rest = sum(count for _, count, _ in legend[LEGEND_ENTRIES:])
            self.legend.addItem(QListWidgetItem(f"{len(legend) - LEGEND_ENTRIES} more ({rest:,})"))
        unkeyed = sum(key is None for key in data.keys[by])
        if unkeyed:
            self.legend.addItem(self._legend_item(f"{'unlabelled' if by == 'label' else 'none'} ({unkeyed:,})",
                                                  NO_KEY_COLOUR))

    @staticmethod
    def _legend_item(text: str, colour) -> QListWidgetItem:
        swatch = QPixmap(14, 14)
        swatch.fill(QColor(*colour))
        item = QListWidgetItem(text)
        item.setIcon(swatch)
        return item

    # --- the mouse's answers ------------------------------------------------------------------

    def _open_row(self, row: int) -> None:
        if self.data is not None:  # None while the layout takes shape
            self.show_photo.emit(Path(self.data.paths[row]))

    def _hover(self, row: int | None) -> None:
        self._hover_row = row
        self.canvas.setToolTip("")  # else Qt would show the last point's thumbnail over empty space
        if row is None or self.data is None:
            QToolTip.hideText()
            self._selection_changed(np.flatnonzero(self.canvas.selected))
            return
        self.status.setText(self.describe(row))
        if row in self.thumbnails:
            self._show_tooltip(row)
            return
        path = Path(self.data.paths[row])

        def work(report, should_cancel):
            from birdid_app.core.errors import PhotoError
            from birdid_app.core.thumbnails import thumbnail_file

            try:
                # The mouse swept past: no decoding for points it left.
                cached = thumbnail_file(path, skip_decoding=lambda: self._hover_row != row)
            except (OSError, PhotoError) as error:  # moved or deleted since it was indexed, say
                return error
            return None if cached is None else str(cached)

        def loaded(thumbnail) -> None:
            if thumbnail is None:
                return
            if isinstance(thumbnail, Exception):
                if self._hover_row == row:
                    gone = isinstance(thumbnail, FileNotFoundError)
                    self.status.setText(f"{self.describe(row)} · " + (
                        "the file is not there any more" if gone else f"no thumbnail: {thumbnail}"))
                return
            self.thumbnails[row] = thumbnail
            if self._hover_row == row:
                self._show_tooltip(row)

        job = Job(work)
        job.succeeded.connect(loaded)
        job.start()

    def describe(self, row: int) -> str:
        """The point's photo in a line: its name, the model's top species and the person's label."""
        data = self.data
        assert data is not None, "a point is described only once the map is drawn"
        text = f"{Path(data.paths[row]).name} · {data.keys['species'][row] or 'not identified'}"
        label = data.keys["label"][row]
        return f"{text} · your label: {label}" if label else text

    def _show_tooltip(self, row: int) -> None:
        x, y = self.canvas.screen_positions()[row]
        html_text = (f'<img src="{html.escape(self.thumbnails[row])}" width="160"><br>'
                     f"{html.escape(self.describe(row))}")
        self.canvas.setToolTip(html_text)
        QToolTip.showText(self.canvas.mapToGlobal(QPointF(x, y).toPoint()), html_text, self.canvas)

    def _selection_changed(self, rows: np.ndarray) -> None:
        self.label_button.setEnabled(len(rows) > 0)
        if self.data is not None and len(self.data.ids):
            self.status.setText(f"{len(self.data.ids):,} photos · {len(rows):,} selected. Drag round points to "
                                "select them (Shift-drag adds); click one to open it; wheel to zoom, right-drag "
                                "to pan; Esc selects none.")

    # --- labelling many -----------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        return self.data.ids[self.canvas.selected].tolist() if self.data is not None else []

    def ask_label(self) -> None:
        from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES

        count = len(self.selected_ids())
        species, chosen = QInputDialog.getItem(
            self, "Label the selected photos", f"Label all {count} selected photos as:",
            [*self.species_names, NOT_A_BIRD, UNKNOWN_SPECIES], 0, True,
        )
        if chosen and species.strip():
            self.label_selected(species.strip())

    def label_selected(self, species: str) -> None:
        """Label every selected photo `species`, on the library's writer thread."""
        from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES

        named = typed_species(species, [*self.species_names, NOT_A_BIRD, UNKNOWN_SPECIES])
        if named is None:
            self.status.setText(f"The model knows no species called {shown_name(species)}; nothing was labelled.")
            return
        ids = self.selected_ids()
        self.library_view.writer.set_labels(self.library_view.library_path, ids, named)

    def _label_set(self, path: Path, species: str | None) -> None:
        self._labels_set(None, species)

    def _labels_set(self, ids: list[int] | None, species: str | None) -> None:
        """Labels changed (`ids`: the map's own, labelled `species`; None: one photo elsewhere):
        the labels are read again and the colours by label follow."""
        if self.data is None:
            return
        data = self.data
        job = Job(relabelled(data, self.library_view.library_path, self.library_view.model_name))

        def show(result) -> None:
            if self.data is data:
                data.keys["label"], data.colours["label"], data.legends["label"] = result
                self._show_colours()
                if ids is not None:
                    self.status.setText(f"Labelled {len(ids):,} photos {species}.")

        job.succeeded.connect(show)
        job.start()
