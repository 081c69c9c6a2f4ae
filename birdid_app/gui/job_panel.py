"""One job at a time shown to the person: a progress bar with Cancel, a line saying what is under
way, and a line saying how the last one ended (its result, its one-sentence error, or cancelled).

The model's installer and the range model's dialog both install files this way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from birdid_app.core.errors import Cancelled
from birdid_app.core.model.download import DownloadProgress
from birdid_app.core.progress import describe_progress
from birdid_app.gui.jobs import Job, Work


class JobPanel(QWidget):
    """Runs one Job at a time. `busy_changed(bool)` lets the owner turn its own buttons off while
    one runs; how it ended is written in `message`."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.cancellable = False
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(progress_row)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.message)
        self.cancel_button.clicked.connect(self.cancel)
        self._show_busy(False, cancellable=False)

    def start(
        self,
        work: Work,
        first_words: str,
        on_success: Callable[[Any], None],
        *,
        cancelled_words: str = "Cancelled.",
        cancellable: bool = True,
    ) -> Job:
        """Run `work`; `on_success(result)` on this thread when it succeeds. A job that is not
        `cancellable` (a few seconds at most) shows its line and a busy bar, with no Cancel."""
        self.message.clear()
        self.progress_bar.setRange(0, 0)  # busy until the first report says how much there is
        self.progress_label.setText(first_words)
        self.job = Job(work, cancel_errors=(Cancelled,))
        self.job.succeeded.connect(on_success)
        self.job.failed.connect(self.message.setText)
        self.job.cancelled.connect(lambda: self.message.setText(cancelled_words))
        self.job.finished.connect(self._finished)
        self.cancellable = cancellable
        self._show_busy(True, cancellable)
        self.job.start()
        return self.job

    def cancel(self) -> None:
        if self.job is not None and self.cancellable:
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling…")
            self.job.cancel()

    def show_download_progress(self, progress: DownloadProgress) -> None:
        if progress.total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * progress.done / progress.total))
        self.progress_label.setText(describe_progress(progress, " · "))

    def show_fraction(self, fraction: float) -> None:
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(1000 * fraction))

    def _finished(self) -> None:
        self.job = None
        self._show_busy(False, cancellable=False)

    def _show_busy(self, busy: bool, cancellable: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.progress_label.setVisible(busy)
        self.cancel_button.setVisible(busy and cancellable)
        self.cancel_button.setEnabled(busy and cancellable)
        self.busy_changed.emit(busy)
