"""Edit > Undo and Redo for labels: every label set or cleared (the label panel) and every bulk
label (the map) is one step, reported by the library's writer with the labels of every photo it
touched before and after; undoing puts the labels before back through the same writer, off the
GUI thread. The steps are the session's: they are not kept when the window closes."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction

from birdid_app.gui.library_writer import LabelStep, LibraryWriter

MAX_STEPS = 100


class LabelHistory(QObject):
    changed = Signal()  # what can be undone or redone changed

    def __init__(self, writer: LibraryWriter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.writer = writer
        self.undo_steps: list[LabelStep] = []
        self.redo_steps: list[LabelStep] = []
        self.busy = False  # a step is being undone or redone: one at a time, in order
        writer.label_step.connect(self._done)
        writer.labels_restored.connect(self._restored)
        writer.failed.connect(self._failed)

    def undo_text(self) -> str | None:
        return f"Undo {self.undo_steps[-1].text}" if self.undo_steps else None

    def redo_text(self) -> str | None:
        return f"Redo {self.redo_steps[-1].text}" if self.redo_steps else None

    def undo(self) -> None:
        if self.undo_steps and not self.busy:
            self._start(self.undo_steps[-1], undo=True)

    def redo(self) -> None:
        if self.redo_steps and not self.busy:
            self._start(self.redo_steps[-1], undo=False)

    def attach(self, undo_action: QAction, redo_action: QAction) -> None:
        """Keep the Edit menu's actions saying what they will do, and enabled only when they can."""

        def update() -> None:
            for action, text, plain in ((undo_action, self.undo_text(), "&Undo"), (redo_action, self.redo_text(), "&Redo")):
                action.setText(text or plain)
                action.setEnabled(text is not None and not self.busy)

        self.changed.connect(update)
        update()

    def _start(self, step: LabelStep, undo: bool) -> None:
        self.busy = True
        self.changed.emit()
        self.writer.restore_labels(step, undo)

    def _done(self, step: LabelStep) -> None:
        self.undo_steps = [*self.undo_steps[-(MAX_STEPS - 1):], step]
        self.redo_steps.clear()  # a new change ends what could be redone
        self.changed.emit()

    def _restored(self, step: LabelStep, undone: bool) -> None:
        self.busy = False
        taken, given = (self.undo_steps, self.redo_steps) if undone else (self.redo_steps, self.undo_steps)
        if taken and taken[-1] is step:
            taken.pop()
            given.append(step)
        self.changed.emit()

    def _failed(self, message: str) -> None:
        if self.busy:  # the step stays where it was, to be tried again
            self.busy = False
            self.changed.emit()
