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
  the work itself is priority 6. The index job's state and its work are the Engine's
  EngineIndexing (engine_indexing.py), called only as these rules say.
- The range prior (the installed range model matched to the model's species, core/places/range_prior.py)
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

import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThread, Signal

from birdid_app.core.errors import BirdidError
from birdid_app.core.model.model_store import InstalledModel, ModelStore
from birdid_app.gui.engine_indexing import EngineIndexing
from birdid_app.gui.engine_precision import (  # noqa: F401 - re-exported: the window imports them from here
    CONVERTING_INT8,
    MEASURING_PRECISION,
    _Measured,
    measure_in_background,
    settle_heap,
    switch_to_measured,
)
from birdid_app.gui.engine_requests import (  # noqa: F401 - re-exported: the window and tests import them from here
    CheckRequest,
    EngineSettings,
    ExplainRequest,
    IdentifyOutcome,
    IdentifyRequest,
    LoadedModel,
    LoadModel,
    RangePriorState,
    ZoomOutcome,
    ZoomRequest,
    identify_outcome,
    loaded_model,
)

if TYPE_CHECKING:  # torch is loaded on the engine thread, with the model
    from birdid_app.core.model.inference import Classifier
    from birdid_app.core.places.geomodel import GeomodelStore
    from birdid_app.core.places.range_prior import RangePrior


# What _next_command returns for reload_range_prior: not a slot of the table, a few milliseconds' work.
_RELOAD_RANGE_PRIOR = object()


# The command slots, most urgent first: the priority table above.
PRIORITY = ("load", "identify", "zoom", "explain", "check")
_REQUEST_SLOTS = PRIORITY[1:]  # the slots whose commands are requests, with ids, that can be cancelled
_SLOT_OF = {LoadModel: "load", IdentifyRequest: "identify", ZoomRequest: "zoom", ExplainRequest: "explain", CheckRequest: "check"}


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
        # The index job: control set from the GUI thread under _wake, the work on this thread as priority 6.
        self._indexing = EngineIndexing(self, self._wake)
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
        self._indexing.start(library_path, model_name)

    def replan_indexing(self, library_path: Path) -> None:
        """The library's folders changed (LibraryWriter): a running index of it plans again, so a
        folder that is gone is not indexed and one just added is."""
        self._indexing.replan(library_path)

    def pause_indexing(self, paused: bool) -> None:
        self._indexing.pause(paused)

    def cancel_indexing(self) -> None:
        self._indexing.cancel()

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
            self._indexing.end()

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
            switch_to_measured(self, command)
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
            self._indexing.work(*command)

    def _next_command(self):
        """Wait for work and take the most urgent: a slot's command in PRIORITY order, else index
        work as (asked, replan, cancel), from EngineIndexing.take_work; None when the engine stops."""
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
                if (work := self._indexing.take_work()) is not None:
                    return work
                self._wake.wait()

    def _do_load(self, model: InstalledModel, settings: EngineSettings) -> None:
        self._load_generation += 1  # a measurement still running for the model before is dropped
        try:
            import torch

            from birdid_app.core.model.checkpoint import read_checkpoint
            from birdid_app.core.model.inference import Classifier, cpu_has_native_bf16, resolve_device
            from birdid_app.core.model.precision import kept_choice, ready_precision

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
                measure_in_background(self, *measure_later, settings)
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
        settle_heap()  # a collection now, then none walking the model's objects later
        self.model_loaded.emit(loaded_model(model, self._model()))
        self._load_range_prior()

    def _model(self) -> Classifier:
        """The loaded model, for work that runs only once one is (`_starting` has checked)."""
        if self.classifier is None:
            raise BirdidError("No model is loaded: install one from the Model menu.")
        return self.classifier

    def _load_range_prior(self) -> None:
        """The installed range model matched to the loaded model's species, or none: a range model
        that cannot be used is a notice, and the answers are the picture's alone."""
        from birdid_app.core.places.geomodel import GeomodelStore, NoGeomodel

        self._range_prior = None
        if self.classifier is None:
            return  # the next model load builds it
        if self._geomodels is None:
            self._geomodels = GeomodelStore()
        species = len(self.classifier.class_names)
        try:
            from birdid_app.core.places.range_prior import RangePrior

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
            outcome = identify_outcome(self._model(), self._range_prior, request, identification, image, started,
                                       self.notice.emit)
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

    def _decode(self, request: IdentifyRequest | ExplainRequest | CheckRequest | ZoomRequest):
        """The upright RGB image the request is about: decoded, and cropped to its region."""
        from birdid_app.core.photos.photo import crop_region, decode_photo

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
            from birdid_app.core.insight.trust import zoom_box_for
            from birdid_app.core.photos.photo import crop_region

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
            outcome = identify_outcome(self._model(), self._range_prior, region_request, identification, crop, started,
                                       self.notice.emit)
            return ZoomOutcome(found.box, found.reason, outcome)

        self._run_request(request, work, self.zoomed)

    def _do_check(self, request: CheckRequest) -> None:
        def work():
            from birdid_app.core.insight.trust import tta_agreement

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
            from birdid_app.core.insight.explain import cam_for

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
