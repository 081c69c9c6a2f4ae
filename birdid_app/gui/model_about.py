"""About the model: what it is, where it came from, whether its bytes are the published ones, and
which precision "auto" measured fastest for it on this computer."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from birdid_app.core.model.model_store import InstalledModel, ModelStore
from birdid_app.core.model.precision import kept_choices  # no torch: it only reads the kept trials
from birdid_app.gui.jobs import Job


def hash_state(model: InstalledModel) -> str:
    if model.verified:
        return f"SHA-256 matches the published model ({model.sha256[:16]}…)"
    return f"SHA-256 {model.sha256[:16]}… is not the published model's: {model.trust_label}"


def precision_state(model: InstalledModel) -> str:
    """What the kept precision trials say, one line each, e.g. "bf16, picked automatically: median
    0.197 s a photo against … (cpu, x86_64 AMD EPYC x2 threads, torch 2.14.1)"."""
    kept = kept_choices(model.path)
    if not kept:
        return 'Not measured on this computer yet: "Automatic" measures it when the model loads.'
    return "\n".join(f"{choice.describe()} ({where})" for where, choice in kept)


class ModelAboutDialog(QDialog):
    def __init__(self, model: InstalledModel, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About the model")
        self.model = model
        self.jobs: list[Job] = []

        self.name = QLabel(model.name)
        self.source = QLabel(model.source if model.origin == "import" else f"downloaded from {model.source}")
        self.classes = QLabel("reading the file…")
        self.file_size = QLabel(f"{model.size / 1e6:.1f} MB")  # not .size: QWidget.size() is Qt's
        self.hash_state = QLabel(hash_state(model))
        self.location = QLabel(str(model.path))
        self.precision = QLabel(precision_state(model))
        for label in (self.name, self.source, self.classes, self.hash_state, self.location, self.precision):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Source", self.source)
        form.addRow("Classes", self.classes)
        form.addRow("Size", self.file_size)
        form.addRow("Integrity", self.hash_state)
        form.addRow("File", self.location)
        form.addRow("Precision", self.precision)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.verify_button = QPushButton("Verify now")
        self.show_folder_button = QPushButton("Show folder")
        buttons.addButton(self.verify_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.show_folder_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.verify_button.clicked.connect(self.verify)
        self.show_folder_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(model.path.parent)))
        )

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())
        self._run(_read_checkpoint_work(model), self._show_classes, self.classes)

    def verify(self) -> None:
        self.verify_button.setEnabled(False)
        self.hash_state.setText("hashing the file…")
        store = ModelStore()
        self._run(lambda report, cancelled: store.verify(self.model), self._show_verified, self.hash_state)

    def _run(self, work, on_result, error_label: QLabel) -> None:
        job = Job(work)
        job.succeeded.connect(on_result)
        job.failed.connect(error_label.setText)
        job.finished.connect(lambda: self.jobs.remove(job))
        self.jobs.append(job)
        job.start()

    def _show_classes(self, checkpoint) -> None:
        height, width = checkpoint.image_size
        self.classes.setText(f"{len(checkpoint.class_names)} species · input {width}×{height} pixels")

    def _show_verified(self, intact: bool) -> None:
        self.verify_button.setEnabled(True)
        if intact:
            self.hash_state.setText(hash_state(self.model) + " · checked just now")
        else:
            self.hash_state.setText("The file is missing or changed since it was installed: download or import it again.")


def _read_checkpoint_work(model: InstalledModel):
    def work(report, should_cancel):
        from birdid_app.core.model.checkpoint import read_checkpoint  # imports torch, on the worker thread

        return read_checkpoint(model.path)

    return work
