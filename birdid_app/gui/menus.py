"""The main window's menus and shortcuts, and the small dialogs only a menu opens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox

from birdid_app import APP_NAME, __version__
from birdid_app.core.model.model_store import PUBLISHED_MODEL
from birdid_app.gui.model_about import ModelAboutDialog

if TYPE_CHECKING:
    from birdid_app.gui.main_window import MainWindow


def build_menus(window: MainWindow) -> None:
    """The window's menus and their shortcuts; the actions the window enables, and tests trigger,
    are kept on it."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    window.open_action = _action(window, "&Open Photos…", window.choose_photos, QKeySequence.StandardKey.Open, file_menu)
    window.recent_menu = file_menu.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(lambda: fill_recent_menu(window))
    file_menu.addSeparator()
    _action(window, "&Quit", window.close, QKeySequence.StandardKey.Quit, file_menu)

    edit_menu = bar.addMenu("&Edit")
    # Undo/Redo take back labels (label_history.py); their text says which label change.
    window.undo_action = _action(window, "&Undo", window.labels.history.undo, QKeySequence.StandardKey.Undo, edit_menu)
    window.redo_action = _action(window, "&Redo", window.labels.history.redo, QKeySequence.StandardKey.Redo, edit_menu)
    window.labels.history.attach(window.undo_action, window.redo_action)
    edit_menu.addSeparator()
    window.paste_action = _action(window, "&Paste Photo", window.paste, QKeySequence.StandardKey.Paste, edit_menu)
    window.copy_action = _action(window, "&Copy Result", window.results.copy_result, "Ctrl+Shift+C", edit_menu)

    view_menu = bar.addMenu("&View")
    _action(window, "&Fit to Window", window.photo_view.fit_to_view, "Ctrl+0", view_menu)
    _action(window, "&Actual Size", window.photo_view.actual_size, "Ctrl+1", view_menu)
    _action(window, "Zoom &In", window.photo_view.zoom_in, QKeySequence.StandardKey.ZoomIn, view_menu)
    _action(window, "Zoom &Out", window.photo_view.zoom_out, QKeySequence.StandardKey.ZoomOut, view_menu)
    view_menu.addSeparator()
    window.region_action = _action(window, "Select a &Region", window.photo_view.set_region_mode, "R", view_menu)
    window.region_action.setCheckable(True)
    _action(window, "&Whole Photo", window.photo_view.clear_region, "W", view_menu)
    window.stop_action = _action(window, "&Stop Identifying", window.stop_identifying, "Ctrl+.", view_menu)
    view_menu.addSeparator()
    _action(window, "&Next Photo", lambda: window.strip.step(1), "Right", view_menu)
    _action(window, "&Previous Photo", lambda: window.strip.step(-1), "Left", view_menu)

    photo_menu = bar.addMenu("&Photo")
    window.place_action = _action(window, "Set &Place…", window.places.set_place, "Ctrl+L", photo_menu)
    # "Librar&y": Alt+L is the Library tab's.
    library_menu = bar.addMenu("Librar&y")
    window.life_list_action = _action(window, "&Life List…", window.library_view.open_life_list, "Ctrl+Shift+L",
                                         library_menu)

    model_menu = bar.addMenu("&Model")
    window.download_action = _action(window, 
        f"&Download the Model ({PUBLISHED_MODEL.approx_size_mb} MB)", lambda: _download_from_menu(window), menu=model_menu
    )
    window.import_action = _action(window, "&Import Model File…", lambda: _import_from_menu(window), "Ctrl+Shift+I", model_menu)
    window.about_model_action = _action(window, "&About the Model…", lambda: show_model_about(window), menu=model_menu)
    window.range_model_action = _action(window, "Range &Model…", lambda: show_range_model(window), menu=model_menu)
    model_menu.addSeparator()
    _action(window, "&Settings…", window.show_settings, QKeySequence.StandardKey.Preferences, model_menu)
    help_menu = bar.addMenu("&Help")
    _action(window, f"&About {APP_NAME}", lambda: show_about_app(window), menu=help_menu)


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


def _action(window: MainWindow, text: str, slot, shortcut=None, menu=None) -> QAction:
    action = QAction(text, window)
    action.triggered.connect(slot)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
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
