"""The photos opened in the Identify tab, as a row of thumbnails; shown once there are two. The
row chosen is the photo shown: the window selects it in the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from birdid_app.gui.photo_jobs import THUMBNAIL_SIZE, decode_thumbnail, thumbnail_image
from birdid_app.gui.session import PhotoEntry


class PhotoStrip(QListWidget):
    def __init__(self, run: Callable) -> None:  # run(work, on_success): a job on the thread pool
        super().__init__()
        self.run = run
        self.setAccessibleName("Photos")
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListWidget.Movement.Static)
        self.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.setFixedHeight(THUMBNAIL_SIZE + 44)
        self.hide()

    def add(self, entries: list[PhotoEntry], first_row: int) -> None:
        """The session's new entries, from `first_row` on; the first of them becomes current."""
        for entry in entries:
            item = QListWidgetItem(Path(entry.source).name if entry.path else entry.source)
            item.setToolTip(entry.source)
            self.addItem(item)
            self._make_thumbnail(entry, item)
        self.setVisible(self.count() > 1)
        self.setCurrentRow(first_row)

    def step(self, delta: int) -> None:
        if self.count():
            self.setCurrentRow(max(0, min(self.count() - 1, self.currentRow() + delta)))

    def _make_thumbnail(self, entry: PhotoEntry, item: QListWidgetItem) -> None:
        if entry.image is not None:
            item.setIcon(QIcon(QPixmap.fromImage(thumbnail_image(entry.image))))
            return
        self.run(decode_thumbnail(entry.file()), lambda image: item.setIcon(QIcon(QPixmap.fromImage(image))))
