"""The engine thread: where the model lives.

One long-lived thread loads the model once and identifies photos on request; the window talks
to it through `load_model` / `identify` / `cancel` and hears back through signals, delivered on
the GUI thread. torch is first imported here, so the window appears before it loads.

At most one identification waits while another runs: a newer request replaces a waiting one
(which is reported as cancelled), because a person stepping through photos wants the one they
are looking at now, not a queue of old ones.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

from birdid_app.core.errors import BirdidError
from birdid_app.core.library import LibraryDamaged
from birdid_app.core.model_store import InstalledModel, ModelStore
from birdid_app.gui.images import qimage_from_pil

Region = tuple[int, int, int, int]  # x, y, width, height in upright image pixels


@dataclass(frozen=True)
class IdentifyRequest:
    request_id: int
    source: str  # how the window names the photo: its path, or "Pasted image"
    path: Path | None = None  # a file to decode, or
    image: Any = None  # an upright RGB PIL image already decoded (a pasted one)
    region: Region | None = None


@dataclass(frozen=True)
class ExplainRequest:
    """A class-activation map for one species on one stage of the photo (or region)."""

    request_id: int
    source: str
    path: Path | None
    image: Any
    region: Region | None
    class_index: int
    stage: int  # 1-4


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"
    precision: str = "auto"
    cpu_threads: int = 0  # 0: torch's default


@dataclass(frozen=True)
class LoadedModel:
    name: str
    trust: str  # "verified", or "unverified, imported from …"
    device: str
    precision: str
    precision_reason: str  # e.g. "bf16, picked automatically: 0.48x fp32's time on this computer, …"
    class_names: list[str]
    devices: list[tuple[str, str]]  # (value, label) of every device this machine offers


@dataclass(frozen=True)
class IdentifyOutcome:
    request: IdentifyRequest
    identification: Any  # core Identification: probabilities, embedding, stage maps
    ranked: list[Any]  # every species as a core SpeciesScore, most likely first
    doubt: str | None  # why the top answer is not to be trusted, or None
    model_view: QImage  # the picture the model looked at: the photo or region squashed to its input
    seconds: float  # decoding and inference


# Shown while "auto" precision is measured, and replaced by the outcome once the model is loaded.
MEASURING_PRECISION = (
    "Finding the fastest precision that gives the same answers on this computer (once for this model; a few seconds)…"
)

# While a library scan walks the folders on a pool thread, the engine looks back at its queue
# this often: an interactive request waits at most this long behind a scan.
SCAN_POLL_SECONDS = 0.05


class Engine(QThread):
    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(str)
    identified = Signal(object)  # IdentifyOutcome
    failed = Signal(int, str)  # request id, one sentence
    cancelled = Signal(int)  # request id: cancelled, or replaced by a newer request while waiting
    working = Signal(int)  # request id now being identified
    notice = Signal(str)  # something the person should know, e.g. the GPU ran out of memory
    explained = Signal(int, object)  # request id, [H_s, W_s] class-activation map in 0..1
    index_started = Signal(object)  # the IndexSummary of the scan: what is unchanged, moved, gone
    index_progress = Signal(object)  # IndexProgress
    index_finished = Signal(object)  # IndexSummary; also after a cancel, with what was done
    index_failed = Signal(str)
    folders_changed = Signal(object)  # the library's folders (list[Path]) after a change asked for
    library_damaged = Signal(str)  # the sentence: the library file is damaged and can be rebuilt
    library_rebuilt = Signal(object, object)  # where the damaged file was set aside, the folders kept

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._wake = threading.Condition()
        self._load: tuple[InstalledModel, EngineSettings] | None = None
        self._waiting: IdentifyRequest | ExplainRequest | None = None
        self._cancelled: set[int] = set()
        self._stopping = False
        self.classifier = None  # touched only on the engine thread
        # Library indexing: asked for from the GUI thread, run here a batch at a time whenever no
        # interactive request waits, so identifying a photo never queues behind a folder.
        self._index_asked: tuple[Path, str] | None = None
        self._index_paused = False
        self._index_cancel = False
        self._index_job = None  # the running IndexJob, engine thread only
        self._index_target: tuple[Path, str] | None = None  # what the running job indexes
        self._index_planned = False  # the running job's folder scan has finished and been planned
        self._library = None
        # Folder additions and removals, and rebuilds of a damaged library (the last field):
        # the engine thread is the library's only writer.
        self._folder_changes: list[tuple[Path, list[Path], list[Path], bool]] = []

    # --- called from the GUI thread ----------------------------------------------------------

    def load_model(self, model: InstalledModel, settings: EngineSettings) -> None:
        with self._wake:
            self._load = (model, settings)
            self._wake.notify()

    def identify(self, request: IdentifyRequest | ExplainRequest) -> None:
        """Queue an identification (or a class-activation map), replacing one still waiting."""
        with self._wake:
            replaced, self._waiting = self._waiting, request
            self._wake.notify()
        if replaced is not None:
            self.cancelled.emit(replaced.request_id)

    def cancel(self, request_id: int) -> None:
        with self._wake:
            self._cancelled.add(request_id)
            if self._waiting is not None and self._waiting.request_id == request_id:
                self._waiting = None
                self.cancelled.emit(request_id)

    def start_indexing(self, library_path: Path, model_name: str) -> None:
        with self._wake:
            self._index_asked = (Path(library_path), model_name)
            self._index_paused = self._index_cancel = False
            self._wake.notify()

    def change_folders(self, library_path: Path, *, add: list[Path] = (), remove: list[Path] = ()) -> None:
        """Add or remove library folders on the engine thread (the library's single writer);
        folders_changed reports the folders after it. A running index is planned again with them."""
        with self._wake:
            self._folder_changes.append((Path(library_path), list(add), list(remove), False))
            self._wake.notify()

    def rebuild_library(self, library_path: Path) -> None:
        """Set a damaged library file aside and start a new one with its folders (on the engine
        thread, the library's writer); library_rebuilt reports it, folders_changed the folders."""
        with self._wake:
            self._folder_changes.append((Path(library_path), [], [], True))
            self._wake.notify()

    def pause_indexing(self, paused: bool) -> None:
        with self._wake:
            self._index_paused = paused
            self._wake.notify()

    def cancel_indexing(self) -> None:
        with self._wake:
            self._index_cancel = True
            self._index_asked = None
            self._wake.notify()

    def stop(self) -> None:
        """Finish the step under way, drop the rest, and end the thread; blocks until it has."""
        with self._wake:
            self._stopping = True
            self._waiting = None
            self._load = None
            self._wake.notify()
        self.wait()

    # --- the engine thread -------------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not (
                        self._stopping or self._load or self._waiting or self._folder_changes or self._indexing_due()
                    ):
                        self._wake.wait()
                    if self._stopping:
                        return
                    load, self._load = self._load, None
                    request = None if load else self._waiting
                    if request is not None:
                        self._waiting = None
                    folder_changes = []
                    if load is None and request is None:
                        folder_changes, self._folder_changes = self._folder_changes, []
                    index_asked = cancel_index = None
                    if load is None and request is None and not folder_changes:  # indexing only when nothing else waits
                        index_asked, self._index_asked = self._index_asked, None
                        cancel_index, self._index_cancel = self._index_cancel, False
                if load is not None:
                    self._do_load(*load)
                elif isinstance(request, ExplainRequest):
                    self._do_explain(request)
                elif request is not None:
                    self._do_identify(request)
                elif folder_changes:
                    self._do_folder_changes(folder_changes)
                else:
                    self._do_index_step(index_asked, cancel_index)
        finally:
            self._end_indexing()

    def _indexing_due(self) -> bool:
        """Called with the lock held: is there indexing to do now?"""
        if self._index_cancel or self._index_asked is not None:
            return True
        return self._index_job is not None and not self._index_paused

    def _do_index_step(self, asked: tuple[Path, str] | None, cancel: bool) -> None:
        if cancel and self._index_job is not None:
            summary = self._index_job.summary
            self._end_indexing()
            self.index_finished.emit(summary)
            return
        try:
            if asked is not None:
                self._begin_indexing(*asked)
            if self._index_job is not None and not self._index_planned:
                # Wait a little for the scan, then go round the loop again: an interactive
                # request that arrives meanwhile is served first.
                summary = self._index_job.plan_when_scanned(timeout=SCAN_POLL_SECONDS)
                if summary is not None:
                    self._index_planned = True
                    self.index_started.emit(summary)
                    self.index_progress.emit(self._index_job_progress())
                return
            if self._index_job is not None and not self._index_job.step():
                summary = self._index_job.summary
                self._end_indexing()
                self.index_finished.emit(summary)
        except BirdidError as error:
            self._end_indexing()
            self.index_failed.emit(str(error))
            if isinstance(error, LibraryDamaged):
                self.library_damaged.emit(str(error))
        except Exception as error:  # noqa: BLE001 - a full disk, a locked file: say so, keep running
            traceback.print_exc()
            self._end_indexing()
            self.index_failed.emit(f"Indexing stopped: {type(error).__name__}: {error}")

    def _do_folder_changes(self, changes: list[tuple[Path, list[Path], list[Path], bool]]) -> None:
        from birdid_app.core.library import Library, rebuild_library

        for library_path, add, remove, rebuild in changes:
            indexing = self._index_job is not None and self._index_target[0] == library_path
            if rebuild:
                if indexing:
                    self._end_indexing()
                    indexing = False
                try:
                    damaged, folders = rebuild_library(library_path)
                except (BirdidError, OSError, sqlite3.Error) as error:
                    self.index_failed.emit(f"The library could not be rebuilt: {error}")
                    continue
                self.library_rebuilt.emit(damaged, folders)
                self.folders_changed.emit(folders)
                continue
            library = self._library if indexing else None
            try:
                if library is None:
                    library = Library(library_path)
                for folder in add:
                    library.add_folder(folder)
                for folder in remove:
                    library.remove_folder(folder)
                folders = library.folders()
            except LibraryDamaged as error:
                self.index_failed.emit(str(error))
                self.library_damaged.emit(str(error))
                continue
            except (BirdidError, OSError, sqlite3.Error) as error:
                self.index_failed.emit(f"The library's folders could not be changed: {error}")
                continue
            finally:
                if library is not None and library is not self._library:
                    library.close()
            self.folders_changed.emit(folders)
            if indexing:
                # The running plan was made for the old folders: plan again, so a folder that is
                # gone is not indexed and one just added is.
                self._do_index_step(self._index_target, cancel=False)

    def _begin_indexing(self, library_path: Path, model_name: str) -> None:
        from birdid_app.core.library import IndexJob, Library

        self._end_indexing()
        if self.classifier is None:
            raise BirdidError("No model is loaded: install one from the Model menu before indexing.")
        classifier = self.classifier
        self._library = Library(library_path, model=model_name)
        self._index_target = (library_path, model_name)
        # Raises IndexerBusy while `birdid index` (or another window) indexes this library.
        self._index_job = IndexJob(
            self._library, lambda images: classifier.identify_images(images, keep_stage_maps=False), model_name,
            progress=self.index_progress.emit, decode_size=classifier.image_size,
        )
        self._index_planned = False
        self._index_job.start_scan()

    def _index_job_progress(self):
        from birdid_app.core.library import IndexProgress

        job = self._index_job
        return IndexProgress(job.done, job.total, 0.0, None, "")

    def _end_indexing(self) -> None:
        if self._index_job is not None:
            self._index_job.close()
            self._index_job = None
        if self._library is not None:
            self._library.close()
            self._library = None

    def _do_load(self, model: InstalledModel, settings: EngineSettings) -> None:
        try:
            import torch

            from birdid_app.core.inference import Classifier, available_devices

            if settings.cpu_threads > 0:
                torch.set_num_threads(settings.cpu_threads)
            path = ModelStore().checked_path(model)
            self.classifier = Classifier.from_file(
                path,
                check_crc=False,  # checked_path has compared the file's CRC-32s once, and recorded it
                device=settings.device,
                precision=settings.precision,
                on_measuring_precision=lambda: self.notice.emit(MEASURING_PRECISION),
            )
        except BirdidError as error:
            self.classifier = None
            self.model_failed.emit(str(error))
            return
        except Exception as error:  # noqa: BLE001 - out of memory, a driver error: say so, keep running
            traceback.print_exc()
            self.classifier = None
            self.model_failed.emit(f"The model could not be loaded: {type(error).__name__}: {error}")
            return
        self.model_loaded.emit(
            LoadedModel(
                name=model.name,
                trust=model.trust_label,
                device=str(self.classifier.device),
                precision=self.classifier.precision,
                precision_reason=self.classifier.precision_reason,
                class_names=list(self.classifier.class_names),
                devices=available_devices(),
            )
        )

    def _do_identify(self, request: IdentifyRequest) -> None:
        if self.classifier is None:
            self.failed.emit(request.request_id, "No model is loaded: install one from the Model menu.")
            return
        self.working.emit(request.request_id)
        started = time.perf_counter()
        try:
            from birdid_app.core.inference import doubt
            from birdid_app.core.preprocess import squash_to_input_size

            image = self._decode(request)
            if self._was_cancelled(request):
                return
            (identification,) = self.classifier.identify_images([image], [request.source])
            model_view = qimage_from_pil(squash_to_input_size(image, self.classifier.image_size))
        except BirdidError as error:
            self.failed.emit(request.request_id, str(error))
            return
        except MemoryError:
            self.failed.emit(request.request_id, f"{request.source}: there was not enough memory to identify it.")
            return
        except Exception as error:  # noqa: BLE001 - e.g. GPU out of memory: report it, keep running
            traceback.print_exc()
            self.failed.emit(request.request_id, f"{request.source}: {type(error).__name__}: {error}")
            return
        if self._was_cancelled(request):
            return
        seconds = time.perf_counter() - started
        if self.classifier.notice:  # e.g. the GPU ran out of memory and the CPU took over
            self.notice.emit(self.classifier.notice)
            self.classifier.notice = None
        ranked = identification.ranked()
        self.identified.emit(IdentifyOutcome(request, identification, ranked, doubt(ranked), model_view, seconds))

    def _decode(self, request: IdentifyRequest | ExplainRequest):
        """The upright RGB image the request is about: decoded, and cropped to its region."""
        from birdid_app.core.photo import crop_region, decode_photo

        image = request.image
        if image is None:
            # A region needs the full resolution; the whole photo only the model's input size.
            draft = None if request.region else self.classifier.image_size
            image = decode_photo(request.path, draft_size=draft)
        return crop_region(image, request.region) if request.region else image

    def _do_explain(self, request: ExplainRequest) -> None:
        if self.classifier is None:
            self.failed.emit(request.request_id, "No model is loaded: install one from the Model menu.")
            return
        self.working.emit(request.request_id)
        try:
            from birdid_app.core.explain import class_activation_map

            image = self._decode(request)
            if self._was_cancelled(request):
                return
            model_input = self.classifier.model_input(image)[None].to(self.classifier.device, self.classifier.dtype)
            cam = class_activation_map(self.classifier.model, model_input, request.class_index, request.stage)
        except BirdidError as error:
            self.failed.emit(request.request_id, str(error))
            return
        except Exception as error:  # noqa: BLE001 - e.g. out of memory in the gradient pass
            traceback.print_exc()
            self.failed.emit(request.request_id, f"{request.source}: {type(error).__name__}: {error}")
            return
        if not self._was_cancelled(request):
            self.explained.emit(request.request_id, cam)

    def _was_cancelled(self, request: IdentifyRequest | ExplainRequest) -> bool:
        with self._wake:
            cancelled = request.request_id in self._cancelled or self._stopping
            self._cancelled.discard(request.request_id)
        if cancelled:
            self.cancelled.emit(request.request_id)
        return cancelled
