"""The life list in a window of its own: the species of the photos you labelled, when and where
you first photographed each; a year turns it into that year's list; per place, what you saw there;
and the file for eBird's "Import data". The same lists as `birdid lifelist` and `birdid export
--ebird` (core/library/sightings.py).

The library is read on a worker, on a connection of its own (place names load a list of towns
the first time, about a second): the window and the library's reader thread stay free. A library
that cannot be read is its one sentence here; the rest of birdid carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.errors import Cancelled, FileProblem
from birdid_app.gui.jobs import Job

if TYPE_CHECKING:
    from birdid_app.core.library.sightings import LifeList, PlacesList
    from birdid_app.gui.library_service import LibraryService

PHOTO_ROLE = Qt.ItemDataRole.UserRole  # the Path of the row's first photo
UNKNOWN_PLACE = "place unknown"
SPECIES_COLUMNS = ("Species", "eBird name", "First seen", "Where", "Photos", "Days", "Last seen")
PLACE_COLUMNS = ("Place and species", "Photos", "Days", "First seen")


@dataclass(frozen=True)
class Lists:
    """What a read hands the window: the years with sightings, and the lists of the year asked for."""

    years: list[int]  # newest first
    life_list: LifeList
    places: PlacesList


def read_lists(library_path: Path, year: int | None):
    """A job: the life list (or `year`'s list) and the list per place, from a connection of its own.
    None when there is no library yet; a damaged library's LibraryDamaged as the result (not raised:
    the window also offers the Library tab's rebuild)."""

    def work(report, should_cancel):
        from birdid_app.core.library import Library, LibraryDamaged
        from birdid_app.core.library.sightings import life_list, places_list, read_sightings

        if not library_path.is_file():
            return None
        try:
            with Library(library_path, create=False) as library:
                years = sorted({sighting.day.year for sighting in read_sightings(library).sightings}, reverse=True)
                if should_cancel():
                    raise Cancelled("Stopped.")
                listed = life_list(library, year=year)
                if should_cancel():
                    raise Cancelled("Stopped.")
                places = places_list(library, year=year)
        except LibraryDamaged as error:
            return error
        return Lists(years, listed, places)

    return work


def export_ebird(library_path: Path, destination: Path, year: int | None):
    """A job: the eBird file of the sightings (of `year`), written whole or not at all."""

    def work(report, should_cancel):
        from birdid_app.core.library import Library
        from birdid_app.core.library.sightings import write_ebird_csv

        with Library(library_path, create=False) as library:
            if should_cancel():
                raise Cancelled("Stopped.")
            try:
                return write_ebird_csv(library, destination, year=year)
            except OSError as error:  # a folder that cannot be written to, a full disk
                raise FileProblem(destination, f"it could not be written ({error.strerror or error}).") from None

    return work


class LifeListWindow(QWidget):
    """The life list's window; `show_photo(Path)` asks the main window to show a photo, `damaged(str)`
    tells the Library tab its file is damaged (it offers the rebuild)."""

    show_photo = Signal(object)
    damaged = Signal(str)

    def __init__(self, library: LibraryService, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Life list")
        self.library = library
        self.lists: Lists | None = None
        self.reading: Job | None = None  # the latest read: an older one's answer is dropped
        self.exporting: Job | None = None

        self.year = QComboBox()
        self.year.setAccessibleName("Year")
        self.year.addItem("All years", None)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.species_table = QTableWidget(0, len(SPECIES_COLUMNS))
        self.species_table.setAccessibleName("Species")
        self.species_table.setHorizontalHeaderLabels(SPECIES_COLUMNS)
        self.species_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.species_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.species_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.species_table.verticalHeader().hide()
        self.species_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.species_table.horizontalHeader().setStretchLastSection(True)
        # No column sorted until the person clicks a header: the list stays in first-seen order.
        self.species_table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.species_table.setToolTip("Double-click a species to see its first photo")
        self.places_tree = QTreeWidget()
        self.places_tree.setAccessibleName("By place")
        self.places_tree.setHeaderLabels(PLACE_COLUMNS)
        self.places_tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.views = QTabWidget()
        self.views.addTab(self.species_table, "&Species")
        self.views.addTab(self.places_tree, "By &place")
        self.notes = QLabel()
        self.notes.setAccessibleName("Notes")
        self.notes.setWordWrap(True)
        self.status = QLabel()
        self.status.setAccessibleName("Life list status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = QPushButton("Export for &eBird…")
        self.export_button.setToolTip(
            "Your sightings of the year shown (or all years) as eBird Record Format, for eBird's Import data: "
            "one row per species per checklist, a checklist being one date at one place"
        )
        self.refresh_button = QPushButton("&Refresh")
        self.cancel_button = QPushButton("Cance&l")

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Year"))
        bar.addWidget(self.year)
        bar.addStretch()
        bar.addWidget(self.export_button)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.summary)
        layout.addWidget(self.views, 1)
        layout.addWidget(self.notes)
        layout.addWidget(self.status)
        self.resize(900, 600)

        self.year.currentIndexChanged.connect(self.refresh)
        self.export_button.clicked.connect(self.choose_export)
        self.refresh_button.clicked.connect(self.refresh)
        self.cancel_button.clicked.connect(self.cancel)
        self.species_table.itemActivated.connect(self._open_item)
        self.places_tree.itemActivated.connect(lambda item, column: self._open_item(item))
        # A label set anywhere (the identification view, the map) is a sighting more or less; a place
        # set for a photo or its folder is where its sightings were.
        library.changed.connect(self._sightings_changed)
        self._set_busy()

    def selected_year(self) -> int | None:
        return self.year.currentData()

    # --- reading -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the lists of the year chosen, on a worker; a read under way is stopped for it."""
        if self.reading is not None:
            self.reading.cancel()
        job = Job(read_lists(self.library.path, self.selected_year()), cancel_errors=(Cancelled,))
        job.succeeded.connect(lambda result: self._read(job, result))
        job.failed.connect(lambda message: self._ended(job, message))
        job.cancelled.connect(lambda: self._ended(job, "Stopped. Refresh to read your sightings."))
        job.finished.connect(lambda: self._finished(job))
        self.reading = job
        self.status.setText("Reading your sightings…")
        self._set_busy()
        job.start()

    def _read(self, job: Job, result) -> None:
        from birdid_app.core.library import LibraryDamaged

        if job is not self.reading:
            return
        if result is None:
            self._show(None)
            self.status.setText("There is no library yet: add a folder in the Library tab, index it, and label "
                                "your photos with a species.")
        elif isinstance(result, LibraryDamaged):
            self._show(None)
            self.status.setText(str(result))
            self.damaged.emit(str(result))
        else:
            self._show(result)
            self.status.clear()

    def _ended(self, job: Job, message: str) -> None:
        if job in (self.reading, self.exporting):
            self.status.setText(message)

    def _finished(self, job: Job) -> None:
        if job is self.reading:
            self.reading = None
        if job is self.exporting:
            self.exporting = None
        self._set_busy()

    def cancel(self) -> None:
        for job in (self.reading, self.exporting):
            if job is not None:
                job.cancel()

    def _sightings_changed(self, *_: object) -> None:
        if self.isVisible():
            self.refresh()

    def _set_busy(self) -> None:
        self.cancel_button.setVisible(self.reading is not None or self.exporting is not None)
        self.export_button.setEnabled(self.exporting is None)
        self.refresh_button.setEnabled(self.reading is None)

    # --- showing -----------------------------------------------------------------------------

    def _show(self, lists: Lists | None) -> None:
        self.lists = lists
        self._show_years(lists.years if lists is not None else [])
        self._show_species(lists.life_list if lists is not None else None)
        self._show_places(lists.places if lists is not None else None)
        notes = lists.life_list.notes if lists is not None else []
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))

    def _show_years(self, years: list[int]) -> None:
        """All years and each year with a sighting; the year chosen stays chosen (even with none left)."""
        chosen = self.selected_year()
        shown = sorted(set(years) | ({chosen} if chosen is not None else set()), reverse=True)
        self.year.blockSignals(True)  # the lists shown are already this choice's
        self.year.clear()
        self.year.addItem("All years", None)
        for year in shown:
            self.year.addItem(str(year), year)
        self.year.setCurrentIndex(max(self.year.findData(chosen), 0))
        self.year.blockSignals(False)

    def _show_species(self, listed) -> None:
        table = self.species_table
        table.setSortingEnabled(False)  # rows are placed by index while they are filled
        table.setRowCount(0)
        if listed is None:
            self.summary.clear()
            return
        table.setRowCount(len(listed.entries))
        for row, entry in enumerate(listed.entries):
            cells = (entry.species, entry.ebird_name or "—", entry.first.day.isoformat(),
                     entry.first_place or UNKNOWN_PLACE, entry.photos, entry.days, entry.last.day.isoformat())
            for column, value in enumerate(cells):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.DisplayRole, value)  # numbers as numbers: they sort as such
                item.setData(PHOTO_ROLE, entry.first.path)
                if column == 0:
                    item.setToolTip(f"First photo: {entry.first.path}")
                elif column == 1 and entry.ebird_name is None:
                    item.setToolTip("eBird's list has no name for this species")
                table.setItem(row, column, item)
        table.setSortingEnabled(True)  # sorted again by the header the person clicked, if any
        scope = f" in {listed.year}" if listed.year is not None else ""
        if listed.entries:
            self.summary.setText(f"{listed.species} species, {_count(listed.photos, 'photo')} on "
                                 f"{_count(listed.days, 'day')}{scope}.")
        else:
            self.summary.setText(f"No sightings{scope}: label photos with a species (in the Identify tab, or on "
                                 "the library map) and they are listed here by when and where you took them.")

    def _show_places(self, places) -> None:
        self.places_tree.clear()
        if places is None:
            return
        for entry in places.places:
            photos = sum(kind.photos for kind in entry.species)
            place = QTreeWidgetItem([f"{entry.place or UNKNOWN_PLACE} ({len(entry.species)} species)", str(photos)])
            for kind in entry.species:
                child = QTreeWidgetItem([kind.species, str(kind.photos), str(kind.days), kind.first.day.isoformat()])
                child.setData(0, PHOTO_ROLE, kind.first.path)
                child.setToolTip(0, f"First photo here: {kind.first.path}")
                place.addChild(child)
            self.places_tree.addTopLevelItem(place)
        self.places_tree.expandAll()

    def _open_item(self, item) -> None:
        path = item.data(PHOTO_ROLE) if isinstance(item, QTableWidgetItem) else item.data(0, PHOTO_ROLE)
        if path is not None:
            self.show_photo.emit(Path(path))

    # --- eBird -------------------------------------------------------------------------------

    def choose_export(self) -> None:
        year = self.selected_year()
        suggested = f"birdid-ebird-{year}.csv" if year is not None else "birdid-ebird.csv"
        name, _ = QFileDialog.getSaveFileName(self, "Export your sightings for eBird", suggested, "CSV (*.csv)")
        if name:
            self.export(Path(name), year)

    def export(self, destination: Path, year: int | None) -> None:
        if self.exporting is not None:
            return
        job = Job(export_ebird(self.library.path, destination, year), cancel_errors=(Cancelled,))
        job.succeeded.connect(lambda written: self.status.setText(written.sentence()))
        job.failed.connect(lambda message: self._ended(job, message))
        job.cancelled.connect(lambda: self._ended(job, f"Stopped: {destination} was not written."))
        job.finished.connect(lambda: self._finished(job))
        self.exporting = job
        self.status.setText(f"Writing {destination}…")
        self._set_busy()
        job.start()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
