"""The main window's menus and shortcuts, and the small dialogs only a menu opens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox

from birdid_app import APP_NAME, __version__
from birdid_app.core.model.model_store import PUBLISHED_MODEL
from birdid_app.gui.model_about import ModelAboutDialog
from birdid_app.gui.shortcuts import IDENTIFY, ShortcutsDialog, key_sequences, shortcut

if TYPE_CHECKING:
    from birdid_app.gui.main_window import MainWindow


def build_menus(window: MainWindow) -> None:
    """The window's menus; every key comes from the one table (gui/shortcuts.py). The actions the
    window enables, and tests trigger, are kept on it."""
    bar = window.menuBar()
    window.identify_actions = []
    file_menu = bar.addMenu("&File")
    window.open_action = _action(window, "&Open Photos…", window.choose_photos, "open", file_menu)
    window.recent_menu = file_menu.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(lambda: fill_recent_menu(window))
    file_menu.addSeparator()
    _action(window, "&Quit", window.close, "quit", file_menu)

    edit_menu = bar.addMenu("&Edit")
    # Undo/Redo take back labels (label_history.py); their text says which label change.
    window.undo_action = _action(window, "&Undo", window.labels.history.undo, "undo", edit_menu)
    window.redo_action = _action(window, "&Redo", window.labels.history.redo, "redo", edit_menu)
    window.labels.history.attach(window.undo_action, window.redo_action)
    edit_menu.addSeparator()
    window.paste_action = _action(window, "&Paste Photo", window.paste, "paste", edit_menu)
    window.copy_action = _action(window, "&Copy Result", window.results.copy_result, "copy_result", edit_menu)

    view_menu = bar.addMenu("&View")
    _action(window, "&Fit to Window", window.photo_view.fit_to_view, "fit", view_menu)
    _action(window, "&Actual Size", window.photo_view.actual_size, "actual_size", view_menu)
    _action(window, "Zoom &In", window.photo_view.zoom_in, "zoom_in", view_menu)
    _action(window, "Zoom &Out", window.photo_view.zoom_out, "zoom_out", view_menu)
    view_menu.addSeparator()
    window.region_action = _action(window, "Select a &Region", window.photo_view.set_region_mode, "region", view_menu)
    window.region_action.setCheckable(True)
    window.keyboard_region_action = _action(window, "Select a Region with the &Keyboard",
                                            window.photo_view.start_keyboard_region, "keyboard_region", view_menu)
    _action(window, "&Whole Photo", window.photo_view.clear_region, "whole", view_menu)
    window.stop_action = _action(window, "&Stop Identifying", window.stop_identifying, "stop", view_menu)
    view_menu.addSeparator()
    _action(window, "&Next Photo", lambda: window.strip.step(1), "next_photo", view_menu)
    _action(window, "&Previous Photo", lambda: window.strip.step(-1), "previous_photo", view_menu)

    photo_menu = bar.addMenu("&Photo")
    window.place_action = _action(window, "Set &Place…", window.places.set_place, "place", photo_menu)
    # "Librar&y": Alt+L is the Library tab's.
    library_menu = bar.addMenu("Librar&y")
    window.life_list_action = _action(window, "&Life List…", window.library_view.open_life_list, "life_list",
                                      library_menu)

    model_menu = bar.addMenu("&Model")
    window.download_action = _action(window,
        f"&Download the Model ({PUBLISHED_MODEL.approx_size_mb} MB)", lambda: _download_from_menu(window), menu=model_menu
    )
    window.import_action = _action(window, "&Import Model File…", lambda: _import_from_menu(window), "import_model",
                                   model_menu)
    window.about_model_action = _action(window, "&About the Model…", lambda: show_model_about(window), menu=model_menu)
    window.range_model_action = _action(window, "Range &Model…", lambda: show_range_model(window), menu=model_menu)
    model_menu.addSeparator()
    window.settings_action = _action(window, "&Settings…", window.show_settings, "settings", model_menu)
    help_menu = bar.addMenu("&Help")
    window.shortcuts_action = _action(window, "&Keyboard Shortcuts", lambda: ShortcutsDialog(window).open(), "shortcuts",
                                      help_menu)
    _action(window, f"&About {APP_NAME}", lambda: show_about_app(window), menu=help_menu)
    window.tabs.currentChanged.connect(lambda _: enable_identify_keys(window))
    enable_identify_keys(window)


def enable_identify_keys(window: MainWindow) -> None:
    """The Identify tab's actions work only while it is shown: on the Library tab, Left and Right
    belong to the grid, not to the hidden photo strip."""
    on = window.tabs.currentWidget() is window.identify_view
    for action in window.identify_actions:
        action.setEnabled(on)


def show_model_about(window: MainWindow) -> None:
    model = window.active_model()
    if model is not None:
        ModelAboutDialog(model, window).open()


def show_range_model(window: MainWindow) -> None:
    """Model > Range Model: the range model's state, and installing or removing it."""
    from birdid_app.gui.geomodel_dialog import GeomodelDialog

    loaded = window.loaded_model
    dialog = GeomodelDialog(loaded.class_names if loaded else None, loaded.name if loaded else None, window)
    # The engine loads what is installed now; its range_prior_changed then asks the answer on
    # screen again (_range_prior_changed), as a change of settings does.
    dialog.changed.connect(window.engine.reload_range_prior)
    window.range_model_dialog = dialog
    dialog.open()


def _download_from_menu(window: MainWindow) -> None:
    window.pages.setCurrentWidget(window.setup_page)  # where the progress and Cancel are shown
    window.setup_page.installer.start_download()


def _import_from_menu(window: MainWindow) -> None:
    window.pages.setCurrentWidget(window.setup_page)
    window.setup_page.installer.choose_file_to_import()


def _action(window: MainWindow, text: str, slot, keys: str | None = None, menu=None) -> QAction:
    """An action; `keys`: its name in the shortcut table, whose keys it takes."""
    action = QAction(text, window)
    action.triggered.connect(slot)
    if keys is not None:
        action.setShortcuts(key_sequences(keys))
        if shortcut(keys).context == IDENTIFY:
            window.identify_actions.append(action)
    if menu is not None:
        menu.addAction(action)
    return action


def _opener(window: MainWindow, path: Path) -> Callable[[], None]:
    return lambda: window.add_photos([path])


def fill_recent_menu(window: MainWindow) -> None:
    window.recent_menu.clear()
    for name in window.settings.recent_files:
        window.recent_menu.addAction(name, _opener(window, Path(name)))
    window.recent_menu.setEnabled(bool(window.settings.recent_files))


def show_about_app(window: MainWindow) -> None:
    QMessageBox.about(
        window,
        f"About {APP_NAME}",
        f"<b>{APP_NAME} {__version__}</b><br>Identifies European birds in photos, offline, "
        "with Birder's eu-common Hiera model.<br><br>" + _attribution_html(),
    )


def _attribution_html() -> str:
    """The range model's and the place names' attribution, as their licences ask."""
    import html

    from birdid_app.core.places.geomodel import ATTRIBUTION
    from birdid_app.core.places.place import PLACE_NAMES_ATTRIBUTION

    return f"{html.escape(ATTRIBUTION)}<br>{html.escape(PLACE_NAMES_ATTRIBUTION)}"
