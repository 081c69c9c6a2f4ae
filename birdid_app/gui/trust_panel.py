"""Beside the ranking: the zoom on the bird, and how far to trust the answer.

Both only draw what core.trust found (on the engine thread, or the library reader's); the
window decides what to ask for and when.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from birdid_app.core.insight.trust import AGREES, DISAGREES, UNKNOWN, WARNING, TrustSignal
from birdid_app.gui.results_panel import percent

# How each state is marked: a symbol (readable without colour) and a colour.
STATE_MARKS = {
    AGREES: ("✓", "#2e7d32"),
    DISAGREES: ("≠", "#c26a00"),
    WARNING: ("⚠", "#c62828"),
    UNKNOWN: ("–", "#757575"),
}
WORKING = "working"  # a signal still being computed


def _heading(text: str) -> QLabel:
    label = QLabel(f"<b>{html.escape(text)}</b>")
    label.setAccessibleName(text)
    return label


class ZoomPanel(QWidget):
    """The zoom on the bird: ask for it, see its answer, keep it or go back to the whole photo."""

    zoom_requested = Signal()
    keep_requested = Signal()
    whole_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Zoom on the bird")
        self.zoom_button = QPushButton("&Zoom on the bird")
        self.zoom_button.setToolTip(
            "Identify the photo again where the model found its evidence, cut out at full resolution: "
            "a bird small in the frame is only a few pixels of what the model sees."
        )
        self.zoom_button.clicked.connect(self.zoom_requested)
        self.keep_button = QPushButton("&Keep the zoomed answer")
        self.keep_button.clicked.connect(self.keep_requested)
        self.whole_button = QPushButton("&Back to the whole photo")
        self.whole_button.clicked.connect(self.whole_requested)
        # A zoom runs a gradient pass and a full-resolution crop: seconds on a CPU, so it can be stopped.
        self.cancel_button = QPushButton("Ca&ncel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons = QHBoxLayout()
        for button in (self.zoom_button, self.keep_button, self.whole_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addWidget(_heading("Zoom on the bird"))
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.show_offer()

    def _buttons(self, zoom: bool = False, keep: bool = False, whole: bool = False, cancel: bool = False) -> None:
        self.zoom_button.setVisible(zoom)
        self.keep_button.setVisible(keep)
        self.whole_button.setVisible(whole)
        self.cancel_button.setVisible(cancel)

    def show_offer(self) -> None:
        self.status.setText("Not zoomed yet.")
        self._buttons(zoom=True)

    def show_working(self) -> None:
        self.status.setText("Zooming on the bird (finding the evidence, then identifying it at full resolution)…")
        self._buttons(cancel=True)

    def show_failed(self, message: str) -> None:
        self.status.setText(message)
        self._buttons(zoom=True)

    def show_zoom(self, zoom, kept: bool, whole_best: str) -> None:
        """`zoom`: the engine's ZoomOutcome; `kept`: its answer is the one shown above;
        `whole_best`: the whole photo's answer, as it is named when the zoomed one is shown."""
        if zoom.outcome is None:
            self.status.setText(zoom.reason)
            self._buttons()
            return
        best = zoom.outcome.ranked[0]
        x, y, width, height = zoom.box
        where = f"{width} × {height} pixels at ({x}, {y}), the dashed box on the photo"
        if kept:
            self.status.setText(f"Showing the zoomed answer. The whole photo said {html.escape(whole_best)}.")
            self._buttons(whole=True)
        else:
            self.status.setText(f"Zoomed: <b>{html.escape(best.name)}</b> {percent(best.probability)} "
                                f"(from {where}). {html.escape(zoom.reason)}")
            self._buttons(keep=True)


class TrustPanel(QWidget):
    """Three signals of how far to trust the answer shown, each with a line on what it is."""

    ROWS = ("Mirror and crops", "Your confirmed photos", "Unfamiliar photo")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(_heading("How far to trust this answer"))
        self.findings: dict[str, QLabel] = {}
        self.meanings: dict[str, QLabel] = {}
        for title in self.ROWS:
            finding = QLabel()
            finding.setWordWrap(True)
            finding.setAccessibleName(title)
            meaning = QLabel()
            meaning.setTextFormat(Qt.TextFormat.PlainText)
            meaning.setWordWrap(True)
            meaning.setStyleSheet("QLabel { color: palette(placeholder-text); }")
            meaning.setAccessibleName(f"{title}: what it means")
            layout.addWidget(finding)
            layout.addWidget(meaning)
            self.findings[title], self.meanings[title] = finding, meaning
        self.clear()

    def clear(self) -> None:
        for title in self.ROWS:
            self.show_working(title)

    def show_working(self, title: str) -> None:
        self.findings[title].setText(f"<b>{html.escape(title)}</b>: checking…")
        self.meanings[title].setText("")
        self.findings[title].setProperty("state", WORKING)

    def show_failed(self, title: str, message: str) -> None:
        self.show_signal(TrustSignal(title, UNKNOWN, message, ""))

    def show_signal(self, signal: TrustSignal) -> None:
        symbol, colour = STATE_MARKS[signal.state]
        self.findings[signal.title].setText(
            f'<span style="color:{colour}; font-weight:bold">{symbol}</span> '
            f"<b>{html.escape(signal.title)}</b>: {html.escape(signal.finding)}"
        )
        self.findings[signal.title].setProperty("state", signal.state)
        self.meanings[signal.title].setText(signal.meaning)

    def state(self, title: str) -> str:
        return self.findings[title].property("state")

    def text(self, title: str) -> str:
        """What the row says, as plain text (for tests and the copied result)."""
        from PySide6.QtGui import QTextDocument

        document = QTextDocument()
        document.setHtml(self.findings[title].text())
        return document.toPlainText()
