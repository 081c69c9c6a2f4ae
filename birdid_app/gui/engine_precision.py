"""The "auto" precision trial beside the engine (engine.py): the int8 conversion and the trial run
on a thread of their own, whose rounds wait while the engine works (MeasureBeside) and are timed
again when it worked during one; the pick comes back to the engine as _Measured, and
switch_to_measured, on the engine thread, builds the model again in that mode."""

from __future__ import annotations

import gc
import logging
import threading
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from birdid_app.gui.engine_requests import EngineSettings, loaded_model

if TYPE_CHECKING:
    from birdid_app.gui.engine import Engine

log = logging.getLogger(__name__)

# Shown while "auto" precision is measured, and replaced by the outcome once the model is loaded.
MEASURING_PRECISION = (
    "Finding the fastest precision that gives the same answers on this computer, beside your answers "
    "(once for this model)…"
)
# Shown while the int8 copy of the model is made (core/model/int8.py), once per model file.
CONVERTING_INT8 = "Preparing the int8 copy of the model (once for this model; about half a minute)…"
CONVERTING_INT8_BESIDE = (
    "Preparing the int8 copy of the model beside your answers, to measure the fastest precision "
    "(once for this model; about half a minute)…"
)


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


def measure_in_background(engine: Engine, checkpoint, device, native_bf16: bool, settings: EngineSettings) -> None:
    """Convert int8 (once per model) and run the precision trial on a thread of its own, its
    timing waiting while the engine works (MeasureBeside); its pick comes back as _Measured."""
    from birdid_app.core.model.precision import choose_precision

    generation = engine._load_generation
    answering_in = engine._model().precision

    def stop_if_stopping(line: str) -> None:
        if gone():
            raise _Stopped()  # between steps: a trial for a model no longer loaded keeps nothing

    def gone() -> bool:
        return engine._stopping or generation != engine._load_generation

    def tell(message: str) -> None:
        # The window (and this engine object) may be gone by the time a step ends: say nothing then.
        if not gone():
            try:
                engine.notice.emit(message)
            except RuntimeError:  # the engine's C++ object was deleted as the app closed
                pass

    def measure() -> None:
        from birdid_app.core.model.int8 import Int8Unavailable, convert_in_a_process
        from birdid_app.core.model.precision import candidate_precisions

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
                checkpoint, device, native_bf16=native_bf16, pause=MeasureBeside(engine),
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
        with engine._wake:
            if not gone():
                engine._measured = _Measured(generation, checkpoint, choice, settings)
                engine._wake.notify()

    threading.Thread(target=measure, name="birdid-precision-trial", daemon=True).start()


def switch_to_measured(engine: Engine, measured: _Measured) -> None:
    """Run in the mode the trial picked (the model is built again in it; int8 from the kept
    conversion), and say so once in a line that stays."""
    from birdid_app.core.model.inference import Classifier

    if measured.generation != engine._load_generation or engine.classifier is None:
        return
    choice = measured.choice
    before = engine.classifier.precision
    if choice.precision != before:
        try:
            classifier = Classifier(measured.checkpoint, device=measured.settings.device, precision=choice.precision)
        except Exception as error:  # noqa: BLE001 - e.g. the kept int8 file gone: keep answering as before
            traceback.print_exc()
            engine.notice.emit(f"Could not switch to {choice.precision} ({error}); birdid goes on in {before}.")
            return
        engine.classifier = classifier
        settle_heap()
    engine.classifier.precision_reason = choice.describe()
    model = engine._loaded_model
    if model is not None:
        engine.model_loaded.emit(loaded_model(model, engine._model()))
    if choice.precision != before:
        engine.precision_switched.emit(f"Now answering in {choice.precision}, measured fastest on this computer "
                                     f"({choice.describe()}).")
    else:
        engine.precision_switched.emit(f"{before} stays: measured fastest on this computer ({choice.describe()}).")


def settle_heap() -> None:
    """Call on the engine thread once a model is in place. A model is hundreds of thousands of
    Python objects (an int8 graph's fx nodes, tensors' wrappers) that live as long as it does, and
    every full cyclic collection walks them all holding the GIL: 0.3 s with 3 million objects on
    a 2-core EPYC, a stall of the window's thread at whatever moment Python decides. So: collect
    now (the model replaced, if any, goes), then freeze what is alive, which later collections
    skip. Objects freed afterwards are still freed by reference counting; a frozen object in a
    cycle is kept, which is why each model change unfreezes and collects first."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
