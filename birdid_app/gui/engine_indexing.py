"""The index job on the engine thread (engine.py): its state, and its work a forward at a time.

The Engine owns one EngineIndexing and is the only caller; the rules are the engine's
(engine.py's docstring), and here is who calls what, from where:

- `start`, `replan`, `pause`, `cancel`: the GUI thread, through the Engine's methods of those
  names. They only set state, under the engine's lock, and wake the engine.
- `take_work`: Engine._next_command, on the engine thread, with the engine's lock held, when no
  slot's command waits (priority 6).
- `work`, `end`: the engine thread only. `work` does one step (a poll of the scan, one forward,
  a cancel) and returns, so the engine looks at its queue again.

What it says goes out through the Engine's signals (index_started, index_progress,
index_finished, index_failed, library_damaged), emitted on the engine thread as before.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from birdid_app.core.errors import BirdidError
from birdid_app.core.library import LibraryDamaged

if TYPE_CHECKING:  # torch is loaded on the engine thread, with the model
    from birdid_app.core.library import IndexJob, Library
    from birdid_app.gui.engine import Engine

# While a library scan walks the folders on a pool thread, the engine looks back at its queue
# this often: an interactive request waits at most this long behind a scan.
SCAN_POLL_SECONDS = 0.05

# What take_work hands the engine: (asked, replan, cancel).
IndexWork = tuple[tuple[Path, str] | None, bool, bool]


class EngineIndexing:
    def __init__(self, engine: Engine, wake: threading.Condition) -> None:
        self._engine = engine
        self._wake = wake  # the engine's lock and wake-up: index control is set under it
        # Index control, set from the GUI thread; the work runs on the engine thread as priority 6.
        self._asked: tuple[Path, str] | None = None
        self._replan = False
        self._paused = False
        self._cancel = False
        self._job: IndexJob | None = None  # the running IndexJob, engine thread only
        self._target: tuple[Path, str] | None = None  # what the running job indexes
        self._planned = False  # the running job's folder scan has finished and been planned
        self._library: Library | None = None

    # --- control, from the GUI thread --------------------------------------------------------

    def start(self, library_path: Path, model_name: str) -> None:
        with self._wake:
            self._asked = (Path(library_path), model_name)
            self._paused = self._cancel = False
            self._wake.notify()

    def replan(self, library_path: Path) -> None:
        with self._wake:
            if self._target is not None and self._target[0] == Path(library_path):
                self._replan = True
                self._wake.notify()

    def pause(self, paused: bool) -> None:
        with self._wake:
            self._paused = paused
            self._wake.notify()

    def cancel(self) -> None:
        with self._wake:
            self._cancel = True
            self._asked = None
            self._wake.notify()

    # --- the engine thread -------------------------------------------------------------------

    def take_work(self) -> IndexWork | None:
        """The index work waiting, taken (the engine's lock is held), or None when there is none."""
        if self._cancel or self._asked is not None or self._replan or (self._job is not None and not self._paused):
            work = (self._asked, self._replan, self._cancel)
            self._asked, self._replan, self._cancel = None, False, False
            return work
        return None

    def work(self, asked: tuple[Path, str] | None, replan: bool, cancel: bool) -> None:
        engine = self._engine
        if cancel and self._job is not None:
            summary = self._job.summary
            self.end()
            engine.index_finished.emit(summary)
            return
        try:
            if replan and self._job is not None and asked is None:
                asked = self._target  # a folder changed: the same index, planned again
            if asked is not None:
                self._begin(*asked)
            if self._job is not None and not self._planned:
                # Wait a little for the scan, then go round again: a request that arrives
                # meanwhile is served first.
                planned = self._job.plan_when_scanned(timeout=SCAN_POLL_SECONDS)
                if planned is not None:
                    self._planned = True
                    engine.index_started.emit(planned)
                    engine.index_progress.emit(self._job_progress(self._job))
                return
            if self._job is not None and not self._job.step(photos=self.forward_size()):
                summary = self._job.summary
                self._refresh_place_answers()
                self.end()
                engine.index_finished.emit(summary)
        except BirdidError as error:
            self.end()
            engine.index_failed.emit(str(error))
            if isinstance(error, LibraryDamaged):
                engine.library_damaged.emit(str(error))
        except Exception as error:  # noqa: BLE001 - a full disk, a locked file: say so, keep running
            traceback.print_exc()
            self.end()
            engine.index_failed.emit(f"Indexing stopped: {type(error).__name__}: {error}")

    def forward_size(self) -> int:
        """Photos per index forward: one on a CPU (a forward of 8 there takes seconds, and an
        identification asked for meanwhile waits for it); a whole batch on a GPU."""
        from birdid_app.core.library import BATCH_SIZE

        classifier = self._engine.classifier
        return 1 if classifier is None or classifier.device.type == "cpu" else BATCH_SIZE

    def _begin(self, library_path: Path, model_name: str) -> None:
        from birdid_app.core.insight.bird_box import index_steps
        from birdid_app.core.library import IndexJob, Library

        engine = self._engine
        self.end()
        if engine.classifier is None:
            raise BirdidError("No model is loaded: install one from the Model menu before indexing.")
        classifier = engine.classifier
        self._library = Library(library_path, model=model_name)
        self._target = (library_path, model_name)
        # "Zoom on the bird in every photo": a zoom per photo; every photo's sharpness on the bird is scored.
        identify, decode_size, prepare, bird_box = index_steps(classifier, zoom=engine.index_zoom, culling=True)
        # Raises IndexerBusy while `birdid index` (or another window) indexes this library.
        self._job = IndexJob(
            self._library, identify, model_name, progress=engine.index_progress.emit, decode_size=decode_size,
            prepare=prepare, bird_box=bird_box,
            species_names=classifier.class_names, range_prior=engine._range_prior, home_place=engine.index_home_place,
        )
        self._planned = False
        self._job.start_scan()

    def _refresh_place_answers(self) -> None:
        """After an index: photos indexed before the range model was installed, or before a place
        was set for their folder, ranked again from their stored embeddings (no forward; a
        library of 100,000 photos takes seconds, once)."""
        engine = self._engine
        if engine._range_prior is None or self._library is None or self._target is None:
            return
        from birdid_app.core.library import refresh_place_answers

        refresh_place_answers(self._library, self._target[1], engine._range_prior,
                              engine._model().head_weights(), home_place=engine.index_home_place)

    def _job_progress(self, job: IndexJob):
        from birdid_app.core.library import IndexProgress

        return IndexProgress(job.done, job.total, 0.0, None, "")

    def end(self) -> None:
        """Close the running job and its library, if any (also when the engine thread ends)."""
        if self._job is not None:
            self._job.close()
            self._job = None
        if self._library is not None:
            self._library.close()
            self._library = None
