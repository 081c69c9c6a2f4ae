"""The window when things around it go wrong: a small screen, a settings folder it cannot write,
no model yet, a damaged library. Through qtbot, on the real window."""

from __future__ import annotations

import gc
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from birdid_app.cli import main
from birdid_app.core.library import IndexLock, Library, default_library_path
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import load_settings
from conftest import WINDOW_WAIT_MS, make_photo, open_ready_window, open_window


def test_the_window_fits_the_screen_and_opens_where_it_was_closed(qtbot):
    window = open_window(qtbot)
    available = window.screen().availableGeometry()
    assert available.contains(window.frameGeometry())  # the offscreen screen is 800x600: smaller than 1200x780
    window.resize(760, 500)  # the window's smallest width is about 740
    window.move(available.left() + 30, available.top() + 40)
    qtbot.waitUntil(lambda: window.width() == 760)
    window.close()
    assert load_settings().window_geometry

    again = open_window(qtbot)
    assert (again.width(), again.height()) == (760, 500)
    assert again.frameGeometry().topLeft() == window.frameGeometry().topLeft()
    again.close()


def test_a_photo_opens_even_when_the_settings_cannot_be_saved(qtbot, small_model_file, photo_dir, monkeypatch, tmp_path):
    ModelStore().import_file(small_model_file)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the settings folder should be")
    monkeypatch.setenv("BIRDID_CONFIG_DIR", str(blocker / "birdid"))
    window = open_ready_window(qtbot)
    window.add_photos([photo_dir / "robin.png"])
    assert "settings cannot be saved" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.session.current is not None and window.session.current.outcome() is not None, timeout=WINDOW_WAIT_MS)
    assert window.results.isVisible() and window.session.current.path == photo_dir / "robin.png"
    window.close()  # closing saves again, fails again, and still closes
    assert not window.isVisible()


def test_opening_the_window_without_a_model_leaves_no_library_file(qtbot):
    window = open_window(qtbot)
    window.library_service.reader_pool.waitForDone(5000)  # the folder list was asked for and answered
    assert window.library_view.folders.count() == 0
    window.close()
    assert not default_library_path().exists()


def damage_table(path: Path, table: str) -> None:
    """Fill the first page of `table` with noise: that table is then 'malformed' to SQLite while
    the others (the folders) still read."""
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start : start + page_size] = np.random.default_rng(3).integers(0, 256, page_size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_a_damaged_library_is_offered_for_rebuilding_and_rebuilt(qtbot, small_model_file, tmp_path):
    folder = tmp_path / "birds"
    for i in range(5):
        make_photo(folder / f"b{i}.jpg", size=(320, 240), seed=i)
    ModelStore().import_file(small_model_file)
    assert main(["index", str(folder), "--device", "cpu"]) == 0
    library_path = default_library_path()
    damage_table(library_path, "identifications")

    window = open_ready_window(qtbot)
    view = window.library_view
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.folders.count() == 1, timeout=WINDOW_WAIT_MS)  # the folders still read
    view.duplicates_button.click()  # reads every embedding: SQLite meets the damaged page
    qtbot.waitUntil(lambda: view.rebuild_button.isVisible(), timeout=WINDOW_WAIT_MS)
    assert view.results_label.text().startswith(f"The library {library_path} is damaged (")
    assert "Your photos are untouched" in view.results_label.text()

    with qtbot.waitSignal(window.engine.index_finished, timeout=WINDOW_WAIT_MS):
        view.rebuild_button.click()  # sets the file aside, keeps the folder, indexes it again
    assert not view.rebuild_button.isVisible()
    kept = [p for p in library_path.parent.glob(f"{library_path.name}.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1
    with Library(library_path) as library:
        assert library.integrity_ok() and library.count() == 5 and library.folders() == [folder.resolve()]
    view.duplicates_button.click()
    qtbot.waitUntil(lambda: view.results_label.text().startswith("Near-duplicates"), timeout=WINDOW_WAIT_MS)
    window.close()


def test_birdid_with_a_name_too_long_for_the_system_says_so(capsys):
    # Not a path that exists, so not the window: argparse says what is wrong, in one line.
    with pytest.raises(SystemExit) as exited:
        main(["x" * 300 + ".jpg"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("birdid: ") and "Traceback" not in err


def test_the_window_says_when_another_birdid_is_indexing_the_library(qtbot, small_model_file, tmp_path):
    folder = tmp_path / "birds"
    make_photo(folder / "b0.jpg", size=(320, 240), seed=0)
    ModelStore().import_file(small_model_file)
    with Library(default_library_path()) as library:
        library.add_folder(folder)
    other_indexer = IndexLock(default_library_path())  # as `birdid index` in a terminal holds it
    other_indexer.acquire(wait=False)
    try:
        window = open_ready_window(qtbot)
        view = window.library_view
        with qtbot.waitSignal(window.engine.index_failed, timeout=WINDOW_WAIT_MS):
            view.index_button.click()
        assert view.progress_label.text().startswith("Another birdid is indexing the library")
        assert view.index_button.isEnabled()  # try again later
    finally:
        other_indexer.release()
    with qtbot.waitSignal(window.engine.index_finished, timeout=WINDOW_WAIT_MS):
        view.index_button.click()
    assert "Done: 1 photos identified" in view.progress_label.text()
    window.close()


def test_while_a_window_is_open_garbage_is_collected_on_the_gui_thread_only(qtbot):
    window = open_window(qtbot)
    assert not gc.isenabled()  # no collection in whichever thread allocates: the engine's, say
    collected_on = []
    gc.callbacks.append(lambda phase, info: collected_on.append(threading.current_thread()) if phase == "start" else None)
    try:
        for _ in range(3000):
            cycle = []  # garbage in a cycle, so that the generation counts cross their thresholds
            cycle.append(cycle)
        qtbot.waitUntil(lambda: bool(collected_on), timeout=5000)
        assert set(collected_on) == {threading.main_thread()}
    finally:
        gc.callbacks.pop()
    window.close()
    assert gc.isenabled()
