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


def test_the_library_tab_shows_each_burst_with_its_best_frame_and_culls_it_by_key(
        qtbot, tmp_path, small_model_file, monkeypatch):
    """Through the real window: Bursts shows every frame's sharpness and marks the sharpest; X on a
    selected frame rejects it in the library and in its sidecar, and the grid says so."""
    from test_cull import burst_frame

    from birdid_app.cli import main
    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.core.settings import Settings, save_settings
    from birdid_app.gui import library_view
    from conftest import open_ready_window

    card = tmp_path / "card"
    burst_frame(card / "f1.jpg", "2026:05:17 06:41:09", 2.0)
    burst_frame(card / "f2.jpg", "2026:05:17 06:41:10", 0)  # the sharp one
    burst_frame(card / "f3.jpg", "2026:05:17 06:41:11", 3.0)
    save_settings(Settings(device="cpu", precision="fp32"))
    ModelStore().import_file(small_model_file)
    assert main(["index", str(card), "--device", "cpu", "--precision", "fp32"]) == 0
    # Random weights see the three frames less alike than a trained model would.
    monkeypatch.setattr(library_view, "BURST_THRESHOLD", 0.5)
    window = open_ready_window(qtbot)
    window.tabs.setCurrentWidget(window.library_view)
    view = window.library_view
    view.bursts_button.click()
    qtbot.waitUntil(lambda: view.results.count() == 3, timeout=WAIT_MS)
    items = {Path(view.results.item(row).data(Qt.ItemDataRole.UserRole)).name: view.results.item(row)
             for row in range(3)}
    assert "★ best" in items["f2.jpg"].text() and not any("★" in items[n].text() for n in ("f1.jpg", "f3.jpg"))
    assert all("burst 1" in item.text() and "sharp " in item.text() for item in items.values())
    assert "sharpest on the bird" in items["f2.jpg"].toolTip()

    view.results.setFocus()
    view.results.clearSelection()
    items["f1.jpg"].setSelected(True)
    with qtbot.waitSignal(view.culling.culled, timeout=WAIT_MS):
        qtbot.keyClick(view.results, Qt.Key.Key_X)
    assert items["f1.jpg"].text().endswith("Reject") and "Cull saved for 1 photo" in view.results_label.text()
    assert exiftool("-s3", "-XMP-xmp:Rating", card / "f1.xmp").strip() == "-1"
    assert not (card / "f2.xmp").exists()

    view.bursts_button.click()  # shown again: the cull is read back from the library
    qtbot.waitUntil(lambda: view.results.count() == 3 and any(
        view.results.item(row).text().endswith("Reject") for row in range(3)), timeout=WAIT_MS)
    window.close()
