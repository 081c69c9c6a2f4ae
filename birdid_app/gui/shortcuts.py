"""Every key the window answers to, in one table: menus take their actions' keys from it, Help >
Keyboard Shortcuts shows it, and a test checks that no key means two things where it applies.

A key applies in a context. WINDOW keys work wherever the focus is (so they must not be keys a
grid, a list or a text field needs); IDENTIFY keys work only while the Identify tab is shown
(menus.py enables its actions with the tab; a text field there still takes its own keys first), so
Left and Right in the Library grid move the grid's selection, not the hidden photo strip; LIBRARY_GRID keys are the
grid's own; REGION keys work while a region is being chosen with the keyboard.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

WINDOW = "Anywhere"
IDENTIFY = "Identify tab"
LIBRARY_GRID = "Library grid"
REGION = "Choosing a region"
CONTEXTS = (WINDOW, IDENTIFY, LIBRARY_GRID, REGION)


@dataclass(frozen=True)
class Shortcut:
    action: str  # the name the menus look it up by
    keys: tuple[str, ...]  # QKeySequence's portable text: "Ctrl+O"; Qt shows Ctrl as Cmd on macOS
    description: str
    context: str  # one of CONTEXTS
    menu: str = ""  # the menu holding the action, as the dialog names it; "" for keys without one


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("open", ("Ctrl+O",), "Open photos", WINDOW, "File"),
    Shortcut("quit", ("Ctrl+Q",), "Quit", WINDOW, "File"),
    Shortcut("undo", ("Ctrl+Z",), "Undo the last label change", WINDOW, "Edit"),
    Shortcut("redo", ("Ctrl+Shift+Z",), "Redo the label change undone", WINDOW, "Edit"),
    Shortcut("paste", ("Ctrl+V",), "Paste a photo, or photos' paths", WINDOW, "Edit"),
    Shortcut("copy_result", ("Ctrl+Shift+C",), "Copy the answer as text", IDENTIFY, "Edit"),
    Shortcut("fit", ("Ctrl+0",), "Fit the photo to the window", IDENTIFY, "View"),
    Shortcut("actual_size", ("Ctrl+1",), "Show the photo at actual size", IDENTIFY, "View"),
    Shortcut("zoom_in", ("Ctrl++", "Ctrl+="), "Zoom in", IDENTIFY, "View"),
    Shortcut("zoom_out", ("Ctrl+-",), "Zoom out", IDENTIFY, "View"),
    Shortcut("region", ("R",), "Select a region with the mouse (drag)", IDENTIFY, "View"),
    Shortcut("keyboard_region", ("Shift+R",), "Select a region with the keyboard", IDENTIFY, "View"),
    Shortcut("whole", ("W",), "Identify the whole photo again", IDENTIFY, "View"),
    Shortcut("stop", ("Ctrl+.",), "Stop identifying", IDENTIFY, "View"),
    Shortcut("next_photo", ("Right",), "Next photo", IDENTIFY, "View"),
    Shortcut("previous_photo", ("Left",), "Previous photo", IDENTIFY, "View"),
    Shortcut("place", ("Ctrl+L",), "Set the place of the photo", IDENTIFY, "Photo"),
    Shortcut("life_list", ("Ctrl+Shift+L",), "Open the life list", WINDOW, "Library"),
    Shortcut("import_model", ("Ctrl+Shift+I",), "Import a model file", WINDOW, "Model"),
    # QKeySequence.StandardKey.Preferences is empty on Linux and Windows: the key is given here.
    Shortcut("settings", ("Ctrl+,",), "Settings", WINDOW, "Model"),
    Shortcut("shortcuts", ("F1",), "This list of keys", WINDOW, "Help"),
    Shortcut("region_move", ("Left", "Right", "Up", "Down"), "Move the region", REGION),
    Shortcut("region_resize", ("Shift+Left", "Shift+Right", "Shift+Up", "Shift+Down"),
             "Make the region narrower, wider, shorter, taller", REGION),
    Shortcut("region_accept", ("Return", "Enter"), "Identify the region", REGION),
    Shortcut("region_cancel", ("Esc",), "Stop choosing the region (or clear the region chosen)", REGION),
    Shortcut("open_photo", ("Return",), "Open the selected photo on the Identify tab", LIBRARY_GRID),
    Shortcut("pick", ("P",), "Pick the photo", LIBRARY_GRID),
    Shortcut("reject", ("X",), "Reject the photo", LIBRARY_GRID),
    Shortcut("rate", ("0", "1", "2", "3", "4", "5"), "Rate the photo (0 clears the rating)", LIBRARY_GRID),
)

_BY_ACTION = {shortcut.action: shortcut for shortcut in SHORTCUTS}


def shortcut(action: str) -> Shortcut:
    return _BY_ACTION[action]


def key_sequences(action: str) -> list[QKeySequence]:
    return [QKeySequence(keys) for keys in _BY_ACTION[action].keys]


def keys_text(entry: Shortcut) -> str:
    """The keys as this platform writes them: "Ctrl+Shift+C", "⇧⌘C" on macOS."""
    native = QKeySequence.SequenceFormat.NativeText
    return ", ".join(QKeySequence(keys).toString(native) for keys in entry.keys)


def clashes() -> list[str]:
    """Sentences naming each key that means two things where it applies: two entries of one
    context, or a WINDOW key that another context also uses (a window key works everywhere)."""
    found = []
    seen: dict[tuple[str, str], str] = {}
    for entry in SHORTCUTS:
        for keys in entry.keys:
            portable = QKeySequence(keys).toString(QKeySequence.SequenceFormat.PortableText)
            contexts = CONTEXTS if entry.context == WINDOW else (entry.context, WINDOW)
            for context in contexts:
                other = seen.get((context, portable))
                if other is not None and other != entry.action:
                    found.append(f"{portable} is both {other} and {entry.action} ({context}).")
            seen[(entry.context, portable)] = entry.action
    return found


class ShortcutsDialog(QDialog):
    """Help > Keyboard Shortcuts: the table, as it is."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.table = QTableWidget(len(SHORTCUTS), 3)
        self.table.setAccessibleName("Keyboard shortcuts")
        self.table.setHorizontalHeaderLabels(["Keys", "What they do", "Where"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, entry in enumerate(SHORTCUTS):
            where = f"{entry.context} ({entry.menu} menu)" if entry.menu else entry.context
            for column, text in enumerate((keys_text(entry), entry.description, where)):
                self.table.setItem(row, column, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        # The four arrows with Shift would make the keys column half the table: it wraps instead.
        self.table.setWordWrap(True)
        self.table.setColumnWidth(0, 170)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.resizeRowsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(720, 600)
