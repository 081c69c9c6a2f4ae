"""The engine thread: where the model lives, and the order in which it works.

One long-lived thread loads the model once and runs it on request; the window sends it typed
commands through the methods below and hears back through signals, delivered on the GUI thread.
torch is first imported here, so the window appears before it loads.

The rules (the whole scheduler is `Engine._next_command`, which follows this table):

    priority  command          slot                     when a newer one arrives while it waits
    1         LoadModel        one                      replaces it
    2         IdentifyRequest  one                      replaces it; the old one is cancelled
    3         ZoomRequest      one (its own)            replaces it; the old one is cancelled
    4         ExplainRequest   one (its own)            replaces it; the old one is cancelled
    5         CheckRequest     one (its own)            replaces it; the old one is cancelled
    6         index work       the running IndexJob     (not queued: one forward, then back to 1)

- The engine always runs the most urgent command waiting. Index work goes a forward at a time
  (one photo on a CPU, a batch of 8 on a GPU, where that is quick), so an identification asked
  for while indexing runs waits at most one forward, never a whole batch.
- Every request ends in exactly one of: its result (`identified`, `zoomed`, `explained`,
  `checked`), `failed` (one sentence), or `cancelled` (replaced while waiting, cancelled by the
  window, or the engine stopped).
- A zoom (the answer again, on the box where the evidence is) follows the answer it zooms on; the
  mirror-and-crops check, which only tells the person how far to trust an answer, waits for
  everything the person asked for.
- Index control (start, pause, cancel, plan again after a folder change) only sets state here;
  the work itself is priority 6.
- The range prior (the installed range model matched to the model's species, core/range_prior.py)
  is built on this thread right after a model loads, and again when `reload_range_prior` asks
  (taken before any waiting command: it takes milliseconds, and what follows should use it). A
  range model that cannot be used is a `notice`, never a failed load: answers are then the
  picture's alone. Each identification (and a zoom's answer) resolves where and when its photo was
  taken here too (its EXIF, the place the window says a person set, the home place) and carries
  the answer ranked with the prior beside the picture's own; the window only draws them.
- "auto" with nothing measured for this model and computer answers at once in the mode that
  needs no preparation; the int8 conversion runs in a spawned process and the precision trial on
  a thread of its own, whose rounds wait while this thread works (MeasureBeside) and are timed
  again when it worked during one. Its pick comes back like reload_range_prior, before any
  waiting command: the model is built again in that mode, and `precision_switched` says so.
- The engine writes the library only as the index job's commits. What a person changes in the
  library (folders, a rebuild, labels, keywords) goes to the LibraryWriter (library_writer.py), a
  thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

from birdid_app.core.errors import BirdidError
from birdid_app.core.library import LibraryDamaged
from birdid_app.core.model_store import InstalledModel, ModelStore
from birdid_app.gui.images import qimage_from_pil

if TYPE_CHECKING:  # torch is loaded on the engine thread, with the model
    from birdid_app.core.geomodel import GeomodelStore
    from birdid_app.core.inference import Classifier
    from birdid_app.core.library import IndexJob, Library
    from birdid_app.core.range_prior import RangePrior

log = logging.getLogger(__name__)

Region = tuple[int, int, int, int]  # x, y, width, height in upright image pixels


@dataclass(frozen=True)
class IdentifyRequest:
    request_id: int
    source: str  # how the window names the photo: its path, or "Pasted image"
    path: Path | None = None  # a file to decode, or
    image: Any = None  # an upright RGB PIL image already decoded (a pasted one)
    region: Region | None = None
    # Where the photo was taken, as the window knows it: a place a person set for the photo or its
    # folder, (latitude, longitude, "person" | "folder"), and the home place in Settings; the
    # photo's own GPS and date are read here. As `birdid identify` does (cli/identify.py).
    assigned_place: tuple[float, float, str] | None = None
    home_place: tuple[float, float] | None = None


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
class ZoomRequest:
    """The whole photo identified again on the box where the evidence for `class_index` lies."""

    request_id: int
    source: str
    path: Path | None
    image: Any
    class_index: int  # the whole photo's answer
    assigned_place: tuple[float, float, str] | None = None  # as IdentifyRequest's: the zoom's answer is placed too
    home_place: tuple[float, float] | None = None


@dataclass(frozen=True)
class CheckRequest:
    """The answer `class_index` checked against the photo (or region) mirrored and cropped twice."""

    request_id: int
    source: str
    path: Path | None
    image: Any
    region: Region | None
    class_index: int


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
    head: tuple[Any, Any]  # the classifier layer as numpy (weight [classes, dim], bias [classes]): core.trust needs it


@dataclass(frozen=True)
class RangePriorState:
    """What the engine's range prior is now: said after each model load and reload_range_prior."""

    installed: bool  # a range model is installed
    sha256: str | None  # the range model in use; None: none is (not installed, or it could not be used)
    matched: int = 0  # the model's species the range model has a range for
    species: int = 0  # the model's species
    problem: str | None = None  # why an installed range model is not used, one sentence


