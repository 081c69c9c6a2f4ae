"""The person's label for the photo on screen: read from the library when its answer is shown,
written through the library's writer when chosen in the label panel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from birdid_app.gui.label_history import LabelHistory
from birdid_app.gui.label_panel import LabelPanel
from birdid_app.gui.library_service import LibraryService
from birdid_app.gui.session import PhotoEntry, PhotoSession


class LabelController(QObject):
    def __init__(
        self,
        session: PhotoSession,
        panel: LabelPanel,
        library: LibraryService,
        status: Callable[[str, int], None],  # status(message, milliseconds)
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.label_panel, self.library, self.status = session, panel, library, status
        panel.label_chosen.connect(self._label_chosen)
        library.writer.label_set.connect(self._label_set)
        self.history = LabelHistory(library.writer, self)
        library.writer.labels_restored.connect(self._labels_restored)

    def _labels_restored(self, step, undone: bool) -> None:
        """An Undo or Redo put labels back: the photo on screen shows its label as stored now."""
        entry = self.session.current
        if entry is not None and entry.path is not None:
            self._read_label(entry)
        self.status(f"{'Undone' if undone else 'Redone'}: {step.text}", 5000)

    def show(self, entry: PhotoEntry | None, top_species: str | None) -> None:
        """The label panel for the photo on screen: its label is read from the library."""
        if entry is None or entry.path is None:
            self.label_panel.setEnabled(False)  # a pasted picture is in no library
            return
        self.label_panel.show_photo(top_species, None)
        self._read_label(entry)

    def _read_label(self, entry: PhotoEntry) -> None:
        """The photo's label as the library holds it, shown when read; no photo: it is in no library."""

        def shown(photo) -> None:
            if entry is self.session.current:
                self.label_panel.set_in_library(bool(photo))
                if photo:
                    self.label_panel.show_label(photo.label)

        path = entry.path
        if path is None:
            return
        self.library.read(lambda opened: opened.photo_by_path(path), shown, when_missing=False)

    def _label_chosen(self, species: str | None) -> None:
        entry = self.session.current
        if entry is not None and entry.path is not None:
            self.library.writer.set_label(self.library.path, entry.path, species)

    def _label_set(self, path: Path, species: str | None) -> None:
        current = self.session.current
        if current is not None and current.path == path:
            self.label_panel.show_label(species)
        self.status(f"Labelled {path.name}: {species}" if species else f"Label removed from {path.name}", 5000)
