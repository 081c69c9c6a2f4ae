"""The person's own label for the photo on screen: confirm the model's species, or correct it.

Labels live in the library (core/library/), so a photo must be in one of its folders; the
window asks the library's writer to store them (library_writer.py).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES
from birdid_app.core.model.species_names import ambiguity_sentence
from birdid_app.gui.species_completer import SpeciesCompleter

CONFIRM_TIP = "Label this photo with the model's best match"
NOT_IN_LIBRARY_TIP = "This photo is in no library: add its folder in the Library tab and index it to label it"


class LabelPanel(QWidget):
    label_chosen = Signal(object)  # the species (or NOT_A_BIRD, UNKNOWN_SPECIES), or None to clear

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.top_species: str | None = None
        self.state = QLabel("Your label: none")
        self.state.setAccessibleName("Your label")
        self.state.setWordWrap(True)
        self.confirm_button = QPushButton("Confi&rm")
        self.confirm_button.setToolTip(CONFIRM_TIP)
        self.species = QLineEdit()
        self.species.setPlaceholderText(f"Correct: a species, “{NOT_A_BIRD}” or “{UNKNOWN_SPECIES}”")
        self.species.setAccessibleName("Correct the species")
        self.completer = SpeciesCompleter(self.species, [NOT_A_BIRD, UNKNOWN_SPECIES])
        self.set_button = QPushButton("Se&t label")
        self.clear_button = QPushButton("Clear")
        # One thing a row, so the panel fits a side panel 300 pixels wide: the state wraps, and
        # Confirm (which carries a species name of any length) has a row of its own and never
        # widens the panel.
        self.species.setMinimumWidth(80)
        self.confirm_button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.confirm_button.setMinimumWidth(120)
        row = QHBoxLayout()
        row.addWidget(self.species, 1)
        row.addWidget(self.set_button)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.state)
        layout.addWidget(self.confirm_button)
        layout.addLayout(row)
        self.confirm_button.clicked.connect(lambda: self.label_chosen.emit(self.top_species))
        self.set_button.clicked.connect(self._set_typed)
        self.species.returnPressed.connect(self._set_typed)
        self.clear_button.clicked.connect(lambda: self.label_chosen.emit(None))
        self.setEnabled(False)

    def set_species_names(self, class_names: list[str]) -> None:
        self.completer.set_class_names(class_names)

    def show_photo(self, top_species: str | None, label: str | None) -> None:
        """The photo now on screen: its model's best match (to confirm) and its label, if any."""
        self.top_species = top_species
        self.confirm_button.setText(f"Confi&rm {top_species}" if top_species else "Confi&rm")
        # Until the library says the photo is in it (set_in_library), nothing can be labelled.
        self.confirm_button.setEnabled(False)
        self.set_button.setEnabled(False)
        self.show_label(label)
        self.setEnabled(True)

    def set_in_library(self, in_library: bool) -> None:
        """Labels live in the library: for a photo in none, nothing here can be chosen, and the
        Confirm button's tooltip says why."""
        for button in (self.confirm_button, self.set_button):
            button.setEnabled(in_library and (button is not self.confirm_button or self.top_species is not None))
        self.species.setEnabled(in_library)
        self.confirm_button.setToolTip(CONFIRM_TIP if in_library else NOT_IN_LIBRARY_TIP)
        self.set_button.setToolTip("" if in_library else NOT_IN_LIBRARY_TIP)
        if not in_library:
            self.state.setText("Your label: none (the photo is in no library)")

    def show_label(self, label: str | None) -> None:
        self.state.setText(f"Your label: {label}" if label else "Your label: none")
        self.clear_button.setEnabled(label is not None)

    def _set_typed(self) -> None:
        species = self.completer.chosen(self.species.text())
        if isinstance(species, list):
            self.state.setText(ambiguity_sentence(self.species.text(), species))
            return
        self.species.clear()
        self.label_chosen.emit(species)
