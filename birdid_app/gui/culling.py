"""Culling from a grid of photos with Lightroom's and darktable's keys: P pick, X reject, 1-5
stars, 0 clears. The keys pressed on the grid (a QListWidget) set the cull of the selected
photos on the library's writer thread (library_writer.py's pool: never the GUI thread, never two
writes at once), which writes it to each sidecar and the library (core/library/cull.py); each
item then shows it after its caption.

The grid's owner hands over a way to get the selected photos (id -> path) and the library file;
the cull after a key is worked out on the writer thread from the cull the library holds, so a P
on a photo rated three stars keeps its stars whatever the grid last showed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from birdid_app.core.errors import BirdidError
from birdid_app.core.library import Library, LibraryDamaged
from birdid_app.core.library.cull import Cull, cull_after_key, culls, write_cull
from birdid_app.gui.jobs import Job
from birdid_app.gui.library_writer import LibraryWriter

PHOTO_ID_ROLE = Qt.ItemDataRole.UserRole + 1  # as library_view.py's: the photo's id in the library
CAPTION_ROLE = Qt.ItemDataRole.UserRole + 20  # the item's own caption, before the cull was added
CULL_ROLE = Qt.ItemDataRole.UserRole + 21  # the Cull the item shows

_KEYS = {
    Qt.Key.Key_P: "P", Qt.Key.Key_X: "X", Qt.Key.Key_0: "0", Qt.Key.Key_1: "1", Qt.Key.Key_2: "2",
    Qt.Key.Key_3: "3", Qt.Key.Key_4: "4", Qt.Key.Key_5: "5",
}
_PLAIN = (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)


class CullController(QObject):
    culled = Signal(object, object)  # {photo id: Cull} written, the sentences of the photos that failed
    failed = Signal(str)

    def __init__(self, grid: QListWidget, selected: Callable[[], dict[int, Path]], writer: LibraryWriter,
                 library_path: Callable[[], Path], style: Callable[[], str], *,
                 id_role: int = PHOTO_ID_ROLE) -> None:
        super().__init__(grid)
        self.grid = grid
        self.selected = selected
        self.writer = writer
        self.library_path = library_path
        self.style = style  # the sidecar naming in the person's settings: "lightroom" or "darktable"
        self.id_role = id_role
        grid.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.grid and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = _KEYS.get(Qt.Key(event.key()))
            # Ctrl+P and the like are the menus'; a key with no photo selected is the grid's.
            if key is not None and event.modifiers() in _PLAIN and self.selected():
                self.press(key)
                return True
        return super().eventFilter(watched, event)

    def press(self, key: str) -> None:
        """Set the cull that `key` means on the selected photos, on the writer thread."""
        photos = dict(self.selected())
        library_path, style = Path(self.library_path()), self.style()

        def work(report, should_cancel):
            try:
                with Library(library_path, create=False) as library:
                    now = culls(library, photos)
                    after: dict[Cull, dict[int, Path]] = {}
                    for pid, path in photos.items():
                        after.setdefault(cull_after_key(now.get(pid, Cull()), key), {})[pid] = path
                    written: dict[int, Cull] = {}
                    problems: list[str] = []
                    for cull, chosen in after.items():
                        done = write_cull(library, chosen, cull, style=style)  # type: ignore[arg-type]
                        written.update(dict.fromkeys(done.written, cull))
                        problems += done.problems
                    return written, problems
            except LibraryDamaged as error:
                raise BirdidError(str(error)) from None
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"The cull could not be saved: {error}") from None

        job = Job(work)
        job.succeeded.connect(self._done)
        job.failed.connect(self.failed.emit)
        job.start(self.writer.pool)

    def _done(self, result: tuple[dict[int, Cull], list[str]]) -> None:
        written, problems = result
        self.show_culls(written)
        self.culled.emit(written, problems)

    def show_culls(self, by_id: dict[int, Cull]) -> None:
        """Show each photo's cull after its caption in the grid (the grid's owner may call this
        when it fills the grid, with core.library.cull.culls)."""
        for row in range(self.grid.count()):
            item = self.grid.item(row)
            pid = item.data(self.id_role)
            if pid in by_id:
                show_cull(item, by_id[pid])


def show_cull(item: QListWidgetItem, cull: Cull) -> None:
    """`item`'s caption with the cull after it ("Pick", "Reject", stars), and a rejected photo dimmed."""
    caption = item.data(CAPTION_ROLE)
    if caption is None:
        caption = item.text()
        item.setData(CAPTION_ROLE, caption)
    badge = cull.describe()
    item.setText(f"{caption}\n{badge}" if badge else caption)
    item.setData(CULL_ROLE, cull)
    grid = item.listWidget()
    if grid is not None:
        palette = grid.palette()
        item.setForeground(palette.placeholderText() if cull.rejected else palette.text())
