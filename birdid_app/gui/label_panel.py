"""The person's own label for the photo on screen: confirm the model's species, or correct it.

Labels live in the library (core/library/), so a photo must be in one of its folders; the
window asks the library's writer to store them (library_writer.py).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES
from birdid_app.core.model.species_names import shown_name, typed_species


class LabelPanel(QWidget):
    label_chosen = Signal(object)  # the species (or NOT_A_BIRD, UNKNOWN_SPECIES), or None to clear

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.names: dict[str, str] = {}  # casefolded -> the model's spelling, and the two extras
        self.top_species: str | None = None
        self.state = QLabel("Your label: none")
        self.state.setAccessibleName("Your label")
        self.state.setWordWrap(True)
        self.confirm_button = QPushButton("Confi&rm")
        self.confirm_button.setToolTip("Label this photo with the model's best match")
        self.species = QLineEdit()
        self.species.setPlaceholderText(f"Correct: a species, “{NOT_A_BIRD}” or “{UNKNOWN_SPECIES}”")
        self.species.setAccessibleName("Correct the species")
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
        self.names = {name.casefold(): name for name in [*class_names, NOT_A_BIRD, UNKNOWN_SPECIES]}
        completer = QCompleter(list(self.names.values()), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.species.setCompleter(completer)

    def show_photo(self, top_species: str | None, label: str | None) -> None:
        """The photo now on screen: its model's best match (to confirm) and its label, if any."""
        self.top_species = top_species
        self.confirm_button.setText(f"Confi&rm {top_species}" if top_species else "Confi&rm")
        self.confirm_button.setEnabled(top_species is not None)
        self.show_label(label)
        self.setEnabled(True)

    def show_label(self, label: str | None) -> None:
        self.state.setText(f"Your label: {label}" if label else "Your label: none")
        self.clear_button.setEnabled(label is not None)

    def _set_typed(self) -> None:
        species = typed_species(self.species.text(), self.names.values())
        if species is None:
            self.state.setText(f"{shown_name(self.species.text())} is not one of the model's species.")
            return
        self.species.clear()
        self.label_chosen.emit(species)
