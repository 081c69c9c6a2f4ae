"""The main window: photos in, ranked species out, the model on its own thread."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QRect, QSize, QThreadPool
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from birdid_app import APP_NAME
from birdid_app.core.errors import BirdidError
from birdid_app.core.model.model_store import InstalledModel, ModelStore
from birdid_app.core.photos.photo import IMAGE_SUFFIXES
from birdid_app.core.settings import SettingsError, add_recent_file, load_settings, save_settings
from birdid_app.gui.collector import GuiThreadCollector
from birdid_app.gui.engine import (
    CONVERTING_INT8,
    MEASURING_PRECISION,
    Engine,
    EngineSettings,
    IdentifyOutcome,
    IdentifyRequest,
    LoadedModel,
    RangePriorState,
    ZoomOutcome,
)
from birdid_app.gui.images import pil_from_qimage, qimage_from_pil
from birdid_app.gui.jobs import Job
from birdid_app.gui.label_panel import LabelPanel
from birdid_app.gui.labels import LabelController
from birdid_app.gui.library_service import LibraryService
from birdid_app.gui.library_view import LibraryView
from birdid_app.gui.menus import build_menus
from birdid_app.gui.model_setup import ModelSetupPage
from birdid_app.gui.overlay_controller import OverlayController
from birdid_app.gui.overlay_panel import OverlayChoice, OverlayPanel
from birdid_app.gui.photo_jobs import (
    decode_for_display,
    export_overlay_png,
    opening_words,
    photos_in,
    read_place_names,
)
from birdid_app.gui.photo_strip import PhotoStrip
from birdid_app.gui.photo_view import PhotoView
from birdid_app.gui.place_dialog import PlaceDialog
from birdid_app.gui.places import PlaceController
from birdid_app.gui.resources import icon
from birdid_app.gui.results_panel import ResultsPanel, place_shown
from birdid_app.gui.session import PhotoEntry, PhotoSession
from birdid_app.gui.settings_dialog import SettingsDialog
from birdid_app.gui.side_panel import side_panel
from birdid_app.gui.trust_panel import TrustPanel, ZoomPanel
from birdid_app.gui.wheel import guard_wheel
from birdid_app.gui.zoom_trust import ZoomTrustController, zoom_kept

if TYPE_CHECKING:
    from birdid_app.gui.geomodel_dialog import GeomodelDialog

DEFAULT_WINDOW_SIZE = QSize(1200, 780)
PHOTO_FILTER = "Photos ({});;All files (*)".format(" ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)))
PASTED = "Pasted image"


class MainWindow(QMainWindow):
    # Built by gui/menus.py: the actions the window enables and disables, and the recent files.
    open_action: QAction
    recent_menu: QMenu
    paste_action: QAction
    undo_action: QAction
    redo_action: QAction
    copy_action: QAction
    region_action: QAction
    keyboard_region_action: QAction
    settings_action: QAction
    shortcuts_action: QAction
    identify_actions: list[QAction]  # keyed to the Identify tab: enabled only while it is shown
    stop_action: QAction
    place_action: QAction
    life_list_action: QAction
    download_action: QAction
    import_action: QAction
    about_model_action: QAction
    range_model_action: QAction

    def __init__(self) -> None:
        super().__init__()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            guard_wheel(app)  # before any widget is polished: the wheel scrolls, settings stay
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icon("birdid"))
        self.setAcceptDrops(True)
        self.collector = GuiThreadCollector(self)  # Qt objects are freed on this thread only
        self.settings = load_settings()
        self._place_on_screen()
        self.engine = Engine()
        # The photos and answers: the state lives in the session, which sends the engine its
        # requests; this window draws it.
        self.session = PhotoSession(self, self.engine)
        self.session.current_changed.connect(self._show_entry)
        self.session.answer_changed.connect(self._answer_changed)
        self.session.request_stopped.connect(self._request_stopped)
        self.loaded_model: LoadedModel | None = None
        self.jobs: set[Job] = set()
        # Where and when: the engine's range prior as it last said; the places people set are
        # the PlaceController's (self.places).
        self.range_prior_state: RangePriorState | None = None
        self.range_model_dialog: GeomodelDialog | None = None  # Model > Range Model's, kept while it is open

        self.engine.model_loaded.connect(self._model_loaded)
        self.engine.model_failed.connect(self._model_failed)
        self.engine.identified.connect(lambda outcome: self.session.accept_identified(outcome.request.request_id, outcome))
        self.engine.failed.connect(self._request_failed)
        self.engine.cancelled.connect(self.session.accept_cancelled)
        self.engine.explained.connect(self.session.accept_cam)
        self.engine.zoomed.connect(self.session.accept_zoomed)
        self.engine.checked.connect(self.session.accept_checked)
        self.engine.index_zoom = self.settings.zoom_every_photo
        self.engine.index_home_place = self._home_place()
        self.engine.range_prior_changed.connect(self._range_prior_changed)
        self.engine.notice.connect(lambda message: self.statusBar().showMessage(message, 15000))
        self.engine.precision_switched.connect(self._precision_switched)
        self.engine.start()

        self._build_pages()
        build_menus(self)
        self.model_status = QLabel()
        self.model_status.setAccessibleName("Model status")
        self.statusBar().addPermanentWidget(self.model_status)
        self.setup_page.installer.installed.connect(self.show_model_state)
        self.show_model_state()

    # --- building ----------------------------------------------------------------------------

    def _place_on_screen(self) -> None:
        """Where the window was last closed; the first time, 1200x780 or nine tenths of the
        screen's free area where that is smaller (a 1366x768 laptop has about 1366x720)."""
        stored = self.settings.window_geometry
        if stored and self.restoreGeometry(QByteArray.fromBase64(stored.encode("ascii"))):
            return  # Qt moves a geometry from a screen that is gone onto one that is there
        screen = self.screen() or QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else QRect(0, 0, 1200, 780)
        width = min(DEFAULT_WINDOW_SIZE.width(), int(available.width() * 0.9))
        height = min(DEFAULT_WINDOW_SIZE.height(), int(available.height() * 0.9))
        self.resize(width, height)
        self.move(available.center() - QRect(0, 0, width, height).center())

    def save_settings(self) -> bool:
        """Save the settings; a failure (a read-only or full disk) is one status-bar line and
        nothing else stops: the photo still opens, the window still closes."""
        try:
            save_settings(self.settings)
        except SettingsError as error:
            self.statusBar().showMessage(f"{error} Your choices apply until birdid closes.", 15000)
            return False
        return True

    def _build_pages(self) -> None:
        self.setup_page = ModelSetupPage()
        self.photo_view = PhotoView()
        self.photo_view.region_selected.connect(self._region_selected)
        self.photo_view.region_cleared.connect(self._region_cleared)
        self.strip = PhotoStrip(self._run)
        self.strip.currentRowChanged.connect(self._show_row)
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.photo_view, 1)
        column.addWidget(self.strip)

        self.results = ResultsPanel()
        self.results.set_rank_by_place(self.settings.rank_by_place)
        self.results.rank_by_place_changed.connect(self._rank_by_place_changed)
        self.results.copied.connect(lambda words: self.statusBar().showMessage(words, 5000))
        self.overlay = OverlayPanel(self.settings)
        self.overlay_controller = OverlayController(
            self.session, self.overlay, self.photo_view, self._run,
            lambda message, ms: self.statusBar().showMessage(message, ms) if message else self.statusBar().clearMessage(),
            self,
        )
        self.overlay_controller.maps_needed.connect(lambda entry: self._show_current_answer())
        self.overlay.changed.connect(self.update_overlay)
        self.overlay.opacity_changed.connect(self._opacity_changed)
        self.overlay.export_requested.connect(self.export_overlay)
        self.zoom_panel = ZoomPanel()
        self.trust_panel = TrustPanel()
        self.label_panel = LabelPanel()
        self.side_scroll, self.side_panel = side_panel(
            [self.results, self.zoom_panel, self.trust_panel, self.label_panel, self.overlay])
        scroll = self.side_scroll
        self.identify_view = QSplitter()
        self.identify_view.addWidget(left)
        self.identify_view.addWidget(scroll)
        self.identify_view.setStretchFactor(0, 1)  # the photo takes what the window gains
        self.identify_view.setStretchFactor(1, 0)
        self.identify_view.setSizes([self.width() - 380, 380])

        # The window's one library object, handed to every view and controller that reads or changes it.
        self.library_service = LibraryService(self.engine, parent=self)
        self.library_view = LibraryView(self.engine, self.library_service)
        self.zoom_trust = ZoomTrustController(
            self.session, self.zoom_panel, self.trust_panel, self.photo_view,
            zoom_every_photo=lambda: self.settings.zoom_every_photo,
            places=lambda entry: (self.places.assigned_place(entry), self._home_place()),
            head=lambda: self.loaded_model.head if self.loaded_model is not None else None,
            read_library=self.library_service.read,
            parent=self,
        )
        self.library_view.show_photo.connect(self._show_library_photo)
        self.labels = LabelController(self.session, self.label_panel, self.library_service, self._status, self)
        self.library_service.writer.failed.connect(lambda message: self.statusBar().showMessage(message, 10000))
        self.places = PlaceController(self.session, self.library_service, self._status, self._answer_again, self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.identify_view, "&Identify")
        self.tabs.addTab(self.library_view, "&Library")
        self.workspace = self.tabs  # what the window shows once a model is installed

        self.pages = QStackedWidget()
        self.pages.addWidget(self.setup_page)
        self.pages.addWidget(self.workspace)
        self.setCentralWidget(self.pages)

    # --- the model ---------------------------------------------------------------------------

    def active_model(self) -> InstalledModel | None:
        """The active model as the index records it: a small JSON file, read here; the model's
        bytes are checked on the engine thread, where it loads."""
        try:
            return ModelStore().active()
        except BirdidError as error:
            self.setup_page.installer.message.setText(str(error))
            return None

    def show_model_state(self, *_: object) -> None:
        model = self.active_model()
        self.about_model_action.setEnabled(model is not None)
        self.download_action.setEnabled(model is None or not model.verified)
        self.setup_page.set_title("Install a model" if model else "No bird model is installed yet")
        if model is None:
            self.model_status.setText("No model")
            self.pages.setCurrentWidget(self.setup_page)
            return
        self.pages.setCurrentWidget(self.workspace)
        self.model_status.setText(f"Loading {model.name}…")
        self.engine.load_model(model, self._engine_settings())

    def _engine_settings(self) -> EngineSettings:
        s = self.settings
        return EngineSettings(device=s.device, precision=s.precision, cpu_threads=s.cpu_threads)

    def _model_loaded(self, loaded: LoadedModel) -> None:
        self.loaded_model = loaded
        self.library_service.set_model(loaded.name)
        self.library_view.set_species_names(loaded.class_names)
        self.label_panel.set_species_names(loaded.class_names)
        self.model_status.setText(f"{loaded.name} ({loaded.trust}) · {loaded.device} · {loaded.precision}")
        self.model_status.setToolTip(f"Precision: {loaded.precision_reason}")
        if self.statusBar().currentMessage() in (MEASURING_PRECISION, CONVERTING_INT8):
            self.statusBar().showMessage(f"Precision: {loaded.precision_reason}", 10000)
        current = self.session.current
        if current is not None and current.outcome() is None and self.session.pending(current) is None:
            self._request(current)

    def _precision_switched(self, message: str) -> None:
        """"auto" has been measured beside the answers: the line stays until another replaces it
        (the person may be looking at the photo, not the status bar), and the photo on screen is
        identified again in the mode now running, so it shows what `birdid identify` says."""
        self.statusBar().showMessage(message)
        current = self.session.current
        if current is not None and current.outcome() is not None and self.session.pending(current) is None:
            self._request(current)

    def _model_failed(self, message: str) -> None:
        self.loaded_model = None
        self.model_status.setText("Model not loaded")
        self.results.show_error(message)
        self.statusBar().showMessage(message)

    def show_settings(self) -> None:
        devices = self.loaded_model.devices if self.loaded_model else None
        dialog = SettingsDialog(self.settings, devices, self)
        # "Measure again" forgot the kept precision trial: the model loads again once the dialog
        # closes (with OK or Cancel), and the engine measures as it loads.
        measure_again: list[bool] = []
        dialog.measure_again.connect(lambda: measure_again.append(True))
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            if measure_again and self.active_model() is not None:
                self.show_model_state()
            return
        before = self._engine_settings()
        top_k_before = self.settings.top_k
        home_before = self._home_place()
        self.settings = dialog.settings()
        self.engine.index_zoom = self.settings.zoom_every_photo
        self.engine.index_home_place = self._home_place()
        self.save_settings()
        if (self._engine_settings() != before or measure_again) and self.active_model() is not None:
            self.show_model_state()  # reloads with the new device, precision or threads, or to measure again
        changed = self.settings.top_k != top_k_before or self._home_place() != home_before
        if changed and self.session.current is not None:
            self._show_current_answer()  # a new home place: identified again if its answer used the old one

    # --- getting photos in -------------------------------------------------------------------

    def choose_photos(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Open photos", "", PHOTO_FILTER)
        if names:
            self.add_photos([Path(n) for n in names])

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasImage():
            self.add_image(pil_from_qimage(mime.imageData()), PASTED)
        elif mime.hasUrls():
            self.add_photos([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
        elif mime.hasText():
            lines = [line.strip().strip('"') for line in mime.text().splitlines() if line.strip()]
            self.add_photos([Path(line) for line in lines])

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        if mime.hasUrls():
            self.add_photos([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            self.add_image(pil_from_qimage(mime.imageData()), "Dropped image")
        event.acceptProposedAction()

    def add_photos(self, paths: list[Path]) -> None:
        photos = photos_in(paths)
        if not photos:
            self.statusBar().showMessage("No photos there.", 5000)
            return
        for path in photos:
            add_recent_file(self.settings, str(path))
        self._add_entries([PhotoEntry(source=str(p), path=p) for p in photos])
        self.save_settings()  # after the photos are in: a failure to save must not lose them

    def add_image(self, image, source: str) -> None:
        self._add_entries([PhotoEntry(source=source, image=image)])

    def _add_entries(self, entries: list[PhotoEntry]) -> None:
        first_row = len(self.session.entries)
        self.session.add(entries)
        self.strip.add(entries, first_row)

    # --- showing a photo and its answer ------------------------------------------------------

    def _show_row(self, row: int) -> None:
        self.session.select(row)  # current_changed -> _show_entry

    def _show_entry(self, entry: PhotoEntry) -> None:
        # A RAW takes a second or more to decode: say what is happening, not "Drop photos here".
        self.photo_view.clear_photo(waiting=None if entry.image is not None else opening_words(entry.file()))
        self.zoom_trust.hide()  # until this photo's answer is shown
        self.label_panel.setEnabled(False)  # until this photo's answer is shown
        if entry.image is not None:
            self.photo_view.set_photo(qimage_from_pil(entry.image))
            self._restore_region(entry)
        else:
            self._run(decode_for_display(entry.file()), lambda image, e=entry: self._photo_decoded(e, image),
                      on_failure=lambda message, e=entry: self._photo_not_decoded(e, message))
        self._show_current_answer()

    def _photo_not_decoded(self, entry: PhotoEntry, message: str) -> None:
        if entry is self.session.current and self.photo_view.photo_size() is None:
            self.photo_view.clear_photo(waiting=message)

    def _photo_decoded(self, entry: PhotoEntry, image) -> None:
        if entry is self.session.current:
            self.photo_view.set_photo(image)
            self._restore_region(entry)
            self.update_overlay()

    def _restore_region(self, entry: PhotoEntry) -> None:
        self.photo_view.set_region(QRect(*entry.region) if entry.region else None)
        self.zoom_trust.show_zoom_box(entry)

    def _show_current_answer(self) -> None:
        entry = self.session.current
        if entry is None:
            return
        outcome = entry.outcome()
        if outcome is not None and not outcome.identification.stage_maps and self.overlay.choice().enabled:
            outcome = None  # its maps were let go while another photo was shown: run it again
        if outcome is not None and not self._placed_as_now(entry, outcome):
            outcome = None  # its place, the home place or the range model changed since: run it again
        if outcome is not None:
            self._display(outcome)
        elif entry.error and not entry.region:
            self.results.show_error(entry.error)
        elif self.session.pending(entry) is None:
            self._request(entry)

    def _request(self, entry: PhotoEntry) -> None:
        self.results.show_working(entry.source)
        self.zoom_trust.hide()
        if entry is self.session.current:
            self.photo_view.set_overlay(None)  # it described the previous answer
        assigned_place, home_place = self.places.assigned_place(entry), self._home_place()
        self.session.send("identify", entry, lambda request_id: IdentifyRequest(
            request_id, entry.source, path=entry.path, image=entry.image, region=entry.region,
            assigned_place=assigned_place, home_place=home_place))

    def _display(self, outcome: IdentifyOutcome) -> None:
        request = outcome.request
        entry = self.session.current
        self.results.show_outcome(
            request.source,
            outcome.ranked,
            self.settings.top_k,
            outcome.doubt,
            outcome.model_view,
            request.region is not None,
            where="the zoom on the bird" if entry is not None and zoom_kept(entry) else None,
            place=place_shown(outcome, self.range_prior_state),
        )
        self.statusBar().showMessage(f"Identified in {outcome.seconds:.2f} s")
        self.library_view.current_embedding = outcome.identification.embedding
        self.labels.show(self.session.current, self.results.ranked[0].name)  # the best match as shown
        if self.loaded_model is not None:
            self.overlay.set_species(outcome.ranked, self.loaded_model.class_names)
        self.update_overlay()
        if entry is not None:
            self.zoom_trust.show(entry)

    # --- where and when ----------------------------------------------------------------------

    def _home_place(self) -> tuple[float, float] | None:
        home = self.settings.home_place
        return (home[0], home[1]) if home else None

    def _placed_as_now(self, entry: PhotoEntry, outcome: IdentifyOutcome) -> bool:
        """Whether `outcome` was placed as the photo would be now: by the same range model, with the
        same place set and home place (without a range model, no place matters)."""
        state = self.range_prior_state
        range_model = state.sha256 if state is not None else outcome.range_model
        if outcome.range_model != range_model:
            return False
        request = outcome.request
        return range_model is None or (
            request.home_place == self._home_place() and request.assigned_place == self.places.assigned_place(entry)
        )

    def _range_prior_changed(self, state: RangePriorState) -> None:
        """The engine loaded the range model (or found none, or could not use it): the answer on
        screen is drawn again, and asked again when it was ranked without this one."""
        if state.sha256 is not None and self.range_prior_state is None:
            # The engine names each answer's place; the first name reads the list of towns (a
            # second or so): read it now, on the thread pool, rather than with the first answer.
            self._run(read_place_names, lambda _: None)
        self.range_prior_state = state
        self._answer_again()

    def _answer_again(self) -> None:
        """The answer on screen drawn again, and asked again where it was placed otherwise."""
        entry = self.session.current
        if entry is not None and entry.outcome() is not None:
            self._show_current_answer()

    @property
    def place_dialog(self) -> PlaceDialog | None:
        return self.places.dialog

    def _status(self, message: str, milliseconds: int) -> None:
        self.statusBar().showMessage(message, milliseconds)

    def _rank_by_place_changed(self, on: bool) -> None:
        """The switch in the results panel, which has redrawn itself: remembered in the settings
        (saved as the window closes, with the others), and the label panel offers the new best match."""
        self.settings.rank_by_place = on
        entry = self.session.current
        if entry is not None and entry.outcome() is not None and self.results.ranked:
            self.labels.show(entry, self.results.ranked[0].name)

    def _answer_changed(self, entry: PhotoEntry) -> None:
        if entry is not self.session.current:
            return
        if entry.outcome() is None and entry.error:
            self.results.show_error(entry.error)
        else:
            self._show_current_answer()

    def _request_failed(self, request_id: int, message: str) -> None:
        self.statusBar().showMessage(message, 10000)
        self.session.accept_failed(request_id, message)

    def _request_stopped(self, entry: PhotoEntry) -> None:
        if entry is self.session.current and entry.outcome() is None:
            self.results.show_message("Stopped", "Choose the photo again, or select a region, to identify it.")

    def stop_identifying(self) -> None:
        if self.session.current is not None:
            self.session.stop(self.session.current)

    def _region_selected(self, rect: QRect) -> None:
        entry = self.session.current
        if entry is None:
            return
        self.session.set_region(entry, (rect.x(), rect.y(), rect.width(), rect.height()))
        self.region_action.setChecked(False)
        self.photo_view.set_region_mode(False)
        self._request(entry)

    def _region_cleared(self) -> None:
        entry = self.session.current
        if entry is None or entry.region is None:
            return
        self.session.set_region(entry, None)
        self._show_current_answer()

    # --- what the model sees -----------------------------------------------------------------

    def update_overlay(self) -> None:
        self._remember_overlay_choice(self.overlay.choice())
        self.overlay_controller.update()

    def _opacity_changed(self, opacity: float) -> None:
        self.photo_view.set_overlay_opacity(opacity)
        self.settings.overlay_opacity = opacity

    def _remember_overlay_choice(self, choice: OverlayChoice) -> None:
        self.settings.overlay_stage = choice.stage
        self.settings.overlay_mode = choice.mode
        self.settings.overlay_colormap = choice.colormap
        self.settings.overlay_opacity = choice.opacity

    def export_overlay(self, blended: bool) -> None:
        entry, values = self.session.current, self.overlay_controller.values
        if entry is None or values is None:
            self.statusBar().showMessage("Turn on “Show what the model sees” first.", 5000)
            return
        stem = Path(entry.source).stem if entry.path else "pasted"
        suggested = f"{stem}-stage{self.overlay.choice().stage}-{self.overlay.choice().mode}.png"
        name, _ = QFileDialog.getSaveFileName(self, "Export as PNG", suggested, "PNG image (*.png)")
        if not name:
            return
        size = self.photo_view.photo_size()
        work = export_overlay_png(entry, values, self.overlay.choice(), Path(name), blended, (size.width(), size.height()))
        self._run(work, lambda path: self.statusBar().showMessage(f"Saved {path}", 5000))

    # --- background decoding -----------------------------------------------------------------

    def _run(self, work, on_success, on_failure=None) -> None:
        job = Job(work)
        job.succeeded.connect(on_success)
        job.failed.connect(lambda message: self.statusBar().showMessage(message, 10000))
        if on_failure is not None:
            job.failed.connect(on_failure)
        job.finished.connect(lambda: self.jobs.discard(job))
        self.jobs.add(job)
        job.start()

    # --- closing -----------------------------------------------------------------------------

    def _show_library_photo(self, path: Path) -> None:
        self.tabs.setCurrentWidget(self.identify_view)
        self.add_photos([path])

    def closeEvent(self, event) -> None:
        self.library_view.shutdown()
        self.library_service.shutdown()
        self.engine.stop()  # ends the step under way, then the thread
        QThreadPool.globalInstance().waitForDone(5000)  # decoders finish before the window goes
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        self.save_settings()
        self.collector.release()
        super().closeEvent(event)

def _zoom_kept(entry: PhotoEntry) -> bool:
    """Whether the answer shown is the zoom's: its box is the region, and answered by it."""
    zoom = entry.zoom
    return isinstance(zoom, ZoomOutcome) and zoom.outcome is not None and entry.region_outcome is zoom.outcome
