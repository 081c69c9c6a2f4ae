"""Model > Range Model…: whether BirdNET's range model is installed, which of the bird model's
species it knows, its attribution; download it (with progress and Cancel, resumable), import its
two files, or remove it. The same facts as `birdid geomodel status`.

Reading the record, loading the range model (ONNX Runtime) and matching the species all run on a
worker; so do the installs and the removal. What was installed stays installed when an install
fails: the store checks the new files before it touches the old ones."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
)

from birdid_app.core.errors import BirdidError
from birdid_app.core.model.species_names import BY_ALIAS, BY_NAME, BY_SCIENTIFIC, SpeciesMatch
from birdid_app.core.places.geomodel import (
    ATTRIBUTION,
    PUBLISHED_GEOMODEL,
    GeomodelError,
    GeomodelRecord,
    GeomodelStore,
)
from birdid_app.core.places.place import PLACE_NAMES_ATTRIBUTION
from birdid_app.gui.job_panel import JobPanel
from birdid_app.gui.jobs import Job

ONNX_FILTER = "ONNX range model (*.onnx);;All files (*)"
LABELS_FILTER = "Label list (*.txt *.tsv *.csv);;All files (*)"
# How a species found its range-model label, in the words of the matched line, in this order.
MATCHED_HOW = {BY_NAME: "by name", BY_SCIENTIFIC: "by scientific name", BY_ALIAS: "through the alias table"}


@dataclass(frozen=True)
class RangeModelFacts:
    """What the dialog shows, read on a worker."""

    record: GeomodelRecord | None  # None: no range model is installed
    species: int | None = None  # the range model's labels; None when it could not be loaded
    match: SpeciesMatch | None = None  # the bird model's species against them; None without a bird model
    problem: str | None = None  # why the installed range model cannot be used, one sentence


def read_facts(store: GeomodelStore, class_names: list[str] | None):
    """A job: the installed range model's record, loaded and checked, and the bird model's species
    matched against its labels (what the engine's range prior will use)."""

    def work(report, should_cancel) -> RangeModelFacts:
        from birdid_app.core.model.species_names import match_species

        record = store.record()
        if record is None:
            return RangeModelFacts(None)
        try:
            geomodel = store.load()
        except BirdidError as error:  # changed or damaged since it was installed: said, and it can be replaced
            return RangeModelFacts(record, problem=str(error))
        except Exception as error:  # noqa: BLE001 - ONNX Runtime missing or failing, as the engine says it
            return RangeModelFacts(record, problem=f"The range model could not be loaded: {type(error).__name__}: {error}")
        match = match_species(class_names, geomodel.labels) if class_names else None
        return RangeModelFacts(record, len(geomodel.labels), match)

    return work


def matched_line(match: SpeciesMatch) -> str:
    """'690 of 707 species matched: 640 by name, 50 through the alias table'."""
    counts = Counter(found.how for found in match.matches.values())
    how = ", ".join(f"{counts[way]} {words}" for way, words in MATCHED_HOW.items() if counts[way])
    line = f"{len(match.matches)} of {len(match.class_names)} species matched"
    return f"{line}: {how}" if how else line


def remove_work(store: GeomodelStore):
    def work(report, should_cancel) -> bool:
        try:
            return store.remove()
        except OSError as error:  # a read-only data folder, say: one sentence naming the file
            raise GeomodelError(Path(error.filename or store.root),
                                f"the range model could not be removed ({error.strerror or error}).") from None

    return work


class GeomodelDialog(QDialog):
    """`changed()` after a range model was installed or removed: the engine loads it again."""

    changed = Signal()

    def __init__(self, class_names: list[str] | None, model_name: str | None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Range model")
        self.store = GeomodelStore()
        self.class_names = list(class_names) if class_names else None
        self.model_name = model_name
        self.facts: RangeModelFacts | None = None
        self.reading: Job | None = None  # the facts being read; an older read's answer is dropped

        self.state = QLabel("Reading…")
        self.source = QLabel()
        self.location = QLabel()
        self.species = QLabel()
        self.matched = QLabel()
        for label in (self.state, self.source, self.location, self.species, self.matched):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.unmatched_title = QLabel()
        self.unmatched_title.setWordWrap(True)
        self.unmatched = QListWidget()
        self.unmatched.setAccessibleName("Species without range data")
        self.unmatched.setMaximumHeight(120)
        self.attribution = QLabel(f"{ATTRIBUTION}\n{PLACE_NAMES_ATTRIBUTION}")
        self.attribution.setWordWrap(True)
        self.attribution.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Range model", self.state)
        form.addRow("Source", self.source)
        form.addRow("File", self.location)
        form.addRow("Species", self.species)
        form.addRow(model_name or "Bird model", self.matched)

        self.download_button = QPushButton(f"&Download (about {PUBLISHED_GEOMODEL.approx_size_mb} MB)")
        self.download_button.setToolTip(
            "BirdNET's range model from the Hugging Face hub, checked against the hash the hub publishes; "
            "a download that stops continues where it stopped the next time"
        )
        self.import_button = QPushButton("&Import…")
        self.import_button.setToolTip("A range model's ONNX file, then its label list (eBird code, scientific name, "
                                      "English name, tab-separated), from a USB stick or a shared folder")
        self.remove_button = QPushButton("&Remove")
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        for button in (self.download_button, self.import_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch()
        buttons.addWidget(self.close_button)
        self.panel = JobPanel()

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.unmatched_title)
        layout.addWidget(self.unmatched)
        layout.addWidget(self.attribution)
        layout.addLayout(buttons)
        layout.addWidget(self.panel)
        self.resize(620, self.sizeHint().height())

        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_files_to_import)
        self.remove_button.clicked.connect(self.remove)
        self.close_button.clicked.connect(self.reject)
        self.panel.busy_changed.connect(self._show_busy)
        self._show_facts(None)
        self.read()

    # --- what is installed -------------------------------------------------------------------

    def read(self) -> None:
        self.reading = job = Job(read_facts(self.store, self.class_names))
        job.succeeded.connect(lambda facts: self._read(job, facts))
        job.failed.connect(lambda message: self._read_failed(job, message))
        job.start()

    def _read(self, job: Job, facts: RangeModelFacts) -> None:
        if job is self.reading:
            self.reading = None
            self._show_facts(facts)

    def _read_failed(self, job: Job, message: str) -> None:
        if job is self.reading:  # ONNX Runtime missing, say: what is installed is still shown as far as known
            self.reading = None
            self.state.setText(message)

    def _show_facts(self, facts: RangeModelFacts | None) -> None:
        self.facts = facts
        record = facts.record if facts is not None else None
        if facts is None:
            self.state.setText("Reading…")
        elif record is None:
            self.state.setText("No range model is installed: the species are ranked by the picture alone. "
                               "Download it, or import its two files.")
        elif facts.problem:
            self.state.setText(f"Installed, but it cannot be used: {facts.problem}")
        else:
            self.state.setText("Installed: the species are ranked by the picture and by where and when "
                               "each photo was taken.")
        self.source.setText("" if record is None else
                            f"downloaded from {record.source}" if record.origin == "download" else
                            f"imported from {record.source}")
        self.location.setText("" if record is None else str(record.model_path))
        self.species.setText("" if facts is None or facts.species is None else f"{facts.species:,} species")
        match = facts.match if facts is not None else None
        if facts is not None and facts.species is not None and match is None:
            self.matched.setText("No bird model is loaded yet: its species are matched once it is.")
        else:
            self.matched.setText("" if match is None else matched_line(match))
        self.unmatched.clear()
        if match is not None and match.unmatched:
            self.unmatched_title.setText(f"No range data for {len(match.unmatched)} species: they are ranked by "
                                         "the picture alone.")
            self.unmatched.addItems(list(match.unmatched))
        elif match is not None:
            self.unmatched_title.setText("Every species has range data.")
        self.unmatched_title.setVisible(match is not None)
        self.unmatched.setVisible(match is not None and bool(match.unmatched))
        self._show_busy(self.panel.job is not None)

    # --- installing and removing -------------------------------------------------------------

    def start_download(self) -> None:
        from birdid_app.core.places.geomodel import download_geomodel

        store = self.store
        job = self.panel.start(
            lambda report, should_cancel: download_geomodel(store, progress=report, should_cancel=should_cancel),
            "Connecting…", self._installed,
            cancelled_words="Cancelled. Nothing was installed; the next Download continues where this one stopped.",
        )
        job.progress.connect(self.panel.show_download_progress)

    def choose_files_to_import(self) -> None:
        model, _ = QFileDialog.getOpenFileName(self, "Import a range model: its ONNX file", "", ONNX_FILTER)
        if not model:
            return
        labels, _ = QFileDialog.getOpenFileName(
            self, "Import a range model: its label list", str(Path(model).parent), LABELS_FILTER
        )
        if labels:
            self.import_files(Path(model), Path(labels))

    def import_files(self, model: Path, labels: Path) -> None:
        store = self.store
        # Reading and checking a range model takes a second or so: a plain line, no Cancel.
        self.panel.start(
            lambda report, should_cancel: store.install(model, labels, origin="import", source=str(model)),
            f"Checking and installing {model.name}…", self._installed, cancellable=False,
        )

    def remove(self) -> None:
        self.panel.start(remove_work(self.store), "Removing the range model…", self._removed, cancellable=False)

    def _installed(self, geomodel) -> None:
        self.panel.message.setText(f"The range model is installed ({len(geomodel.labels):,} species).")
        self.changed.emit()
        self.read()

    def _removed(self, existed: bool) -> None:
        self.panel.message.setText("The range model is removed: the species are ranked by the picture alone."
                                   if existed else "No range model was installed.")
        self.changed.emit()
        self.read()

    def _show_busy(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy)
        self.import_button.setEnabled(not busy)
        self.remove_button.setEnabled(not busy and self.facts is not None and self.facts.record is not None)

    def done(self, result: int) -> None:
        """Closing stops a download under way; it continues where it stopped the next time."""
        self.panel.cancel()
        super().done(result)
