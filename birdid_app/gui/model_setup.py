"""Getting a model into birdid from the window: download with progress and cancel, or import."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.model.download import download_published_model
from birdid_app.core.model.model_store import PUBLISHED_MODEL, InstalledModel, ModelStore
from birdid_app.gui.job_panel import JobPanel
from birdid_app.gui.jobs import Job

MODEL_FILE_FILTER = "PyTorch model files (*.pt *.pth);;All files (*)"


class ModelInstaller(QWidget):
    """Download and import buttons, a progress bar with Cancel, and a line for what went wrong.

    Emits `installed(InstalledModel)` once a model is in the store, ready to use."""

    installed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.download_button = QPushButton(f"Download ({PUBLISHED_MODEL.approx_size_mb} MB)")
        self.download_button.setDefault(True)
        self.import_button = QPushButton("Import model file…")
        self.panel = JobPanel()
        # The panel's parts, by the names the window and its tests know them by.
        self.progress_bar = self.panel.progress_bar
        self.progress_label = self.panel.progress_label
        self.cancel_button = self.panel.cancel_button
        self.message = self.panel.message

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.panel)

        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_file_to_import)
        self.panel.busy_changed.connect(self._show_busy)

    @property
    def job(self) -> Job | None:
        return self.panel.job

    # --- actions -----------------------------------------------------------------------------

    def start_download(self) -> None:
        job = self._start(
            lambda report, should_cancel: download_published_model(
                ModelStore(), progress=report, should_cancel=should_cancel
            ),
            "Connecting…",
        )
        job.progress.connect(self.panel.show_download_progress)

    def choose_file_to_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model file", "", MODEL_FILE_FILTER)
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> None:
        size = max(path.stat().st_size, 1) if path.is_file() else 1
        copied = [0]

        def work(report, should_cancel):
            def count(chunk: int) -> None:
                copied[0] += chunk
                report(copied[0] / size)

            return ModelStore().import_file(path, progress=count, should_cancel=should_cancel)

        self._start(work, f"Copying {path.name}…").progress.connect(self.panel.show_fraction)

    def cancel(self) -> None:
        self.panel.cancel()

    # --- job plumbing ------------------------------------------------------------------------

    def _start(self, work, first_words: str) -> Job:
        return self.panel.start(
            work, first_words, self._succeeded,
            cancelled_words="Cancelled. Nothing was installed; a download resumes where it stopped.",
        )

    def _succeeded(self, model: InstalledModel) -> None:
        self.message.setText(f"{model.name} is installed ({model.trust_label}).")
        self.installed.emit(model)

    def _show_busy(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy)
        self.import_button.setEnabled(not busy)


class ModelSetupPage(QWidget):
    """What the window shows while no model is installed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title = QLabel()
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        self.explanation = explanation = QLabel(
            "birdid identifies birds with Birder's eu-common model (707 European species). "
            f"Download it once ({PUBLISHED_MODEL.approx_size_mb} MB) and birdid works offline from then on, "
            "or import the model file from a USB stick or a shared folder."
        )
        explanation.setWordWrap(True)
        self.installer = ModelInstaller()

        column = QVBoxLayout()
        column.addWidget(title)
        column.addSpacing(8)
        column.addWidget(explanation)
        column.addSpacing(16)
        column.addWidget(self.installer)
        box = QWidget()
        box.setLayout(column)
        box.setFixedWidth(560)  # a fixed width lets the wrapped text report its true height
        # Centred by stretches, not by an alignment flag: an aligned widget gets its size hint,
        # which for wrapped text is too short, and the explanation was cut off.
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(box)
        centred.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(centred)
        outer.addStretch(2)

    def set_title(self, text: str) -> None:
        self.title.setText(text)
