"""Where each photo was taken, as the person set it: the places kept in the library, read off the
GUI thread at start and after each change, and Photo > Set Place. The engine is told the place
of each photo it identifies (gui/main_window.py asks `assigned_place`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from birdid_app.gui.library_service import LibraryService
from birdid_app.gui.place_dialog import PlaceDialog, assigned_place_for, resolved_path
from birdid_app.gui.session import PhotoEntry, PhotoSession


class PlaceController(QObject):
    def __init__(
        self,
        session: PhotoSession,
        library: LibraryService,
        status: Callable[[str, int], None],  # status(message, milliseconds)
        answer_again: Callable[[], None],  # the answer on screen drawn again, asked again if placed otherwise
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.session, self.library, self.status, self.answer_again = session, library, status, answer_again
        self.window = window  # the Set Place dialog's parent
        # {path: (latitude, longitude, name)} as the library keeps them, and each photo's path with
        # links followed, as places are kept by it.
        self.assigned: dict = {}
        self._resolved_paths: dict[int, Path] = {}
        self.dialog: PlaceDialog | None = None  # Set Place's, kept while it is open
        library.writer.place_set.connect(self._place_set)
        library.rebuilt.connect(lambda *_: self.read())
        self.read()

    def _resolved_path(self, entry: PhotoEntry) -> Path:
        if entry.id not in self._resolved_paths:
            self._resolved_paths[entry.id] = resolved_path(entry.file())
        return self._resolved_paths[entry.id]

    def assigned_place(self, entry: PhotoEntry) -> tuple[float, float, str] | None:
        """The place set for the photo or its folder, as the engine is told it."""
        if entry.path is None or not self.assigned:
            return None
        return assigned_place_for(self.assigned, self._resolved_path(entry))

    def read(self) -> None:
        self.library.read(lambda opened: opened.assigned_places(), self._places_read, when_missing={})

    def _places_read(self, places: dict) -> None:
        self.assigned = dict(places)
        self.answer_again()  # asked again if it was answered before its place was known

    def set_place(self) -> None:
        """Photo > Set Place: where the photo on screen, or every photo in its folder, was taken."""
        entry = self.session.current
        if entry is None or entry.path is None:
            self.status(
                "Open a photo file first: a pasted picture has no folder to keep a place for (the home place "
                "in Settings serves it).", 8000,
            )
            return
        dialog = PlaceDialog(self._resolved_path(entry), self.assigned, self.window)
        dialog.accepted.connect(lambda: self._place_chosen(dialog))
        self.dialog = dialog
        dialog.open()

    def _place_chosen(self, dialog: PlaceDialog) -> None:
        writer, library = self.library.writer, self.library.path
        if dialog.target is None:
            return
        if dialog.action == "set" and dialog.place is not None:
            writer.set_place(library, dialog.target, *dialog.place)
        elif dialog.action == "clear":
            writer.clear_place(library, dialog.target)

    def _place_set(self, path: Path, place, places: dict) -> None:
        """A place was set or cleared in the library: the photo on screen is identified again if
        its answer used another place."""
        self.assigned = dict(places)
        name = path.name or str(path)
        self.status(f"Place of {name}: {place[2]}" if place else f"Place of {name} cleared", 5000)
        self.answer_again()
