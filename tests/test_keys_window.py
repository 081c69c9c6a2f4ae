"""Keys and the wheel in the real window (issue 25 items 2 and 4): one shortcut table with no
clashes, keys that stay where the focus is, Alt+letter meaning one thing, feedback for Copy, a
region chosen without a mouse, and a wheel that scrolls instead of changing settings."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QFormLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QTabWidget,
    QWidget,
)

from birdid_app.cli import main
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.settings import Settings, save_settings
from birdid_app.gui import shortcuts
from birdid_app.gui.settings_dialog import SettingsDialog
from birdid_app.gui.shortcuts import IDENTIFY, SHORTCUTS, ShortcutsDialog, clashes
from conftest import WINDOW_WAIT_MS, identified, make_photo, open_ready_window

WAIT_MS = 30_000


@pytest.fixture
def window(qtbot, small_model_file):
    save_settings(Settings(device="cpu", precision="fp32"))  # no precision trial re-identifying on its own
    ModelStore().import_file(small_model_file)
    return open_ready_window(qtbot)


def window_actions(window) -> dict[str, list]:
    """Every action of the menu bar, by its text without the mnemonic."""
    found: dict[str, list] = {}

    def walk(menu: QMenu) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu())
            elif action.text():
                found.setdefault(action.text().replace("&", ""), []).append(action)

    for top in window.menuBar().actions():
        walk(top.menu())
    return found


# --- the table ---------------------------------------------------------------------------------


def test_the_table_has_no_key_meaning_two_things_where_it_applies():
    assert clashes() == []
    names = [entry.action for entry in SHORTCUTS]
    assert len(names) == len(set(names))
    # Culling in the grid, Undo and Redo are in the table like every other key.
    table = {keys for entry in SHORTCUTS for keys in entry.keys}
    assert {"P", "X", "0", "1", "5", "Ctrl+Z", "Ctrl+Shift+Z"} <= table


def test_the_clash_check_finds_a_clash(monkeypatch):
    """The check can fail: a window key that an Identify-tab key also uses is named."""
    monkeypatch.setattr(shortcuts, "SHORTCUTS", (*SHORTCUTS, shortcuts.Shortcut("twice", ("Ctrl+O",), "x", IDENTIFY)))
    assert clashes() == ["Ctrl+O is both open and twice (Anywhere)."]


def test_the_menus_take_their_keys_from_the_table_and_help_shows_it(window, qtbot):
    actions = window_actions(window)
    with_keys = [a for group in actions.values() for a in group if not a.shortcut().isEmpty()]
    # Reserved keys count: the actions that will hold them take them from the table too.
    table_keys = {QKeySequence(k).toString() for entry in SHORTCUTS for k in entry.keys}
    for action in with_keys:
        assert all(key.toString() in table_keys for key in action.shortcuts()), action.text()
    # Ctrl+, opens Settings on every platform, and the menu shows it (Qt's Preferences key is empty on Linux).
    assert window.settings_action.shortcut() == QKeySequence("Ctrl+,")
    assert window.settings_action.shortcut().toString() == "Ctrl+,"

    window.shortcuts_action.trigger()
    dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, ShortcutsDialog) and w.isVisible())
    assert dialog.table.rowCount() == len(SHORTCUTS)
    rows = {dialog.table.item(r, 1).text(): dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())}
    assert rows["Settings"] == QKeySequence("Ctrl+,").toString(QKeySequence.SequenceFormat.NativeText)
    assert rows["Select a region with the keyboard"] == "Shift+R"
    dialog.close()


def test_ctrl_comma_opens_settings(window, qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(SettingsDialog, "exec", lambda self: opened.append(self) or SettingsDialog.DialogCode.Rejected)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    assert len(opened) == 1


# --- mnemonics ---------------------------------------------------------------------------------


MNEMONIC = re.compile(r"&([^&])")


def mnemonic(text: str) -> str | None:
    found = MNEMONIC.search(text.replace("&&", ""))
    return found.group(1).casefold() if found else None


def mnemonics_in(widget: QWidget) -> list[tuple[str, str]]:
    """(letter, text) of every button, check box and form label under `widget`."""
    found = []
    for button in widget.findChildren(QAbstractButton):
        if (letter := mnemonic(button.text())) is not None:
            found.append((letter, button.text()))
    for label in widget.findChildren(QLabel):
        if label.buddy() is not None and (letter := mnemonic(label.text())) is not None:
            found.append((letter, label.text()))
    for form in widget.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            label = item.widget() if item is not None else None
            if isinstance(label, QLabel) and label.buddy() is None and (letter := mnemonic(label.text())):
                found.append((letter, label.text()))
    return found


def repeated(pairs: list[tuple[str, str]]) -> list[str]:
    by_letter: dict[str, list[str]] = {}
    for letter, text in pairs:
        by_letter.setdefault(letter, []).append(text)
    return sorted(f"Alt+{letter.upper()}: {texts}" for letter, texts in by_letter.items() if len(texts) > 1)


def test_alt_letters_mean_one_thing_in_each_menu_and_on_each_tab(window):
    bar = [(mnemonic(a.text()), a.text()) for a in window.menuBar().actions() if mnemonic(a.text())]
    tabs: QTabWidget = window.tabs
    tab_letters = [(mnemonic(tabs.tabText(i)), tabs.tabText(i)) for i in range(tabs.count())]
    assert repeated(bar + tab_letters) == []
    for top in window.menuBar().actions():
        items = [(mnemonic(a.text()), a.text()) for a in top.menu().actions() if mnemonic(a.text())]
        assert repeated(items) == [], top.text()
    for page in (window.identify_view, window.library_view):
        assert repeated(bar + tab_letters + mnemonics_in(page)) == [], page.accessibleName()
    dialog = SettingsDialog(window.settings, None, window)
    assert repeated(mnemonics_in(dialog)) == []
    dialog.close()


# --- keys go where the focus is ----------------------------------------------------------------


def test_arrows_in_the_library_grid_move_its_selection_not_the_hidden_photo(qtbot, tmp_path, small_model_file):
    folder = tmp_path / "birds"
    for i in range(3):
        make_photo(folder / f"b{i}.jpg", size=(320, 240), seed=i)
    save_settings(Settings(device="cpu", precision="fp32"))
    ModelStore().import_file(small_model_file)
    assert main(["index", str(folder), "--device", "cpu", "--precision", "fp32"]) == 0
    window = open_ready_window(qtbot)
    identified(qtbot, window, [folder / "b0.jpg", folder / "b1.jpg"])
    shown = window.session.current

    window.tabs.setCurrentWidget(window.library_view)
    grid = window.library_view.results
    window.library_view.similar_button.click()  # every library photo, most like the one on screen first
    qtbot.waitUntil(lambda: grid.count() == 3, timeout=WINDOW_WAIT_MS)
    grid.setFocus()
    grid.setCurrentRow(0)
    qtbot.keyClick(grid, Qt.Key.Key_Right)
    assert grid.currentRow() == 1
    assert window.session.current is shown  # the Identify tab's photo did not move
    chosen = grid.currentItem().data(Qt.ItemDataRole.UserRole)
    qtbot.keyClick(grid, Qt.Key.Key_Return)
    assert window.tabs.currentWidget() is window.identify_view
    assert window.session.current.path == chosen  # Enter opened the photo selected in the grid

    # Back on the Identify tab the arrows step the photo strip again.
    window.strip.setFocus()
    before = window.session.current
    qtbot.keyClick(window.photo_view, Qt.Key.Key_Left)
    assert window.session.current is not before
    window.close()


def test_copy_result_says_what_it_copied(window, qtbot, photo_dir):
    identified(qtbot, window, [photo_dir / "robin.png"])
    window.copy_action.trigger()
    best = window.results.ranked[0].name
    assert QGuiApplication.clipboard().text().startswith(str(photo_dir / "robin.png"))
    assert best in window.statusBar().currentMessage() and "clipboard" in window.statusBar().currentMessage()


# --- a region without a mouse ------------------------------------------------------------------


def test_a_region_is_chosen_moved_resized_and_identified_with_keys_alone(window, qtbot, photo_dir):
    identified(qtbot, window, [photo_dir / "heron.jpg"])  # 1600 x 1200
    view = window.photo_view
    window.keyboard_region_action.trigger()
    assert view.choosing_by_keyboard() and view.hasFocus()
    assert view.band() == QRectF(400, 300, 800, 600)  # the middle half
    qtbot.keyClick(view, Qt.Key.Key_Right)  # moved by a twentieth of the photo, not the next photo
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert window.session.current.path == photo_dir / "heron.jpg"
    qtbot.keyClick(view, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)  # narrower
    qtbot.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)  # shorter
    assert view.band() == QRectF(480, 360, 720, 540)
    for _ in range(30):  # held inside the photo
        qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.band().right() == 1600
    with qtbot.waitSignal(view.region_selected, timeout=WAIT_MS) as selected:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert selected.args[0] == QRect(880, 360, 720, 540)
    qtbot.waitUntil(lambda: window.session.current.region_outcome is not None, timeout=WAIT_MS)
    assert window.session.current.region == (880, 360, 720, 540)

    window.keyboard_region_action.trigger()  # starts from the region chosen; Esc drops the band
    assert view.band() == QRectF(880, 360, 720, 540)
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not view.choosing_by_keyboard() and view.band() is None
    assert window.session.current.region == (880, 360, 720, 540)

    window.keyboard_region_action.trigger()  # then a click elsewhere drops the band too
    assert view.choosing_by_keyboard()
    elsewhere = next(b for b in window.results.findChildren(QAbstractButton) if b.isVisible() and b.isEnabled())
    elsewhere.setFocus(Qt.FocusReason.MouseFocusReason)
    assert elsewhere.hasFocus() and not view.choosing_by_keyboard() and view.band() is None


# --- the wheel ---------------------------------------------------------------------------------


def wheel(widget: QWidget, notches: int = -1) -> None:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_side_panel_over_a_setting_and_changes_it_only_when_focused(window, qtbot, photo_dir):
    identified(qtbot, window, [photo_dir / "robin.png"])
    window.resize(1024, 500)  # the side panel, with an answer, scrolls
    stage = window.overlay.stage_box
    scroll = next(a for a in window.identify_view.findChildren(QScrollArea) if a.isAncestorOf(stage))
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0, timeout=WAIT_MS)
    scroll.ensureWidgetVisible(stage)
    window.photo_view.setFocus()
    before_stage, before_scroll = stage.currentIndex(), scroll.verticalScrollBar().value()
    wheel(stage, -1 if before_scroll == 0 else 1)
    assert stage.currentIndex() == before_stage  # the setting stayed
    assert scroll.verticalScrollBar().value() != before_scroll  # the panel scrolled instead
    assert stage.focusPolicy() == Qt.FocusPolicy.StrongFocus
    for control in (window.overlay.opacity_slider, window.overlay.mode_box):
        value = control.value() if hasattr(control, "value") else control.currentIndex()
        wheel(control)
        assert (control.value() if hasattr(control, "value") else control.currentIndex()) == value

    stage.setFocus()
    qtbot.waitUntil(stage.hasFocus, timeout=WAIT_MS)
    wheel(stage, -1 if before_stage < 3 else 1)  # focused: the wheel is the setting's
    assert stage.currentIndex() != before_stage


def test_the_wheel_leaves_a_dialogs_settings_alone_until_focused(window, qtbot):
    dialog = SettingsDialog(window.settings, None, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    box = dialog.top_k_box
    box.clearFocus()
    dialog.setFocus()
    value = box.value()
    wheel(box, 1)
    assert box.value() == value
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=WAIT_MS)
    wheel(box, 1)
    assert box.value() == value + 1
