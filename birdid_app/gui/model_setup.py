"""Getting a model into birdid from the window: download with progress and cancel, or import."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.download import DownloadProgress, download_published_model
from birdid_app.core.errors import Cancelled
from birdid_app.core.model_store import PUBLISHED_MODEL, InstalledModel, ModelStore
from birdid_app.core.progress import describe_progress
from birdid_app.gui.jobs import Job

MODEL_FILE_FILTER = "PyTorch model files (*.pt *.pth);;All files (*)"


class ModelInstaller(QWidget):
    """Download and import buttons, a progress bar with Cancel, and a line for what went wrong.

    Emits `installed(InstalledModel)` once a model is in the store, ready to use."""

    installed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.download_button = QPushButton(f"Download ({PUBLISHED_MODEL.approx_size_mb} MB)")
        self.download_button.setDefault(True)
        self.import_button = QPushButton("Import model file…")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch()
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addLayout(progress_row)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.message)

        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_file_to_import)
        self.cancel_button.clicked.connect(self.cancel)
        self._show_busy(False)

    # --- actions -----------------------------------------------------------------------------

    def start_download(self) -> None:
        self._start(
            lambda report, should_cancel: download_published_model(
                ModelStore(), progress=report, should_cancel=should_cancel
            ),
            "Connecting…",
        )
        self.job.progress.connect(self._show_download_progress)

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

        self._start(work, f"Copying {path.name}…")
        self.job.progress.connect(self._show_import_progress)

    def cancel(self) -> None:
        if self.job is not None:
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling…")
            self.job.cancel()

    # --- job plumbing ------------------------------------------------------------------------

    def _start(self, work, first_words: str) -> None:
        self.message.clear()
        self.progress_bar.setRange(0, 0)  # busy until the first report says how much there is
        self.progress_label.setText(first_words)
        self.job = Job(work, cancel_errors=(Cancelled,))
        self.job.succeeded.connect(self._succeeded)
        self.job.failed.connect(self._failed)
        self.job.cancelled.connect(self._cancelled)
        self.job.finished.connect(self._finished)
        self._show_busy(True)
        self.job.start()

    def _show_download_progress(self, progress: DownloadProgress) -> None:
        if progress.total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * progress.done / progress.total))
        self.progress_label.setText(describe_progress(progress, " · "))

    def _show_import_progress(self, fraction: float) -> None:
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(1000 * fraction))

    def _succeeded(self, model: InstalledModel) -> None:
        self.message.setText(f"{model.name} is installed ({model.trust_label}).")
        self.installed.emit(model)

    def _failed(self, message: str) -> None:
        self.message.setText(message)

    def _cancelled(self) -> None:
        self.message.setText("Cancelled. Nothing was installed; a download resumes where it stopped.")

    def _finished(self) -> None:
        self._show_busy(False)
        self.job = None

    def _show_busy(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy)
        self.import_button.setEnabled(not busy)
        self.progress_bar.setVisible(busy)
        self.progress_label.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)


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
