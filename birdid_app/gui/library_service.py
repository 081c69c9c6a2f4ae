"""The GUI's one library object: where the library file is, its reader, its writer and the
thumbnail cache, and the news of it (changed, damaged, rebuilt, folders). MainWindow makes one
and hands it to every view and controller that needs the library (the Library tab, the map, the
life list, labels, places, the zoom's trust signals), as napari hands its views the ViewerModel;
none of them reaches through another view for it.

Reads run on one dedicated reader thread that keeps the library open (and its embedding matrix
loaded), reloading the matrix when another connection (the indexer, the writer) has committed
since; answers come back on the GUI thread. Changes go to the writer's own thread
(gui/library_writer.py). No SQL here: the service asks `Library` by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from birdid_app.core.library import Library, LibraryDamaged, default_library_path
from birdid_app.gui.images import qimage_from_pil
from birdid_app.gui.jobs import Job
from birdid_app.gui.library_writer import LibraryWriter

EMPTY_LIBRARY = "The library is empty: add a folder and index it first."


class _Reader:
    """The library opened for searching, through one model's identifications, on the reader
    thread only. It never creates the file: a window with no library yet leaves none behind."""

    def __init__(self, path: Path, model: str | None) -> None:
        self.model = model
        self.library = Library(path, model=model, create=False)
        self.data_version = self.library.data_version()

    def fresh(self) -> Library:
        # data_version changes when another connection (the indexer) commits.
        version = self.library.data_version()
        if version != self.data_version:
            self.library.invalidate_vectors()
            self.data_version = version
        return self.library


class LibraryService(QObject):
    """The library for the window's views: `read` off the GUI thread, `writer` for changes,
    `thumbnail`/`thumbnail_file` from the cache, and signals for what happened to it."""

    # Something the person changed (a label, labels, an undo of them, a place) or a rebuild: views that show the
    # library's contents read them again. The writer's own signals say exactly what changed.
    changed = Signal()
    damaged = Signal(str)  # the sentence: the library file is damaged and can be rebuilt
    rebuilt = Signal(object, object)  # where the damaged file was set aside, the folders kept (list[Path])
    folders_changed = Signal(object)  # the library's folders (list[Path]) after a change
    read_failed = Signal(str)  # a read's sentence, or EMPTY_LIBRARY when it had no answer to give

    def __init__(self, engine, path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.path = Path(path) if path is not None else default_library_path()
        self.model_name: str | None = None  # whose identifications reads see; None until a model loads
        self.reader_pool = QThreadPool(self)
        self.reader_pool.setMaxThreadCount(1)
        self.reader_pool.setExpiryTimeout(-1)  # one thread for the reader's SQLite connection, kept
        self._reader: _Reader | None = None
        # Set by shutdown: a read or thumbnail finished on its thread just before can still be
        # waiting in the event queue, and its answer must not reach views already deleted.
        self.closed = False
        self.writer = LibraryWriter(self)
        self.writer.folders_changed.connect(self._folders_changed)
        self.writer.rebuilt.connect(self.rebuilt)
        self.writer.damaged.connect(self.damaged)
        for change in (self.writer.label_set, self.writer.labels_set, self.writer.labels_restored, self.writer.place_set,
                       self.writer.rebuilt):
            change.connect(lambda *_: self.changed.emit())
        engine.library_damaged.connect(self.damaged)

    def set_model(self, name: str | None) -> None:
        """Reads see this model's identifications from now on (the reader reopens with it)."""
        self.model_name = name

    # --- reading -----------------------------------------------------------------------------

    def read(self, query: Callable[[Library], object], on_result: Callable, *, when_missing=None) -> None:
        """Run `query(library)` on the reader thread; `on_result` gets its answer on the GUI
        thread. With no library file yet, `on_result(when_missing)`, or read_failed's EMPTY_LIBRARY
        when that is None; a damaged file is `damaged`'s sentence (the Library tab offers the rebuild)."""
        path, model = self.path, self.model_name

        def work(report, should_cancel):
            if not path.is_file():
                return _NO_LIBRARY
            if self._reader is not None and self._reader.model != model:
                self._reader.library.close()
                self._reader = None
            try:
                if self._reader is None:
                    self._reader = _Reader(path, model)
                return query(self._reader.fresh())
            except LibraryDamaged as error:
                if self._reader is not None:
                    self._reader.library.close()
                    self._reader = None
                return error  # as a result, not raised: a failed Job passes on its sentence only

        def answer(result) -> None:
            if self.closed:
                return
            if isinstance(result, LibraryDamaged):
                self.damaged.emit(str(result))
            elif result is _NO_LIBRARY:
                if when_missing is not None:
                    on_result(when_missing)
                else:
                    self.read_failed.emit(EMPTY_LIBRARY)
            else:
                on_result(result)

        job = Job(work)
        job.succeeded.connect(answer)
        job.failed.connect(lambda message: None if self.closed else self.read_failed.emit(message))
        job.start(self.reader_pool)

    # --- thumbnails --------------------------------------------------------------------------

    def thumbnail(self, photo: Path, on_image: Callable, *, wanted: Callable[[], bool] = lambda: True) -> None:
        """`on_image(QImage)` with the photo's thumbnail, from the cache (made and kept first when
        there is none) on a worker; nothing when the photo cannot be read or `wanted()` is False by then."""

        def work(report, should_cancel):
            from birdid_app.core.photos.thumbnails import thumbnail

            return qimage_from_pil(thumbnail(photo))

        def show(image) -> None:
            if not self.closed and wanted():
                on_image(image)

        job = Job(work)
        job.succeeded.connect(show)
        job.start()

    def thumbnail_file(self, photo: Path, on_answer: Callable, *, skip_decoding: Callable[[], bool]) -> None:
        """`on_answer` gets the kept thumbnail's file (str), made first unless `skip_decoding()`
        says it is no longer wanted (then None), or the OSError/PhotoError that reading the photo met."""

        def work(report, should_cancel):
            from birdid_app.core.errors import PhotoError
            from birdid_app.core.photos.thumbnails import thumbnail_file

            try:
                cached = thumbnail_file(photo, skip_decoding=skip_decoding)
            except (OSError, PhotoError) as error:  # moved or deleted since it was indexed, say
                return error
            return None if cached is None else str(cached)

        job = Job(work)
        job.succeeded.connect(lambda answer: None if self.closed else on_answer(answer))
        job.start()

    # --- changes -----------------------------------------------------------------------------

    def change_folders(self, *, add: list[Path] | tuple[Path, ...] = (), remove: list[Path] | tuple[Path, ...] = ()) -> None:
        self.writer.change_folders(self.path, add=add, remove=remove)

    def _folders_changed(self, library_path: Path, folders: list[Path]) -> None:
        self.engine.replan_indexing(library_path)  # a running index drops or takes up folders
        self.folders_changed.emit(folders)

    def report_damaged(self, message: str) -> None:
        """A view that read the library on its own connection (the map, the life list) met damage."""
        self.damaged.emit(message)

    def rebuild(self) -> None:
        """Set the damaged file aside and start a new one with its folders; `rebuilt` says so."""
        self.close_reader()  # the reader's connection must not hold the damaged file open
        self.engine.cancel_indexing()  # nor an index job's (it stops between two forwards)
        self.writer.rebuild(self.path)

    def close_reader(self) -> None:
        def close(report, should_cancel):
            if self._reader is not None:
                self._reader.library.close()
                self._reader = None

        Job(close).start(self.reader_pool)

    def shutdown(self) -> None:
        """Close the reader's connection on its own thread, then let the threads go; answers
        still on their way are dropped."""
        self.closed = True
        self.close_reader()
        self.reader_pool.waitForDone(5000)
        self.writer.shutdown()


_NO_LIBRARY = object()  # a reader's answer when there is no library file yet