@dataclass(frozen=True)
class IdentifyOutcome:
    request: IdentifyRequest
    identification: Any  # core Identification: probabilities, embedding, stage maps
    ranked: list[Any]  # every species as a core SpeciesScore, most likely first
    doubt: str | None  # why the top answer is not to be trusted, or None
    model_view: QImage  # the picture the model looked at: the photo or region squashed to its input
    seconds: float  # decoding and inference
    # Where and when, and the answer with the range prior (computed here, never on the GUI thread):
    range_model: str | None = None  # the SHA-256 of the range model the answer used; None: there was none
    place_answer: Any = None  # core PlaceAnswer; None without a range model or a known place
    where_notes: list[str] = field(default_factory=list)  # resolve_where's sentences
    place_words: str | None = None  # core.place.place_name of the place ("Texel, North Holland, Netherlands")
    place_ranked: list[Any] = field(default_factory=list)  # every species as a PlacedSpecies, by picture and place
    place_by_picture: list[Any] = field(default_factory=list)  # the same by the picture alone
    place_doubt: str | None = None  # doubt() of place_ranked


@dataclass(frozen=True)
class ZoomOutcome:
    box: Region | None  # where the evidence is, in the photo's pixels; None when zooming would not help
    reason: str  # one sentence: why that box, or why none
    outcome: IdentifyOutcome | None  # the answer for the box, as a region's answer; None without a box


# Shown while "auto" precision is measured, and replaced by the outcome once the model is loaded.
MEASURING_PRECISION = (
    "Finding the fastest precision that gives the same answers on this computer, beside your answers "
    "(once for this model)…"
)
# Shown while the int8 copy of the model is made (core/int8.py), once per model file.
CONVERTING_INT8 = "Preparing the int8 copy of the model (once for this model; about half a minute)…"
CONVERTING_INT8_BESIDE = (
    "Preparing the int8 copy of the model beside your answers, to measure the fastest precision "
    "(once for this model; about half a minute)…"
)

# While a library scan walks the folders on a pool thread, the engine looks back at its queue
# this often: an interactive request waits at most this long behind a scan.
SCAN_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class LoadModel:
    model: InstalledModel
    settings: EngineSettings


# What _next_command returns for reload_range_prior: not a slot of the table, a few milliseconds' work.
_RELOAD_RANGE_PRIOR = object()


@dataclass(frozen=True)
class _Measured:
    """"auto" measured beside the answers: switch to its pick (taken before any waiting command)."""

    generation: int  # the load it was measured for; a later load makes it stale
    checkpoint: Any
    choice: Any  # core PrecisionChoice
    settings: EngineSettings


