"""The mouse wheel scrolls the panel under it; it changes a setting only in the control the person
has clicked or tabbed into.

Qt lets a combo box, spin box or slider take the wheel as soon as the pointer is over it, so
scrolling the side panel changed the stage (and started a new Grad-CAM) as a combo box passed
under the pointer. One filter on the application holds for every window and dialog: each such
control is given Qt.StrongFocus as it is polished (the wheel no longer focuses it), and a wheel
event over one without the focus goes to the scroll area around it instead.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

_GUARD_PROPERTY = "birdid_wheel_guard"


def _guarded(widget: QObject) -> bool:
    return isinstance(widget, (QComboBox, QAbstractSpinBox, QAbstractSlider)) and not isinstance(widget, QScrollBar)


def _scroll_area_around(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return parent
        parent = parent.parentWidget()
    return None


class WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.Wheel, QEvent.Type.Polish) or not _guarded(watched):
            return False
        assert isinstance(watched, QWidget)
        if kind == QEvent.Type.Polish:
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            return False
        if watched.hasFocus():
            return False
        area = _scroll_area_around(watched)
        if area is not None:
            QCoreApplication.sendEvent(area.viewport(), event)  # the panel scrolls instead
        return True


def guard_wheel(app: QApplication) -> None:
    """Install the guard on `app`, once however many windows open."""
    if app.property(_GUARD_PROPERTY):
        return
    guard = WheelGuard(app)
    app.installEventFilter(guard)
    app.setProperty(_GUARD_PROPERTY, True)
