"""The window's library service on its own: reads run on its reader thread and answer on the GUI
thread, a library that is not there is made by no read, damage becomes the `damaged` sentence,
the indexer's commits are seen, thumbnails come from the cache, a rebuild keeps the folders."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QImage

from birdid_app.cli import main
from birdid_app.core.library import Library, default_library_path
from birdid_app.gui.engine import Engine
from birdid_app.gui.library_service import EMPTY_LIBRARY, LibraryService
from conftest import make_photo

WAIT_MS = 30_000


@pytest.fixture
def service(qtbot):
    engine = Engine()  # not started: the service only tells it of folder changes and rebuilds
    service = LibraryService(engine)
    yield service
    service.shutdown()


def answer_of(qtbot, service: LibraryService, query, **kwargs):
    answers: list = []
    service.read(query, answers.append, **kwargs)
    qtbot.waitUntil(lambda: len(answers) == 1, timeout=WAIT_MS)
    return answers[0]


def test_a_read_runs_on_the_reader_thread_and_answers_on_the_gui_thread(qtbot, service, tmp_path):
    folder = tmp_path / "birds"
    folder.mkdir()
    with Library(default_library_path()) as library:
        library.add_folder(folder)
    ran_on, answered_on = [], []

    def query(library):
        ran_on.append(threading.current_thread())
        return library.folders()

    service.read(query, lambda folders: answered_on.append((threading.current_thread(), folders)))
    qtbot.waitUntil(lambda: len(answered_on) == 1, timeout=WAIT_MS)
    assert ran_on[0] is not threading.main_thread()
    assert answered_on == [(threading.main_thread(), [folder.resolve()])]


def test_with_no_library_a_read_makes_none_and_says_so(qtbot, service):
    assert answer_of(qtbot, service, lambda library: library.folders(), when_missing=[]) == []
    with qtbot.waitSignal(service.read_failed, timeout=WAIT_MS) as failed:
        service.read(lambda library: library.folders(), lambda _: pytest.fail("no answer without a library"))
    assert failed.args == [EMPTY_LIBRARY]
    assert not default_library_path().exists()


def test_a_damaged_library_is_the_damaged_sentence(qtbot, service):
    path = default_library_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database " * 400)
    with qtbot.waitSignal(service.damaged, timeout=WAIT_MS) as damaged:
        service.read(lambda library: library.folders(), lambda _: pytest.fail("a damaged file has no answer"))
    assert damaged.args[0].startswith(f"The library {path} is damaged (")


def test_the_reader_sees_what_the_indexer_committed_since(qtbot, service, tmp_path, small_model_file):
    from birdid_app.core.model.model_store import ModelStore

    folder = tmp_path / "birds"
    for i in range(2):
        make_photo(folder / f"b{i}.jpg", size=(160, 120), seed=i)
    model = ModelStore().import_file(small_model_file)
    assert main(["index", str(folder), "--device", "cpu"]) == 0
    service.set_model(model.name)
    assert answer_of(qtbot, service, lambda library: len(library.vectors())) == 2  # the matrix is loaded, kept

    make_photo(folder / "b2.jpg", size=(160, 120), seed=2)
    assert main(["index", str(folder), "--device", "cpu"]) == 0  # another connection commits
    assert answer_of(qtbot, service, lambda library: len(library.vectors())) == 3


def test_thumbnails_come_from_the_cache_unless_no_longer_wanted(qtbot, service, tmp_path):
    from birdid_app.core.photos.thumbnails import THUMBNAIL_SIDE, cache_path

    photo = make_photo(tmp_path / "bird.jpg", size=(640, 480))
    images: list[QImage] = []
    service.thumbnail(photo, images.append)
    qtbot.waitUntil(lambda: len(images) == 1, timeout=WAIT_MS)
    assert max(images[0].width(), images[0].height()) == THUMBNAIL_SIDE and cache_path(photo).is_file()

    files: list = []
    service.thumbnail_file(photo, files.append, skip_decoding=lambda: True)  # kept already: no decoding needed
    qtbot.waitUntil(lambda: len(files) == 1, timeout=WAIT_MS)
    assert files == [str(cache_path(photo))]

    dropped: list[QImage] = []
    asked: list[bool] = []
    service.thumbnail(photo, dropped.append, wanted=lambda: asked.append(False) or False)  # the grid moved on
    qtbot.waitUntil(lambda: asked == [False], timeout=WAIT_MS)
    assert dropped == []

    files.clear()
    service.thumbnail_file(tmp_path / "gone.jpg", files.append, skip_decoding=lambda: False)
    qtbot.waitUntil(lambda: len(files) == 1, timeout=WAIT_MS)
    assert isinstance(files[0], OSError)  # the map says the file is not there any more


def test_folder_changes_and_a_rebuild_are_its_signals(qtbot, service, tmp_path):
    folder = tmp_path / "birds"
    folder.mkdir()
    with qtbot.waitSignal(service.folders_changed, timeout=WAIT_MS) as changed:
        service.change_folders(add=[folder])
    assert changed.args == [[folder.resolve()]]

    path = default_library_path()
    path.write_bytes(b"this is not a database " * 400)
    changes: list = []
    service.changed.connect(lambda: changes.append(True))
    with qtbot.waitSignal(service.rebuilt, timeout=WAIT_MS) as rebuilt:
        service.rebuild()
    damaged_copy, folders = rebuilt.args
    assert damaged_copy.read_bytes().startswith(b"this is not a database") and folders == []
    assert changes == [True]  # views that show the library read it again


def test_answers_still_on_their_way_when_the_window_closes_are_dropped(qtbot, service, tmp_path):
    """A read (or thumbnail) that ends just as the window closes is queued for the GUI thread;
    delivered after shutdown, it would reach views already deleted (a RuntimeError at close)."""
    photo = make_photo(tmp_path / "p.jpg", size=(320, 240), seed=1)
    answers: list = []
    service.read(lambda library: "read", answers.append, when_missing="no library")
    service.thumbnail(photo, answers.append)
    service.thumbnail_file(photo, answers.append, skip_decoding=lambda: False)
    service.shutdown()  # waits for the reader: its answer is in the event queue now
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)  # and the thumbnails' answers
    qtbot.wait(50)  # the queue delivered
    assert answers == []


def test_a_change_ending_after_the_writer_shut_down_is_not_reported(qtbot, service, tmp_path):
    folder = tmp_path / "birds"
    folder.mkdir()
    said: list = []
    service.writer.folders_changed.connect(lambda *args: said.append(args))
    service.writer.failed.connect(said.append)
    service.change_folders(add=[folder])
    service.writer.shutdown()  # the change is made; its news is queued behind the shutdown
    qtbot.wait(50)
    assert said == []
    with Library(default_library_path()) as library:
        assert library.folders() == [folder.resolve()]  # made all the same
