"""The column beside the photo on the Identify tab: the answer, the zoom, the trust signals, the
label and what the model sees, one under another in a scroll area that scrolls only up and down."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget

SIDE_MIN_WIDTH = 320  # pixels: the narrowest the answer's bars stay readable


def side_panel(panels: list[QWidget]) -> tuple[QScrollArea, QWidget]:
    """`panels` stacked top to bottom in a scroll area; returns (the scroll area, the column)."""
    column = QWidget()
    stack = QVBoxLayout(column)
    for panel in panels:
        stack.addWidget(panel)
    stack.addStretch()
    scroll = QScrollArea()
    scroll.setWidget(column)
    scroll.setWidgetResizable(True)
    scroll.setMinimumWidth(SIDE_MIN_WIDTH)
    # The panels wrap and shrink to the column's width (tests/test_side_panel_layout.py):
    # nothing may hide behind a horizontal scroll bar.
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll, column
