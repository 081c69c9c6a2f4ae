"""Completion as you type in a species field: the core matcher (core.model.species_names.
SpeciesSearch) ranks the model's species by any part of any of their names, and a popup offers
them, closest first. Used by the Library tab's search, the label panel, the map's bulk-label
dialog and "All species…" (which filters its own list with the same matcher)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.model.species_names import SpeciesNames, SpeciesSearch, ambiguity_sentence, names_beside
from birdid_app.gui.jobs import Job

NAME_ROLE = Qt.ItemDataRole.UserRole + 1  # the model's name of the row's species: what is chosen
MAX_ROWS = 50  # the popup's rows: a typed letter or two fits hundreds of species


class SpeciesCompleter(QCompleter):
    """The popup of species under a QLineEdit; choosing a row writes its species into the field.

    Driven by hand (setWidget, not QLineEdit.setCompleter) so the rows are the core matcher's,
    in its order, instead of Qt's own prefix or substring filter."""

    names_ready = Signal()  # the names beside the model's (eBird, scientific) are searchable too

    def __init__(self, field: QLineEdit, extras: Sequence[str] = ()) -> None:
        super().__init__(field)
        self.field, self.extras = field, list(extras)
        self.search = SpeciesSearch(self.extras)
        self.rows = QStandardItemModel(self)
        self.setModel(self.rows)
        self.setCompletionRole(NAME_ROLE)
        self.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.setMaxVisibleItems(12)
        self.setWidget(field)
        field.textEdited.connect(self.offer)
        self.activated.connect(field.setText)  # the chosen row's completion role: the model's name
        self._class_names: tuple[str, ...] = ()

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """The model's species: searchable by their own names now, by the names beside them
        (read from the shipped label list, off the GUI thread) once names_ready says so."""
        names = self._class_names = tuple(class_names)
        self.search = SpeciesSearch([*names, *self.extras])
        job = Job(lambda report, should_cancel: (names, names_beside(names)))
        job.succeeded.connect(self._names_found)  # a method: not called once the field is gone
        job.start()

    def _names_found(self, found: tuple[tuple[str, ...], list[SpeciesNames]]) -> None:
        names, species = found
        if names == self._class_names:  # not those of a model loaded before the one now in use
            self.search = SpeciesSearch([*species, *self.extras])
            self.names_ready.emit()

    def offer(self, text: str) -> None:
        """The popup for `text`: the species it fits, closest first (hidden when none does)."""
        self.rows.clear()
        for hit in self.search.matching(text)[:MAX_ROWS]:
            shown = hit.name if hit.matched == hit.name else f"{hit.name} ({hit.matched})"
            row = QStandardItem(shown)
            row.setData(hit.name, NAME_ROLE)
            row.setEditable(False)
            self.rows.appendRow(row)
        if self.rows.rowCount():
            self.setCompletionPrefix("")
            self.complete()
        elif (popup := self.popup()) is not None:
            popup.hide()

    def chosen(self, text: str) -> str | list[str]:
        """The species `text` names, or those it could mean (SpeciesSearch.chosen)."""
        return self.search.chosen(text)


class SpeciesDialog(QDialog):
    """Asks for one species (the map's "Label selected…"): the field starts empty, completes
    as you type, and OK waits until the text names exactly one species."""

    def __init__(self, title: str, prompt: str, completer_names: Sequence[str], extras: Sequence[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.prompt = QLabel(prompt)
        self.prompt.setWordWrap(True)
        self.field = QLineEdit()
        self.field.setAccessibleName("Species")
        self.field.setPlaceholderText("Type any part of a name")
        self.completer = SpeciesCompleter(self.field, extras)
        self.completer.set_class_names(completer_names)
        self.why = QLabel()
        self.why.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (self.prompt, self.field, self.why, self.buttons):
            layout.addWidget(widget)
        self.field.textChanged.connect(self._check)
        self.completer.names_ready.connect(lambda: self._check(self.field.text()))
        self._check("")
        # The title bar's text must fit: wide enough for it, with room for the frame's buttons.
        self.setMinimumWidth(max(360, self.fontMetrics().horizontalAdvance(title) + 160))

    def species(self) -> str | None:
        chosen = self.completer.chosen(self.field.text())
        return chosen if isinstance(chosen, str) else None

    def _check(self, text: str) -> None:
        chosen = self.completer.chosen(text) if text.strip() else None
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(isinstance(chosen, str))
        self.why.setText(ambiguity_sentence(text, chosen) if isinstance(chosen, list) else
                         f"Label as {chosen}." if chosen else "")
