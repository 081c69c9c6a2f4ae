"""The library map in a window of its own: every photo a point, alike photos together.

Colour by the model's top species or by your label; hover a point for its thumbnail; click a
point to open the photo; drag round points (a lasso) to select them, and label them all at once.
The layout (core/library/map.py) and the colours are made on a worker; this module only draws
them and answers the mouse. Points are drawn into an image with numpy and found under the mouse
by one vectorised distance, so 100,000 points stay responsive.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.model.species_names import shown_name, typed_species
from birdid_app.gui.jobs import Job
from birdid_app.gui.map_canvas import MapCanvas, inside_polygon  # noqa: F401 - inside_polygon: re-exported for the tests

if TYPE_CHECKING:
    from birdid_app.gui.library_service import LibraryService

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

    from birdid_app.core.library.map import NO_KEY_COLOUR, palette

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
        from birdid_app.core.library.map import LibraryMap, library_map

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
    from birdid_app.core.library.map import COLOUR_BY, point_keys

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
        from birdid_app.core.library.map import LibraryMap, point_keys

        with Library(library_path, model=model, create=False) as library:
            keys = point_keys(library, LibraryMap(data.ids, data.points, model), "label")
        colours, legend = colouring(keys)
        return keys, colours, legend

    return work


class LibraryMapWindow(QWidget):
    """The map's window: the canvas, colour-by, a legend, a status line, and labelling."""

    show_photo = Signal(object)  # a Path to open in the identification view

    def __init__(self, library: LibraryService, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Library map")
        self.library = library
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
        library.writer.labels_set.connect(self._labels_set)
        # A photo labelled in the identification view changes its colour here too.
        library.writer.label_set.connect(self._label_set)
        library.writer.labels_restored.connect(lambda step, undone: self._labels_set(None, None))  # Undo, Redo

    # --- computing ----------------------------------------------------------------------------

    def compute(self) -> None:
        """Lay out the library (or take the kept map) on a worker; the window stays responsive."""
        from birdid_app.core.library.map import MapStopped

        if self.job is not None and self.job.running:
            return
        self.job = Job(compute_map_data(self.library.path, self.library.model_name), cancel_errors=(MapStopped,))
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
        from birdid_app.core.library.map import NO_KEY_COLOUR

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

        # The mouse swept past: no decoding for points it left.
        self.library.thumbnail_file(path, loaded, skip_decoding=lambda: self._hover_row != row)

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
        from birdid_app.gui.species_completer import SpeciesDialog

        count = len(self.selected_ids())
        # Starts empty: a species is chosen, never taken by default (gui/species_completer.py).
        dialog = self.label_dialog = SpeciesDialog("Label the selected photos", f"Label all {count} selected photos as:",
                                                   self.species_names, [NOT_A_BIRD, UNKNOWN_SPECIES], self)
        dialog.accepted.connect(lambda: self.label_selected(dialog.species() or ""))
        dialog.open()

    def label_selected(self, species: str) -> None:
        """Label every selected photo `species`, on the library's writer thread."""
        from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES

        named = typed_species(species, [*self.species_names, NOT_A_BIRD, UNKNOWN_SPECIES])
        if named is None:
            self.status.setText(f"The model knows no species called {shown_name(species)}; nothing was labelled.")
            return
        ids = self.selected_ids()
        self.library.writer.set_labels(self.library.path, ids, named)

    def _label_set(self, path: Path, species: str | None) -> None:
        self._labels_set(None, species)

    def _labels_set(self, ids: list[int] | None, species: str | None) -> None:
        """Labels changed (`ids`: the map's own, labelled `species`; None: one photo elsewhere):
        the labels are read again and the colours by label follow."""
        if self.data is None:
            return
        data = self.data
        job = Job(relabelled(data, self.library.path, self.library.model_name))

        def show(result) -> None:
            if self.data is data:
                data.keys["label"], data.colours["label"], data.legends["label"] = result
                self._show_colours()
                if ids is not None:
                    self.status.setText(f"Labelled {len(ids):,} photos {species}.")

        job.succeeded.connect(show)
        job.start()
