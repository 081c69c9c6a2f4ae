"""Running a core job off the GUI thread.

A job is a plain function `work(report, should_cancel) -> result` from the core: `report(x)`
sends progress, `should_cancel()` says whether the person asked to stop. `Job` runs it on Qt's
thread pool and turns what happens into signals delivered on the GUI thread. Every job ends in
exactly one of `succeeded(result)`, `failed(message)` or `cancelled()`, then `finished()`.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from birdid_app.core.errors import BirdidError

Work = Callable[[Callable[[Any], None], Callable[[], bool]], Any]


class Job(QObject):
    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    # Running jobs hold a reference to themselves here, so a job outlives a closed dialog that
    # started it instead of being collected while its thread still emits.
    _running: set[Job] = set()

    def __init__(self, work: Work, *, cancel_errors: tuple[type[BaseException], ...] = (), parent=None) -> None:
        """`cancel_errors`: exception types by which `work` says it stopped because it was asked to."""
        super().__init__(parent)
        self._work = work
        self._cancel_errors = cancel_errors
        self._cancel_requested = threading.Event()
        self.running = False

    def start(self, pool: QThreadPool | None = None) -> None:
        self.running = True
        Job._running.add(self)
        self.finished.connect(lambda: Job._running.discard(self))
        (pool or QThreadPool.globalInstance()).start(_Runner(self))

    def cancel(self) -> None:
        self._cancel_requested.set()

    def _run(self) -> None:  # on a pool thread
        try:
            result = self._work(self.progress.emit, self._cancel_requested.is_set)
        except self._cancel_errors:
            self.cancelled.emit()
        except BirdidError as error:
            self.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001 - a bug must still end the job, visibly
            traceback.print_exc()
            self.failed.emit(f"Unexpected error: {type(error).__name__}: {error}")
        else:
            self.succeeded.emit(result)  # work that completed wins over a late cancel
        finally:
            self.running = False
            self.finished.emit()


class _Runner(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def run(self) -> None:
        self.job._run()
