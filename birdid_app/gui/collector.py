"""Python's garbage collector, run on the GUI thread only.

The cyclic collector runs in whichever thread happens to allocate when a threshold is crossed:
the engine thread building a model, say. If it frees a Qt object there (a finished job, a closed
dialog's wrapper), Qt deletes that object outside its own thread and the process can crash (seen
in the suite: "Garbage-collecting" on the engine thread, then a segmentation fault). So while a
window is open, automatic collection is off and this object collects on the GUI thread instead,
as often as the automatic thresholds would have (the pattern of pyqtgraph's GarbageCollector).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500
_holders = 0  # windows open; automatic collection comes back when the last one closes


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject) -> None:
        global _holders
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        _holders += 1
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect)
        self.timer.start(INTERVAL_MS)

    def collect(self) -> None:
        """Collect the generations whose counts crossed their thresholds, oldest first."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.thresholds[generation]:
                gc.collect(generation)
                return

    def release(self) -> None:
        global _holders
        if self.timer.isActive():
            self.timer.stop()
            _holders -= 1
            if _holders == 0:
                gc.enable()
