"""The library's writer for what a person changes: folders added and removed, labels, places set
for a photo or a folder, keywords written into sidecars, a damaged file rebuilt. One thread of its own, so these writes never wait
behind the model, and never run two at once; results come back as signals on the GUI thread.

The index job's own commits are the engine's (engine.py); SQLite's busy timeout lets the two
take turns, and after a folder change the engine is told to plan its running index again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import QObject, QThreadPool, Signal

from birdid_app.core.errors import BirdidError
from birdid_app.core.library import Library, LibraryDamaged, rebuild_library
from birdid_app.core.library.labels import StoredLabel, restore_labels, stored_labels
from birdid_app.gui.jobs import Job


class LabelStep(NamedTuple):
    """One change of labels a person made, as Edit > Undo takes it back."""

    library_path: Path
    text: str  # what was done, for the menu: "label European Robin on 12 photos"
    before: dict[int, StoredLabel | None]  # every touched photo's label before (None: it had none)
    after: dict[int, StoredLabel | None]


KEYWORDS_MIN_PROBABILITY = 0.5  # as `birdid keywords write`: the model's species only from here


class LibraryWriter(QObject):
    folders_changed = Signal(object, object)  # library path, its folders (list[Path]) after the change
    rebuilt = Signal(object, object)  # where the damaged file was set aside, the folders kept
    damaged = Signal(str)  # the sentence: the library file is damaged and can be rebuilt
    failed = Signal(str)
    label_set = Signal(object, object)  # the photo's path, its label now (None: cleared)
    labels_set = Signal(object, object)  # the photos' ids (list[int]), their label now
    # A LabelStep: a label set or cleared, with every touched photo's label before and after.
    label_step = Signal(object)
    labels_restored = Signal(object, object)  # the LabelStep undone or redone, True when undone
    keywords_written = Signal(object, object)  # KeywordsSummary, the sentences of the failures
    # The photo or folder, its place now ((latitude, longitude, name), or None: cleared), and every
    # place set in the library after the change ({path: (latitude, longitude, name)}).
    place_set = Signal(object, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.closed = False  # set by shutdown: what ends after it is not reported to views gone
        self.pool.setMaxThreadCount(1)  # one writer: changes are made in the order asked

    def change_folders(self, library_path: Path, *, add: Sequence[Path] = (), remove: Sequence[Path] = ()) -> None:
        library_path = Path(library_path)

        def work(report, should_cancel):
            try:
                with Library(library_path) as library:
                    for folder in add:
                        library.add_folder(folder)
                    for folder in remove:
                        library.remove_folder(folder)
                    return library.folders()
            except LibraryDamaged as error:
                return error
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"The library's folders could not be changed: {error}") from None

        self._run(work, lambda folders: self.folders_changed.emit(library_path, folders))

    def set_label(self, library_path: Path, photo: Path, species: str | None) -> None:
        """Label a library photo (None clears it); label_set reports the photo and its label."""

        def work(report, should_cancel):
            try:
                with Library(Path(library_path), create=False) as library:
                    found = library.photo_by_path(photo)
                    if found is None:
                        raise BirdidError(
                            f"{photo}: This photo is not in your library: add its folder in the Library tab "
                            "and index it to keep a label."
                        )
                    before = stored_labels(library, [found.id])
                    library.set_label(found.id, species)
                    text = f"label {species} on {photo.name}" if species else f"clear the label of {photo.name}"
                    return photo, species, LabelStep(library_path, text, before, stored_labels(library, [found.id]))
            except LibraryDamaged as error:
                return error
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"{photo}: The label could not be saved: {error}") from None

        def done(result) -> None:
            self.label_step.emit(result[2])
            self.label_set.emit(*result[:2])

        self._run(work, done)

    def set_place(self, library_path: Path, path: Path, latitude: float, longitude: float, name: str | None) -> None:
        """Say where a photo (or every photo under a folder) was taken: the range prior's place for
        it before its own GPS. The photo need not be indexed: the library keeps places by path,
        and is made if there is none yet. place_set reports it."""
        from birdid_app.core.places.place import checked_position

        position = checked_position(latitude, longitude)
        if isinstance(position, str):
            self.failed.emit(f"{path}: The place was not set: {position[:1].lower()}{position[1:]}")
            return

        def work(report, should_cancel):
            try:
                with Library(Path(library_path)) as library:
                    library.set_assigned_place(path, *position, name)
                    return path, (*position, name), library.assigned_places()
            except LibraryDamaged as error:
                return error
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"{path}: The place could not be saved: {error}") from None

        self._run(work, lambda result: self.place_set.emit(*result))

    def clear_place(self, library_path: Path, path: Path) -> None:
        """Forget the place set for a photo or a folder; place_set reports it (as None)."""

        def work(report, should_cancel):
            if not Path(library_path).is_file():
                return path, None, {}  # no library, so no place was ever set
            try:
                with Library(Path(library_path), create=False) as library:
                    library.clear_assigned_place(path)
                    return path, None, library.assigned_places()
            except LibraryDamaged as error:
                return error
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"{path}: The place could not be cleared: {error}") from None

        self._run(work, lambda result: self.place_set.emit(*result))

    def set_labels(self, library_path: Path, photo_ids: list[int], species: str) -> None:
        """Label many library photos at once, in one transaction; labels_set reports them."""

        def work(report, should_cancel):
            try:
                with Library(Path(library_path), create=False) as library:
                    before = stored_labels(library, photo_ids)
                    library.set_labels(photo_ids, species)
                    count = f"{len(photo_ids):,} photo" + ("" if len(photo_ids) == 1 else "s")
                    step = LabelStep(library_path, f"label {species} on {count}", before,
                                     stored_labels(library, photo_ids))
                    return list(photo_ids), species, step
            except LibraryDamaged as error:
                return error
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"The labels of {len(photo_ids)} photos could not be saved: {error}") from None

        def done(result) -> None:
            self.label_step.emit(result[2])
            self.labels_set.emit(*result[:2])

        self._run(work, done)

    def restore_labels(self, step: LabelStep, undo: bool) -> None:
        """Undo a label step (put back its labels before) or redo it (its labels after);
        labels_restored reports it."""

        def work(report, should_cancel):
            try:
                with Library(Path(step.library_path), create=False) as library:
                    restore_labels(library, step.before if undo else step.after)
                    return step, undo
            except LibraryDamaged as error:
                return error
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"Could not {'undo' if undo else 'redo'} {step.text}: {error}") from None

        self._run(work, lambda result: self.labels_restored.emit(*result))

    def write_keywords(self, library_path: Path, model: str | None, settings) -> None:
        """Every library photo's species as keywords for the person's editor (their settings);
        keywords_written reports the summary and the sentences of the sidecars that failed."""

        def work(report, should_cancel):
            from birdid_app.core.library.keywords import write_library_keywords

            problems: list[str] = []
            try:
                with Library(Path(library_path), model=model, create=False) as library:
                    summary = write_library_keywords(
                        library, min_probability=KEYWORDS_MIN_PROBABILITY, confirmed_only=False,
                        style=settings.sidecar_style, root=settings.keyword_root, embed=settings.embed_in_jpeg,
                        on_error=problems.append,
                    )
            except LibraryDamaged as error:
                return error
            return summary, problems

        self._run(work, lambda result: self.keywords_written.emit(*result))

    def rebuild(self, library_path: Path) -> None:
        """Set a damaged library file aside and start a new one with its folders."""

        def work(report, should_cancel):
            try:
                return rebuild_library(Path(library_path))
            except (OSError, sqlite3.Error) as error:
                raise BirdidError(f"The library could not be rebuilt: {error}") from None

        def done(result) -> None:
            damaged_copy, folders = result
            self.rebuilt.emit(damaged_copy, folders)
            self.folders_changed.emit(Path(library_path), folders)

        self._run(work, done)

    def _run(self, work, on_success) -> None:
        def succeeded(result) -> None:
            if self.closed:
                return
            if isinstance(result, LibraryDamaged):
                self.failed.emit(str(result))
                self.damaged.emit(str(result))
            else:
                on_success(result)

        job = Job(work)
        job.succeeded.connect(succeeded)
        job.failed.connect(lambda message: None if self.closed else self.failed.emit(message))
        job.start(self.pool)

    def shutdown(self) -> None:
        self.closed = True
        self.pool.waitForDone(10_000)