class MeasureBeside:
    """core.precision.Pause for a trial beside the engine: a round waits while the engine works
    (an answer, a zoom, an index step), and one the engine worked during is timed again."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def wait_until_idle(self) -> None:
        while not self.engine._idle.wait(timeout=0.5) or self.engine._stopping:
            if self.engine._stopping:
                raise _Stopped()

    def activity(self) -> int:
        with self.engine._wake:
            return self.engine._activity


class _Stopped(Exception):
    """The engine stopped while a trial beside it waited: the trial ends, nothing is kept."""

# The command slots, most urgent first: the priority table above.
PRIORITY = ("load", "identify", "zoom", "explain", "check")
_REQUEST_SLOTS = PRIORITY[1:]  # the slots whose commands are requests, with ids, that can be cancelled
_SLOT_OF = {
    LoadModel: "load", IdentifyRequest: "identify", ZoomRequest: "zoom", ExplainRequest: "explain",
    CheckRequest: "check",
}


class Engine(QThread):
    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(str)
    identified = Signal(object)  # IdentifyOutcome
    failed = Signal(int, str)  # request id, one sentence
    cancelled = Signal(int)  # request id: cancelled, replaced while waiting, or the engine stopped
    working = Signal(int)  # request id now being worked on
    notice = Signal(str)  # something the person should know, e.g. the GPU ran out of memory
    # The precision "auto" measured beside the answers is now the one running (or stays): a line
    # the window keeps until the person has seen it.
    precision_switched = Signal(str)
    explained = Signal(int, object)  # request id, [H_s, W_s] class-activation map in 0..1
    zoomed = Signal(int, object)  # request id, ZoomOutcome
    checked = Signal(int, object)  # request id, core.trust.Agreement
    index_started = Signal(object)  # the IndexSummary of the scan: what is unchanged, moved, gone
    index_progress = Signal(object)  # IndexProgress
    index_finished = Signal(object)  # IndexSummary; also after a cancel, with what was done
    index_failed = Signal(str)
    library_damaged = Signal(str)  # the sentence: the library file is damaged and can be rebuilt
    range_prior_changed = Signal(object)  # RangePriorState: after a model loads and after reload_range_prior

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._wake = threading.Condition()
        self._slots: dict[str, Any] = dict.fromkeys(PRIORITY)
        self._cancelled: set[int] = set()
        self._stopping = False
        self.classifier: Classifier | None = None  # touched only on the engine thread
        # Index control, set from the GUI thread; the work runs here as priority 4.
        self._index_asked: tuple[Path, str] | None = None
        self._index_replan = False
        self._index_paused = False
        self._index_cancel = False
        self._index_job: IndexJob | None = None  # the running IndexJob, engine thread only
        self._index_target: tuple[Path, str] | None = None  # what the running job indexes
        self._index_planned = False  # the running job's folder scan has finished and been planned
        self._library: Library | None = None
        # Whether the window's indexer zooms on the bird (set from the GUI thread, read when an
        # index starts): the setting "Zoom on the bird in every photo".
        self.index_zoom = False
        # The home place in Settings for the window's indexer, (latitude, longitude) or None: set
        # from the GUI thread, read when an index starts.
        self.index_home_place: tuple[float, float] | None = None
        self._range_prior: RangePrior | None = None  # core RangePrior for the loaded model, engine thread only
        # "auto" precision measured beside the answers (a thread of its own): each load's number,
        # so a measurement for a model loaded before is dropped; its pick, waiting to be switched to.
        self._load_generation = 0
        self._loaded_model: InstalledModel | None = None
        self._measured: _Measured | None = None
        self._activity = 0  # changes as the engine starts and ends each piece of work
        self._idle = threading.Event()
        self._idle.set()
        self._range_prior_asked = False  # reload_range_prior was called; taken before any command
        self._geomodels: GeomodelStore | None = None  # core GeomodelStore, made on the engine thread

    # --- commands, from the GUI thread -------------------------------------------------------

    def load_model(self, model: InstalledModel, settings: EngineSettings) -> None:
        self._put(LoadModel(model, settings))

    def identify(self, request: IdentifyRequest) -> None:
        """Queue an identification, replacing one still waiting (which is cancelled)."""
        self._put(request)

    def reload_range_prior(self) -> None:
        """Load the installed range model again (after an install or a removal); range_prior_changed
        says what came of it. With no model loaded there is nothing to match it to: the next model
        load builds it, and says so then."""
        with self._wake:
            self._range_prior_asked = True
            self._wake.notify()

    def explain(self, request: ExplainRequest) -> None:
        """Queue a class-activation map, replacing one still waiting (which is cancelled)."""
        self._put(request)

    def zoom(self, request: ZoomRequest) -> None:
        """Queue a zoom on the evidence, replacing one still waiting (which is cancelled)."""
        self._put(request)

    def check(self, request: CheckRequest) -> None:
        """Queue a mirror-and-crops check, replacing one still waiting (which is cancelled)."""
        self._put(request)

    def send(self, request: IdentifyRequest | ExplainRequest | ZoomRequest | CheckRequest) -> None:
        """Queue a request in its slot, replacing one still waiting there (which is cancelled)."""
        self._put(request)

    def _put(self, command) -> None:
        slot = _SLOT_OF[type(command)]
        with self._wake:
            replaced, self._slots[slot] = self._slots[slot], command
            self._wake.notify()
        if replaced is not None and slot != "load":
            self.cancelled.emit(replaced.request_id)

    def cancel(self, request_id: int) -> None:
        """Cancel a request: dropped if still waiting, its result discarded if under way."""
        with self._wake:
            self._cancelled.add(request_id)
            for slot in _REQUEST_SLOTS:
                waiting = self._slots[slot]
                if waiting is not None and waiting.request_id == request_id:
                    self._slots[slot] = None
                    self._cancelled.discard(request_id)
                    self.cancelled.emit(request_id)

    def start_indexing(self, library_path: Path, model_name: str) -> None:
        with self._wake:
            self._index_asked = (Path(library_path), model_name)
            self._index_paused = self._index_cancel = False
            self._wake.notify()

    def replan_indexing(self, library_path: Path) -> None:
        """The library's folders changed (LibraryWriter): a running index of it plans again, so a
        folder that is gone is not indexed and one just added is."""
        with self._wake:
            if self._index_target is not None and self._index_target[0] == Path(library_path):
                self._index_replan = True
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
        """Finish the step under way, cancel what waits, and end the thread; blocks until it has."""
        with self._wake:
            self._stopping = True
            dropped = [self._slots[slot] for slot in _REQUEST_SLOTS if self._slots[slot] is not None]
            self._slots = dict.fromkeys(PRIORITY)
            self._wake.notify()
        for request in dropped:
            self.cancelled.emit(request.request_id)
        self.wait()

    # --- the engine thread -------------------------------------------------------------------

    def run(self) -> None:
        try:
            while (command := self._next_command()) is not None:
                self._working(True)
                try:
                    self._run_command(command)
                finally:
                    self._working(False)
        finally:
            self._end_indexing()

    def _working(self, working: bool) -> None:
        """Mark the engine busy or idle, for a precision trial running beside it (MeasureBeside)."""
        with self._wake:
            self._activity += 1
        if working:
            self._idle.clear()
        else:
            self._idle.set()

    def _run_command(self, command) -> None:
        if isinstance(command, _Measured):
            self._switch_to_measured(command)
        elif command is _RELOAD_RANGE_PRIOR:
            self._load_range_prior()
        elif isinstance(command, LoadModel):
            self._do_load(command.model, command.settings)
        elif isinstance(command, IdentifyRequest):
            self._do_identify(command)
        elif isinstance(command, ExplainRequest):
            self._do_explain(command)
        elif isinstance(command, ZoomRequest):
            self._do_zoom(command)
        elif isinstance(command, CheckRequest):
            self._do_check(command)
        else:
            self._do_index_work(*command)

    def _next_command(self):
        """Wait for work and take the most urgent: a slot's command in PRIORITY order, else index
        work as ("index", asked, replan, cancel); None when the engine stops."""
        with self._wake:
            while True:
                if self._stopping:
                    return None
                if self._range_prior_asked:
                    self._range_prior_asked = False
                    return _RELOAD_RANGE_PRIOR
                if self._measured is not None:
                    measured, self._measured = self._measured, None
                    return measured
                for slot in PRIORITY:
                    if self._slots[slot] is not None:
                        command, self._slots[slot] = self._slots[slot], None
                        return command
                if self._index_cancel or self._index_asked is not None or self._index_replan or (
                    self._index_job is not None and not self._index_paused
                ):
                    work = (self._index_asked, self._index_replan, self._index_cancel)
                    self._index_asked, self._index_replan, self._index_cancel = None, False, False
                    return work
                self._wake.wait()

    def _do_index_work(self, asked: tuple[Path, str] | None, replan: bool, cancel: bool) -> None:
        if cancel and self._index_job is not None:
            summary = self._index_job.summary
            self._end_indexing()
            self.index_finished.emit(summary)
            return
        try:
            if replan and self._index_job is not None and asked is None:
                asked = self._index_target  # a folder changed: the same index, planned again
            if asked is not None:
                self._begin_indexing(*asked)
            if self._index_job is not None and not self._index_planned:
                # Wait a little for the scan, then go round again: a request that arrives
                # meanwhile is served first.
                planned = self._index_job.plan_when_scanned(timeout=SCAN_POLL_SECONDS)
                if planned is not None:
                    self._index_planned = True
                    self.index_started.emit(planned)
                    self.index_progress.emit(self._index_job_progress(self._index_job))
                return
            if self._index_job is not None and not self._index_job.step(photos=self._forward_size()):
                summary = self._index_job.summary
                self._refresh_place_answers()
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

    def _forward_size(self) -> int:
        """Photos per index forward: one on a CPU (a forward of 8 there takes seconds, and an
        identification asked for meanwhile waits for it); a whole batch on a GPU."""
        from birdid_app.core.library import BATCH_SIZE

        return 1 if self.classifier is None or self.classifier.device.type == "cpu" else BATCH_SIZE

    def _begin_indexing(self, library_path: Path, model_name: str) -> None:
        from birdid_app.core.library import IndexJob, Library
        from birdid_app.core.trust import index_identifier

        self._end_indexing()
        if self.classifier is None:
            raise BirdidError("No model is loaded: install one from the Model menu before indexing.")
        classifier = self.classifier
        self._library = Library(library_path, model=model_name)
        self._index_target = (library_path, model_name)
        # The setting "Zoom on the bird in every photo": full-resolution decoding and a zoom per photo.
        identify, decode_size, prepare = index_identifier(classifier, zoom=self.index_zoom)
        # Raises IndexerBusy while `birdid index` (or another window) indexes this library.
        self._index_job = IndexJob(
            self._library, identify, model_name, progress=self.index_progress.emit, decode_size=decode_size,
            prepare=prepare,
            species_names=classifier.class_names, range_prior=self._range_prior, home_place=self.index_home_place,
        )
        self._index_planned = False
        self._index_job.start_scan()

    def _refresh_place_answers(self) -> None:
        """After an index: photos indexed before the range model was installed, or before a place
        was set for their folder, ranked again from their stored embeddings (no forward; a
        library of 100,000 photos takes seconds, once)."""
        if self._range_prior is None or self._library is None or self._index_target is None:
            return
        from birdid_app.core.library import refresh_place_answers

        refresh_place_answers(self._library, self._index_target[1], self._range_prior,
                              self._model().head_weights(), home_place=self.index_home_place)

    def _index_job_progress(self, job: IndexJob):
        from birdid_app.core.library import IndexProgress

        return IndexProgress(job.done, job.total, 0.0, None, "")

    def _end_indexing(self) -> None:
        if self._index_job is not None:
            self._index_job.close()
            self._index_job = None
        if self._library is not None:
            self._library.close()
            self._library = None

    def _do_load(self, model: InstalledModel, settings: EngineSettings) -> None:
        self._load_generation += 1  # a measurement still running for the model before is dropped
        try:
            import torch

            from birdid_app.core.checkpoint import read_checkpoint
            from birdid_app.core.inference import Classifier, cpu_has_native_bf16, resolve_device
            from birdid_app.core.precision import kept_choice, ready_precision

            if settings.cpu_threads > 0:
                torch.set_num_threads(settings.cpu_threads)
            path = ModelStore().checked_path(model)
            # check_crc=False: checked_path has compared the file's CRC-32s once, and recorded it.
            checkpoint = read_checkpoint(path, check_crc=False)
            precision, measure_later = settings.precision, None
            if precision == "auto":
                device, native_bf16 = resolve_device(settings.device), cpu_has_native_bf16()
                if kept_choice(checkpoint, device, native_bf16=native_bf16) is None:
                    # Answer first, in a mode that needs no preparation; the int8 conversion and the
                    # trial run beside the answers, and the engine switches when they are done.
                    precision = ready_precision(device, native_bf16=native_bf16)
                    measure_later = (checkpoint, device, native_bf16)
            self.classifier = Classifier(
                checkpoint,
                device=settings.device,
                precision=precision,
                on_converting=lambda: self.notice.emit(CONVERTING_INT8),
            )
            if measure_later is not None:
                self.classifier.precision_reason = (
                    f"{precision} for now: the fastest precision for this computer is being measured beside your "
                    "answers (once for this model)"
                )
                self._measure_in_background(*measure_later, settings)
        except BirdidError as error:
            self.classifier = self._range_prior = None
            self.model_failed.emit(str(error))
            return
        except Exception as error:  # noqa: BLE001 - out of memory, a driver error: say so, keep running
            traceback.print_exc()
            self.classifier = self._range_prior = None
            self.model_failed.emit(f"The model could not be loaded: {type(error).__name__}: {error}")
            return
        self._loaded_model = model
        self.model_loaded.emit(self._loaded(model))
        self._load_range_prior()

    def _measure_in_background(self, checkpoint, device, native_bf16: bool, settings: EngineSettings) -> None:
        """Convert int8 (once per model) and run the precision trial on a thread of its own, its
        timing waiting while the engine works (MeasureBeside); its pick comes back as _Measured."""
        from birdid_app.core.precision import choose_precision

        generation = self._load_generation
        answering_in = self._model().precision

        def stop_if_stopping(line: str) -> None:
            if gone():
                raise _Stopped()  # between steps: a trial for a model no longer loaded keeps nothing

        def gone() -> bool:
            return self._stopping or generation != self._load_generation

        def tell(message: str) -> None:
            # The window (and this engine object) may be gone by the time a step ends: say nothing then.
            if not gone():
                try:
                    self.notice.emit(message)
                except RuntimeError:  # the engine's C++ object was deleted as the app closed
                    pass

        def measure() -> None:
            from birdid_app.core.int8 import Int8Unavailable, convert_in_a_process
            from birdid_app.core.precision import candidate_precisions

            try:
                if "int8" in candidate_precisions(device, native_bf16=native_bf16):
                    tell(CONVERTING_INT8_BESIDE)
                    try:
                        convert_in_a_process(checkpoint, should_stop=gone)
                    except Int8Unavailable as error:  # the trial says so too, and never picks int8
                        if gone():
                            return  # the app closing ended the conversion: nothing went wrong
                        log.warning("%s", error)
                    if gone():
                        return
                choice = choose_precision(
                    checkpoint, device, native_bf16=native_bf16, pause=MeasureBeside(self),
                    on_measuring=lambda: tell(MEASURING_PRECISION), on_progress=stop_if_stopping,
                )
            except _Stopped:
                return
            except Exception as error:  # noqa: BLE001 - a failed measurement leaves the answers as they are
                if gone():
                    return
                traceback.print_exc()
                tell(f"The fastest precision could not be measured ({type(error).__name__}: {error}); "
                     f"birdid goes on in {answering_in}.")
                return
            with self._wake:
                if not gone():
                    self._measured = _Measured(generation, checkpoint, choice, settings)
                    self._wake.notify()

        threading.Thread(target=measure, name="birdid-precision-trial", daemon=True).start()

    def _switch_to_measured(self, measured: _Measured) -> None:
        """Run in the mode the trial picked (the model is built again in it; int8 from the kept
        conversion), and say so once in a line that stays."""
        from birdid_app.core.inference import Classifier

        if measured.generation != self._load_generation or self.classifier is None:
            return
        choice = measured.choice
        before = self.classifier.precision
        if choice.precision != before:
            try:
                classifier = Classifier(measured.checkpoint, device=measured.settings.device, precision=choice.precision)
            except Exception as error:  # noqa: BLE001 - e.g. the kept int8 file gone: keep answering as before
                traceback.print_exc()
                self.notice.emit(f"Could not switch to {choice.precision} ({error}); birdid goes on in {before}.")
                return
            self.classifier = classifier
        self.classifier.precision_reason = choice.describe()
        model = self._loaded_model
        if model is not None:
            self.model_loaded.emit(self._loaded(model))
        if choice.precision != before:
            self.precision_switched.emit(f"Now answering in {choice.precision}, measured fastest on this computer "
                                         f"({choice.describe()}).")
        else:
            self.precision_switched.emit(f"{before} stays: measured fastest on this computer ({choice.describe()}).")

    def _loaded(self, model: InstalledModel) -> LoadedModel:
        from birdid_app.core.inference import available_devices

        classifier = self._model()
        return LoadedModel(
            name=model.name,
            trust=model.trust_label,
            device=str(classifier.device),
            precision=classifier.precision,
            precision_reason=classifier.precision_reason,
            class_names=list(classifier.class_names),
            devices=available_devices(),
            head=classifier.head_weights(),
        )

    def _model(self) -> Classifier:
        """The loaded model, for work that runs only once one is (`_starting` has checked)."""
        if self.classifier is None:
            raise BirdidError("No model is loaded: install one from the Model menu.")
        return self.classifier

    def _load_range_prior(self) -> None:
        """The installed range model matched to the loaded model's species, or none: a range model
        that cannot be used is a notice, and the answers are the picture's alone."""
        from birdid_app.core.geomodel import GeomodelStore, NoGeomodel

        self._range_prior = None
        if self.classifier is None:
            return  # the next model load builds it
        if self._geomodels is None:
            self._geomodels = GeomodelStore()
        species = len(self.classifier.class_names)
        try:
            from birdid_app.core.range_prior import RangePrior

            self._range_prior = RangePrior(self._geomodels.load(), self.classifier.class_names)
        except NoGeomodel:
            state = RangePriorState(installed=False, sha256=None, species=species)
        except BirdidError as error:
            state = RangePriorState(installed=True, sha256=None, species=species, problem=str(error))
        except Exception as error:  # noqa: BLE001 - ONNX Runtime missing or failing: the picture still answers
            traceback.print_exc()
            problem = f"The range model could not be loaded: {type(error).__name__}: {error}"
            state = RangePriorState(installed=True, sha256=None, species=species, problem=problem)
        else:
            state = RangePriorState(True, self._range_prior.geomodel.sha256, len(self._range_prior.match.matches), species)
        if state.problem:
            self.notice.emit(f"{state.problem.rstrip('.')}: the species are ranked by the picture alone.")
        self.range_prior_changed.emit(state)

    def _starting(self, request) -> bool:
        """Whether to work on `request` now; if not, it has ended (cancelled, or failed: no model)."""
        if self._was_cancelled(request):
            return False
        if self.classifier is None:
            self.failed.emit(request.request_id, "No model is loaded: install one from the Model menu.")
            return False
        self.working.emit(request.request_id)
        return True

    def _do_identify(self, request: IdentifyRequest) -> None:
        if not self._starting(request):
            return
        started = time.perf_counter()
        try:
            image = self._decode(request)
            if self._was_cancelled(request):
                return
            (identification,) = self._model().identify_images([image], [request.source])
            outcome = self._outcome(request, identification, image, started)
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
        classifier = self._model()
        if classifier.notice:  # e.g. the GPU ran out of memory and the CPU took over
            self.notice.emit(classifier.notice)
            classifier.notice = None
        self.identified.emit(outcome)

    def _outcome(self, request: IdentifyRequest, identification, image, started: float) -> IdentifyOutcome:
        """`identification` of `image` as the window shows it: ranked, doubted, with the picture
        the model saw, placed (where and when, and the answer with the range prior), and the
        seconds since `started`."""
        from birdid_app.core.inference import doubt
        from birdid_app.core.preprocess import squash_to_input_size

        ranked = identification.ranked()
        model_view = qimage_from_pil(squash_to_input_size(image, self._model().image_size))
        place = self._placed(request, identification)
        return IdentifyOutcome(request, identification, ranked, doubt(ranked), model_view, time.perf_counter() - started,
                               **place)

    def _placed(self, request: IdentifyRequest, identification) -> dict:
        """IdentifyOutcome's place fields for a request: where and when as `birdid identify`
        resolves it, and the answer with the range prior. Nothing without a range prior."""
        from birdid_app.core.inference import doubt
        from birdid_app.core.photo import photo_metadata
        from birdid_app.core.place import PlaceError, place_name, resolve_where

        prior = self._range_prior
        if prior is None:
            return {}
        taken_at, latitude, longitude = photo_metadata(request.path) if request.path is not None else (None,) * 3
        assigned = request.assigned_place
        where, notes = resolve_where(
            option_place=None, option_date=None, photo_taken_at=taken_at, photo_latitude=latitude,
            photo_longitude=longitude, assigned_place=assigned[:2] if assigned else None,
            assigned_source=assigned[2] if assigned else "person", settings_place=request.home_place,
        )
        placed: dict = {"range_model": prior.geomodel.sha256, "where_notes": notes}
        if where is None:
            return placed
        try:
            answer = prior.answer(identification.probabilities, where)
        except Exception as error:  # noqa: BLE001 - the range model failing on one place must not lose the picture's answer
            traceback.print_exc()
            self.notice.emit(f"The range model failed on this place ({type(error).__name__}): ranked by the picture alone.")
            return {}
        try:
            words = place_name(where.latitude, where.longitude)  # the first call reads the list of towns: ~1 s
        except PlaceError:
            words = None  # the offline list of towns is unreadable: the place is shown as coordinates
        by_place = answer.ranked()
        return placed | {
            "place_answer": answer, "place_words": words, "place_ranked": by_place,
            "place_by_picture": answer.ranked_by_picture(), "place_doubt": doubt(by_place),
        }

    def _decode(self, request: IdentifyRequest | ExplainRequest | CheckRequest | ZoomRequest):
        """The upright RGB image the request is about: decoded, and cropped to its region."""
        from birdid_app.core.photo import crop_region, decode_photo

        region = getattr(request, "region", None)
        image = request.image
        if image is None:
            # A region, or a zoom's crop, needs the full resolution; the whole photo only the model's input size.
            draft = None if region or isinstance(request, ZoomRequest) else self._model().image_size
            if request.path is None:
                raise BirdidError(f"{request.source}: there is neither a picture nor a file to decode.")
            image = decode_photo(request.path, draft_size=draft)
        return crop_region(image, region) if region else image

    def _do_zoom(self, request: ZoomRequest) -> None:
        def work():
            from birdid_app.core.photo import crop_region
            from birdid_app.core.trust import zoom_box_for

            started = time.perf_counter()
            image = self._decode(request)
            if self._was_cancelled(request):
                return None
            found = zoom_box_for(self._model(), image, request.class_index)
            if found.box is None:
                return ZoomOutcome(None, found.reason, None)
            crop = crop_region(image, found.box)
            (identification,) = self._model().identify_images([crop], [request.source])
            region_request = IdentifyRequest(request.request_id, request.source, request.path, request.image, found.box,
                                             request.assigned_place, request.home_place)
            return ZoomOutcome(found.box, found.reason, self._outcome(region_request, identification, crop, started))

        self._run_request(request, work, self.zoomed)

    def _do_check(self, request: CheckRequest) -> None:
        def work():
            from birdid_app.core.trust import tta_agreement

            image = self._decode(request)
            if self._was_cancelled(request):
                return None
            return tta_agreement(self._model(), image, request.class_index)

        self._run_request(request, work, self.checked)

    def _run_request(self, request, work, signal) -> None:
        """Run `work()` for a request and emit its result on `signal` with the request id; what it
        raises is the request's `failed` sentence. `work` returns None when it saw a cancel."""
        if not self._starting(request):
            return
        try:
            result = work()
        except BirdidError as error:
            self.failed.emit(request.request_id, str(error))
            return
        except Exception as error:  # noqa: BLE001 - e.g. out of memory in the gradient pass: say so, keep running
            traceback.print_exc()
            self.failed.emit(request.request_id, f"{request.source}: {type(error).__name__}: {error}")
            return
        if result is not None and not self._was_cancelled(request):
            signal.emit(request.request_id, result)

    def _do_explain(self, request: ExplainRequest) -> None:
        def work():
            from birdid_app.core.explain import cam_for

            image = self._decode(request)
            if self._was_cancelled(request):
                return None
            return cam_for(self._model(), image, request.class_index, request.stage)

        self._run_request(request, work, self.explained)

    def _was_cancelled(self, request) -> bool:
        with self._wake:
            cancelled = request.request_id in self._cancelled or self._stopping
            self._cancelled.discard(request.request_id)
        if cancelled:
            self.cancelled.emit(request.request_id)
        return cancelled
