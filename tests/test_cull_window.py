"""The culling keys on a real grid (gui/culling.py): P, X, 1-5 and 0 on the selected photos, set
on the library writer's thread into a real library file and the sidecars exiftool reads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidget, QListWidgetItem
from test_sidecar import exiftool, tags

from birdid_app.core.library import Library
from birdid_app.core.library.cull import REJECTED, Cull, culls
from birdid_app.gui.culling import CULL_ROLE, PHOTO_ID_ROLE, CullController
from birdid_app.gui.library_writer import LibraryWriter
from conftest import make_photo

WAIT_MS = 20_000


@pytest.fixture
def grid(qtbot, tmp_path):
    """A grid of three library photos, as the Library tab shows them, and its cull controller."""
    folder = tmp_path / "card"
    library_file = tmp_path / "lib.sqlite3"
    paths = [make_photo(folder / f"frame{i}.jpg", size=(160, 120), seed=i) for i in range(3)]
    with Library(library_file) as library:
        library.add_folder(folder)
        for path in paths:
            library.db.execute("INSERT INTO photos (path, size, mtime_ns, fingerprint) VALUES (?, 1, 1, 'f')", (str(path),))
        library.db.commit()
        ids = {library.photo_by_path(path).id: path for path in paths}  # type: ignore[union-attr]
    widget = QListWidget()
    widget.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
    for pid, path in ids.items():
        item = QListWidgetItem(path.name)
        item.setData(Qt.ItemDataRole.UserRole, path)
        item.setData(PHOTO_ID_ROLE, pid)
        widget.addItem(item)
    qtbot.addWidget(widget)
    widget.show()
    writer = LibraryWriter()

    def selected() -> dict[int, Path]:
        return {item.data(PHOTO_ID_ROLE): item.data(Qt.ItemDataRole.UserRole) for item in widget.selectedItems()}

    controller = CullController(widget, selected, writer, lambda: library_file, lambda: "lightroom")
    yield widget, controller, library_file, list(ids)
    writer.shutdown()


def press(qtbot, widget, controller, key) -> tuple[dict, list]:
    with qtbot.waitSignal(controller.culled, timeout=WAIT_MS) as signal:
        qtbot.keyClick(widget, key)
    return signal.args


def test_keys_set_the_cull_on_the_writer_thread_and_the_item_shows_it(qtbot, grid, monkeypatch):
    widget, controller, library_file, ids = grid
    widget.setCurrentRow(0)
    first = widget.item(0)
    path = first.data(Qt.ItemDataRole.UserRole)

    threads = []
    import birdid_app.gui.culling as culling

    real_write = culling.write_cull
    monkeypatch.setattr(culling, "write_cull", lambda *a, **k: threads.append(threading.current_thread()) or real_write(*a, **k))

    written, problems = press(qtbot, widget, controller, Qt.Key.Key_3)
    assert written == {ids[0]: Cull(3)} and problems == []
    assert threads and threading.main_thread() not in threads  # never on the GUI thread
    assert first.text() == "frame0.jpg\n★★★" and first.data(CULL_ROLE) == Cull(3)
    assert exiftool("-s3", "-XMP-xmp:Rating", path.with_suffix(".xmp")).strip() == "3"

    press(qtbot, widget, controller, Qt.Key.Key_P)  # a pick keeps the stars
    assert first.text() == "frame0.jpg\nPick ★★★"
    found = tags(path.with_suffix(".xmp"))
    assert found["XMP-xmp:Rating"] == 3 and found["XMP-xmp:Label"] == "Green"

    press(qtbot, widget, controller, Qt.Key.Key_X)
    assert first.text() == "frame0.jpg\nReject"
    assert exiftool("-s3", "-XMP-xmp:Rating", path.with_suffix(".xmp")).strip() == "-1"
    assert "XMP-xmp:Label" not in tags(path.with_suffix(".xmp"))
    with Library(library_file) as library:
        assert culls(library) == {ids[0]: Cull(REJECTED)}

    press(qtbot, widget, controller, Qt.Key.Key_0)
    assert first.text() == "frame0.jpg"
    assert "XMP-xmp:Rating" not in tags(path.with_suffix(".xmp"))
    with Library(library_file) as library:
        assert culls(library) == {}


def test_several_selected_photos_each_keep_their_own_stars(qtbot, grid):
    widget, controller, library_file, ids = grid
    widget.setCurrentRow(1)
    press(qtbot, widget, controller, Qt.Key.Key_4)
    widget.selectAll()
    written, _ = press(qtbot, widget, controller, Qt.Key.Key_P)
    assert written == {ids[0]: Cull(0, True), ids[1]: Cull(4, True), ids[2]: Cull(0, True)}
    assert [widget.item(i).text().split("\n")[1] for i in range(3)] == ["Pick", "Pick ★★★★", "Pick"]


def test_modified_keys_and_an_empty_selection_are_left_to_the_grid(qtbot, grid):
    widget, controller, library_file, _ = grid
    widget.clearSelection()
    with qtbot.assertNotEmitted(controller.culled, wait=300):
        qtbot.keyClick(widget, Qt.Key.Key_P)
        widget.setCurrentRow(0)
        qtbot.keyClick(widget, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert widget.item(0).text() == "frame0.jpg"


def test_a_sidecar_that_cannot_be_written_is_one_sentence_and_the_rest_carry_on(qtbot, grid):
    widget, controller, library_file, ids = grid
    locked = widget.item(1).data(Qt.ItemDataRole.UserRole).with_suffix(".xmp")
    locked.write_text("not xmp at all")
    widget.selectAll()
    written, problems = press(qtbot, widget, controller, Qt.Key.Key_X)
    assert set(written) == {ids[0], ids[2]}
    assert problems == [f"{locked}: This sidecar is not XMP that birdid can read, so birdid left it as it was."]
    assert locked.read_text() == "not xmp at all" and widget.item(1).text() == "frame1.jpg"
