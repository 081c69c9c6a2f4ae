"""The library in the window: folders, indexing progress, and searches shown as a thumbnail grid.

A widget over the window's LibraryService (gui/library_service.py), which holds the library:
searches are its reads, folder changes its writer's, thumbnails its cache's. Indexing runs on the
engine thread (the model is there), a forward at a time behind interactive identification.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.library import IndexProgress, IndexSummary
from birdid_app.core.library.groups import BURST_SECONDS, BURST_THRESHOLD
from birdid_app.core.library.labels import species_meant
from birdid_app.core.model.species_names import ambiguity_sentence
from birdid_app.core.progress import describe_progress
from birdid_app.gui.culling import CullController
from birdid_app.gui.library_results import BurstFrame, Score, result_caption, result_tooltip
from birdid_app.gui.library_service import LibraryService
from birdid_app.gui.library_writer import KEYWORDS_MIN_PROBABILITY
from birdid_app.gui.session import Tickets
from birdid_app.gui.species_completer import SpeciesCompleter

if TYPE_CHECKING:
    from birdid_app.gui.library_map_view import LibraryMapWindow
    from birdid_app.gui.lifelist_view import LifeListWindow

THUMBNAIL = 128
DEFAULT_DUPLICATE_THRESHOLD = 0.95  # as `birdid duplicates --threshold`
SIMILAR_K = 40
PHOTO_ROLE = Qt.ItemDataRole.UserRole
PHOTO_ID_ROLE = Qt.ItemDataRole.UserRole + 1


def _sidecar_style() -> str:
    from birdid_app.core.settings import load_settings

    return load_settings().sidecar_style


class LibraryView(QWidget):
    show_photo = Signal(object)  # a Path to show in the identification view

    def __init__(self, engine, library: LibraryService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.library = library
        self.current_embedding = None  # set by the window: the photo (or region) on screen
        self.indexing = False
        self.index_added_folder = False  # a folder was just added: index it once the change is in
        self.keywords_embedded = False  # the keywords being written go into JPEGs, not sidecars
        self.tickets = Tickets()  # a grid's thumbnails arriving after a newer search are dropped

        self.folders = QListWidget()
        self.folders.setAccessibleName("Library folders")
        self.add_button = QPushButton("&Add folder…")
        self.remove_button = QPushButton("&Remove")
        self.index_button = QPushButton("Inde&x now")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.cancel_button = QPushButton("&Cancel")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Indexing progress")
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)

        self.species = QLineEdit()
        self.species.setPlaceholderText("Species, e.g. European Robin")
        self.species.setAccessibleName("Species to find")
        self.species_completer = SpeciesCompleter(self.species)  # any part of a name, as you type
        self.in_top5 = QCheckBox("in the top &5")
        self.find_button = QPushButton("Fi&nd")
        self.similar_button = QPushButton("&Similar to the photo on screen")
        self.duplicates_button = QPushButton("Near-&duplicates")
        # How alike two photos must be (cosine similarity of their embeddings) to count as
        # near-duplicates: 0.95 groups bursts and re-saved copies; lower finds similar scenes.
        self.duplicate_threshold = QDoubleSpinBox()
        self.duplicate_threshold.setRange(0.80, 1.00)
        self.duplicate_threshold.setSingleStep(0.01)
        self.duplicate_threshold.setDecimals(2)
        self.duplicate_threshold.setValue(DEFAULT_DUPLICATE_THRESHOLD)
        self.duplicate_threshold.setPrefix("alike ≥ ")
        self.duplicate_threshold.setAccessibleName("Near-duplicate similarity")
        self.duplicate_threshold.setToolTip(
            "How alike two photos must be to count as near-duplicates: 1.00 only copies, "
            "0.95 bursts and re-saved copies, lower ones similar scenes"
        )
        # Bursts: frames shot one after another (capture times within BURST_SECONDS) that look alike.
        self.bursts_button = QPushButton("B&ursts")
        self.bursts_button.setToolTip(
            f"Photos taken within {BURST_SECONDS:g} s of one another that look alike (≥ {BURST_THRESHOLD:.2f}), "
            "by capture date, to pick the best frame; photos without a date are left out"
        )
        self.map_button = QPushButton("Map")
        self.map_button.setToolTip(
            "Every photo as a point, alike photos together, coloured by species or by your label: "
            "mislabelled photos and look-alike species show at a glance"
        )
        self.map_window: LibraryMapWindow | None = None  # the map's window, made when first asked for
        self.life_list_button = QPushButton("Life Lis&t…")
        self.life_list_button.setToolTip(
            "The species you labelled, when and where you first photographed each; a year's list, "
            "the list per place, and a file for eBird"
        )
        self.life_list_window: LifeListWindow | None = None  # made when first asked for
        self.class_names: list[str] = []
        self.export_button = QPushButton("Exp&ort CSV…")
        self.keywords_button = QPushButton("Write &keywords")
        self.keywords_button.setToolTip(
            "Write each photo's species (your label, else the model's best match from 50%) into its XMP "
            "sidecar, merged with what your editor wrote there; originals are not changed"
        )
        # Shown only when the library file is damaged: sets it aside and starts a new one.
        self.rebuild_button = QPushButton("Re&build the library")
        self.rebuild_button.setToolTip(
            "Set the damaged library file aside (it is kept beside the new one) and index your folders again; "
            "your photos are not touched"
        )
        self.rebuild_button.hide()
        self.results = QListWidget()
        self.results.setAccessibleName("Library results")
        self.results.setViewMode(QListWidget.ViewMode.IconMode)
        self.results.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.results.setMovement(QListWidget.Movement.Static)
        self.results.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.results.setGridSize(QSize(THUMBNAIL + 40, THUMBNAIL + 48))
        self.results.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.results.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)  # cull several at once
        self.results_label = QLabel("")
        self.results_label.setWordWrap(True)
        self.hint = QLabel("Index a folder, then search it.")  # while the grid is empty

        left = QWidget()
        column = QVBoxLayout(left)
        column.addWidget(QLabel("<b>Folders</b>"))
        column.addWidget(self.folders, 1)
        row = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.index_button):
            row.addWidget(button)
        column.addLayout(row)
        column.addWidget(self.progress)
        column.addWidget(self.progress_label)
        row = QHBoxLayout()
        row.addWidget(self.pause_button)
        row.addWidget(self.cancel_button)
        column.addLayout(row)
        column.addWidget(self.export_button)
        column.addWidget(self.keywords_button)
        column.addWidget(self.life_list_button)  # here, not by the map: that row sets the window's smallest width
        column.addWidget(self.rebuild_button)

        right = QWidget()
        searches = QVBoxLayout(right)
        row = QHBoxLayout()
        row.addWidget(self.species, 1)
        row.addWidget(self.in_top5)
        row.addWidget(self.find_button)
        searches.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.similar_button)
        row.addStretch()
        searches.addLayout(row)
        # Groups on a row of their own, so the window's smallest width stays about 740 pixels.
        row = QHBoxLayout()
        row.addWidget(self.duplicates_button)
        row.addWidget(self.duplicate_threshold)
        row.addWidget(self.bursts_button)
        row.addWidget(self.map_button)
        row.addStretch()
        searches.addLayout(row)
        searches.addWidget(self.results_label)
        searches.addWidget(self.hint)
        searches.addWidget(self.results, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.add_button.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_folder)
        self.index_button.clicked.connect(self.start_indexing)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.cancel_button.clicked.connect(self.engine.cancel_indexing)
        self.find_button.clicked.connect(self.find_species)
        self.species.returnPressed.connect(self.find_species)
        self.similar_button.clicked.connect(self.find_similar)
        self.duplicates_button.clicked.connect(self.find_duplicates)
        self.bursts_button.clicked.connect(self.find_bursts)
        self.map_button.clicked.connect(self.open_map)
        self.life_list_button.clicked.connect(self.open_life_list)
        self.export_button.clicked.connect(self.export_csv)
        self.keywords_button.clicked.connect(self.write_keywords)
        self.rebuild_button.clicked.connect(self.rebuild_library)
        self.results.itemActivated.connect(lambda item: self.show_photo.emit(item.data(PHOTO_ROLE)))
        self.results.customContextMenuRequested.connect(self._context_menu)
        self.culling = CullController(self.results, self._selected_photos, library.writer, lambda: library.path,
                                      _sidecar_style, id_role=PHOTO_ID_ROLE)
        self.culling.culled.connect(self._culled)
        self.culling.failed.connect(self.results_label.setText)
        engine.index_started.connect(self._index_started)
        engine.index_progress.connect(self._index_progress)
        engine.index_finished.connect(self._index_finished)
        engine.index_failed.connect(self._index_failed)
        library.damaged.connect(self._library_damaged)
        library.read_failed.connect(self.results_label.setText)
        library.folders_changed.connect(self._folders_changed)
        library.rebuilt.connect(self._library_rebuilt)
        library.writer.failed.connect(self.progress_label.setText)
        library.writer.keywords_written.connect(self._keywords_written)
        self._set_indexing(False)
        library.read(lambda opened: opened.folders(), self._show_folders, when_missing=[])

    # --- the model and its species -----------------------------------------------------------

    def set_species_names(self, class_names: list[str]) -> None:
        """The loaded model's species, offered as the species search is typed."""
        self.class_names = list(class_names)
        if self.map_window is not None:
            self.map_window.species_names = self.class_names
        self.species_completer.set_class_names(class_names)

    # --- folders and indexing ----------------------------------------------------------------

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.index_added_folder = True
            self.library.change_folders(add=[Path(folder)])

    def remove_folder(self) -> None:
        item = self.folders.currentItem()
        if item is not None:
            self.library.change_folders(remove=[Path(item.text())])

    def start_indexing(self) -> None:
        if self.library.model_name is None:
            self.progress_label.setText("The model is still loading; try again in a moment.")
            return
        self._set_indexing(True)
        self.progress_label.setText("Looking for photos…")
        self.engine.start_indexing(self.library.path, self.library.model_name)

    def _pause_toggled(self, paused: bool) -> None:
        self.engine.pause_indexing(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        if paused:
            self.progress_label.setText(self.progress_label.text() + " — paused")

    def _index_started(self, summary: IndexSummary) -> None:
        self.progress_label.setText(
            f"{summary.scanned} photos found: {summary.unchanged} already indexed, "
            f"{summary.renamed} moved, {summary.removed} gone."
        )

    def _index_progress(self, progress: IndexProgress) -> None:
        self.progress.setRange(0, max(progress.total, 1))
        self.progress.setValue(progress.done)
        self.progress_label.setText(describe_progress(progress, " · "))

    def _index_finished(self, summary: IndexSummary) -> None:
        self._set_indexing(False)
        self.progress_label.setText(
            f"Done: {summary.embedded} photos identified, {summary.failed} could not be read, "
            f"{summary.unchanged} unchanged."
        )

    def _index_failed(self, message: str) -> None:
        self._set_indexing(False)
        self.progress_label.setText(message)

    def _set_indexing(self, running: bool) -> None:
        self.indexing = running
        self.index_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)

    def _folders_changed(self, folders: list[Path]) -> None:
        """The service has told a running index of the change; a folder just added is indexed now."""
        self._show_folders(folders)
        if not self.index_added_folder:
            return
        self.index_added_folder = False
        if self.indexing:
            return  # the running index was planned again with the new folder in it
        if self.library.model_name is None:
            self.progress_label.setText("The folder is added. No model is loaded yet: press Index now once one is.")
            return
        self.start_indexing()

    def _show_folders(self, folders: list[Path]) -> None:
        self.folders.clear()
        self.folders.addItems([str(f) for f in folders])

    # --- searching ---------------------------------------------------------------------------

    def find_species(self) -> None:
        text, top = self.species.text().strip(), 5 if self.in_top5.isChecked() else 1
        if not text:
            return

        def search(library):
            species = species_meant(library, text)  # "robin": European Robin, if the library has no other
            return species if isinstance(species, list) else (species, library.find_species(species, in_top=top))

        def show(found) -> None:
            if isinstance(found, list):
                self.results_label.setText(ambiguity_sentence(text, found, "the species in your library"))
                return
            species, hits = found
            self._show_hits(hits, f"{len(hits)} photos with {species} {where}", searched=species)

        where = "among the top 5" if top == 5 else "as the top species"
        self.library.read(search, show)

    def find_similar(self) -> None:
        embedding = self.current_embedding
        if embedding is None:
            self.results_label.setText("Identify a photo first: its look is what is searched for.")
            return
        self.library.read(
            lambda library: library.similar(embedding, SIMILAR_K),
            lambda hits: self._show_hits(hits, f"The {len(hits)} most similar photos", score="similarity"),
        )

    def find_similar_to(self, photo_id: int, name: str) -> None:
        """The photos most like one already in the library, from its stored embedding."""
        self.library.read(
            lambda library: library.similar_to_photo(photo_id, SIMILAR_K),
            lambda hits: self._show_hits(hits, f"The {len(hits)} photos most like {name}", score="similarity"),
        )

    def find_duplicates(self) -> None:
        threshold = round(self.duplicate_threshold.value(), 2)

        def search(library):
            groups = library.duplicate_groups(threshold)
            return [(photo, number) for number, group in enumerate(groups, 1) for photo in group]

        self.library.read(
            search,
            lambda hits: self._show_hits(hits, f"Near-duplicates (alike ≥ {threshold:.2f}), group by group",
                                         score="group"),
        )

    def find_bursts(self) -> None:
        """Each burst, frame by frame, with its sharpness on the bird and the suggested best frame
        (core/library/cull.py): P, X and 1-5 on the grid then cull them."""
        from birdid_app.core.library.cull import bursts_for_culling

        def search(library):
            return [(frame.photo, BurstFrame(number, frame.sharpness, frame.photo.id == burst.best))
                    for number, burst in enumerate(bursts_for_culling(library, BURST_SECONDS, BURST_THRESHOLD), 1)
                    for frame in burst.frames]

        self.library.read(
            search,
            lambda hits: self._show_hits(
                hits, f"Bursts (taken within {BURST_SECONDS:g} s, alike ≥ {BURST_THRESHOLD:.2f}), group by group: "
                "★ marks the sharpest frame; P picks, X rejects, 1-5 rate",
                score="burst",
            ),
        )

    def open_map(self) -> None:
        """The library map in its own window, made (or taken from what was kept) on a worker."""
        from birdid_app.gui.library_map_view import LibraryMapWindow

        if self.map_window is None:
            self.map_window = LibraryMapWindow(self.library, self)
            self.map_window.show_photo.connect(self.show_photo)
        self.map_window.species_names = self.class_names
        self.map_window.show()
        self.map_window.raise_()
        self.map_window.compute()

    def open_life_list(self) -> None:
        """The life list in its own window, read (again) on a worker each time it is asked for."""
        from birdid_app.gui.lifelist_view import LifeListWindow

        if self.life_list_window is None:
            self.life_list_window = LifeListWindow(self.library, self)
            self.life_list_window.show_photo.connect(self.show_photo)
            self.life_list_window.damaged.connect(self.library.report_damaged)
        self.life_list_window.show()
        self.life_list_window.raise_()
        self.life_list_window.refresh()

    def export_csv(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export the library as CSV", "birdid-library.csv", "CSV (*.csv)")
        if name:
            self.library.read(lambda library: library.export_csv(Path(name)),
                              lambda rows: self.results_label.setText(f"Saved {rows} photos to {name}"))

    def write_keywords(self) -> None:
        from birdid_app.core.settings import load_settings

        self.keywords_button.setEnabled(False)
        self.results_label.setText("Writing keywords…")
        settings = load_settings()
        self.keywords_embedded = settings.embed_in_jpeg
        self.library.writer.write_keywords(self.library.path, self.library.model_name, settings)

    def _keywords_written(self, summary, problems: list[str]) -> None:
        self.keywords_button.setEnabled(True)
        files = "JPEG" if self.keywords_embedded else "sidecar"
        text = summary.sentence(files=files, min_probability=KEYWORDS_MIN_PROBABILITY)
        if problems:
            text = text.removesuffix(".") + f", the first: {problems[0]}"
        self.results_label.setText(text)

    def _show_hits(self, hits, title: str, *, score: Score = "probability", searched: str | None = None) -> None:
        """The grid: each photo with its species, probability and date (similarity or group too);
        the tooltip has its path, label and the model's top species."""
        grid = self.tickets.issue("grid")  # thumbnails still on their way belong to the old items
        self.results.clear()
        self.results_label.setText(title)
        for photo, value in hits:
            item = QListWidgetItem(result_caption(photo, value, score, searched))
            item.setData(PHOTO_ROLE, photo.path)
            item.setData(PHOTO_ID_ROLE, photo.id)
            item.setToolTip(result_tooltip(photo, value, score))
            self.results.addItem(item)
            self._thumbnail(item, photo.path, grid)
        self.hint.setVisible(self.results.count() == 0)
        self._show_culls([photo.id for photo, _ in hits], grid)

    def _show_culls(self, ids: list[int], grid: int) -> None:
        """The pick, reject or stars each result has, read beside the grid and shown after its caption."""
        from birdid_app.core.library.cull import culls

        def show(found) -> None:
            if self.tickets.is_current(grid):  # else the grid was filled again meanwhile
                self.culling.show_culls(found)

        if ids:
            self.library.read(lambda library: culls(library, ids), show)

    def _selected_photos(self) -> dict[int, Path]:
        return {item.data(PHOTO_ID_ROLE): item.data(PHOTO_ROLE) for item in self.results.selectedItems()}

    def _culled(self, written: dict, problems: list[str]) -> None:
        count = len(written)
        text = f"Cull saved for {count} photo{'s' if count != 1 else ''} (library and XMP)" if count else "No cull saved"
        self.results_label.setText(text + (f"; {len(problems)} not: {problems[0]}" if problems else "."))

    def _thumbnail(self, item: QListWidgetItem, path: Path, grid: int) -> None:
        self.library.thumbnail(
            path,
            lambda image: item.setIcon(QIcon(QPixmap.fromImage(image))),
            wanted=lambda: self.tickets.is_current(grid),  # else the item was cleared with its grid
        )

    def _context_menu(self, position) -> None:
        item = self.results.itemAt(position)
        if item is None:
            return
        path: Path = item.data(PHOTO_ROLE)
        menu = QMenu(self)
        photo_id = item.data(PHOTO_ID_ROLE)
        menu.addAction("Show in the identification view", lambda: self.show_photo.emit(path))
        menu.addAction("Similar photos", lambda: self.find_similar_to(photo_id, path.name))
        menu.addAction("Open its folder", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent))))
        menu.addAction("Copy its path", lambda: QGuiApplication.clipboard().setText(str(path)))
        menu.popup(self.results.viewport().mapToGlobal(position))

    # --- a damaged library -------------------------------------------------------------------

    def _library_damaged(self, message: str) -> None:
        self.results_label.setText(message)
        self.rebuild_button.show()

    def rebuild_library(self) -> None:
        self.rebuild_button.hide()
        self.results.clear()
        self.hint.show()
        self.results_label.setText("Rebuilding the library…")
        self.library.rebuild()

    def _library_rebuilt(self, damaged: Path, folders: list[Path]) -> None:
        self.results_label.setText(
            f"The damaged library was set aside as {damaged}. A new one is made with {len(folders)} folders; "
            "indexing them again fills it."
        )
        if self.library.model_name is not None and folders:
            self.start_indexing()

    def shutdown(self) -> None:
        """Close the windows this tab opened; their work under way stops (the service is the window's)."""
        if self.map_window is not None:
            self.map_window.cancel()  # a layout under way stops within a few of its iterations
            self.map_window.close()
        if self.life_list_window is not None:
            self.life_list_window.cancel()
            self.life_list_window.close()
