"""The main window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QStackedWidget

from birdid_app import APP_NAME, __version__
from birdid_app.core.errors import BirdidError
from birdid_app.core.model_store import PUBLISHED_MODEL, InstalledModel, ModelStore
from birdid_app.gui.model_about import ModelAboutDialog
from birdid_app.gui.model_setup import ModelSetupPage
from birdid_app.gui.resources import icon


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icon("birdid"))
        self.resize(960, 640)

        self.setup_page = ModelSetupPage()
        self.ready_page = QLabel()
        self.ready_page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.ready_page.setWordWrap(True)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.setup_page)
        self.pages.addWidget(self.ready_page)
        self.setCentralWidget(self.pages)
        self.setup_page.installer.installed.connect(self.show_model_state)

        model_menu = self.menuBar().addMenu("&Model")
        self.download_action = QAction(f"&Download the Model ({PUBLISHED_MODEL.approx_size_mb} MB)", self)
        self.download_action.triggered.connect(self._download_from_menu)
        self.import_action = QAction("&Import Model File…", self)
        self.import_action.setShortcut(QKeySequence("Ctrl+Shift+I"))
        self.import_action.triggered.connect(self._import_from_menu)
        self.about_model_action = QAction("&About the Model…", self)
        self.about_model_action.triggered.connect(self.show_model_about)
        model_menu.addActions([self.download_action, self.import_action])
        model_menu.addSeparator()
        model_menu.addAction(self.about_model_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&About birdid", self._show_about_app)

        self.show_model_state()

    def active_model(self) -> InstalledModel | None:
        """The active model as the index records it. Reads a small JSON file, nothing more: the
        model's bytes are checked where it is loaded, off this thread."""
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
            self.pages.setCurrentWidget(self.setup_page)
            return
        self.ready_page.setText(f"Ready: {model.name} ({model.trust_label}).")
        self.pages.setCurrentWidget(self.ready_page)

    def show_model_about(self) -> None:
        model = self.active_model()
        if model is not None:
            ModelAboutDialog(model, self).open()

    def _download_from_menu(self) -> None:
        self.pages.setCurrentWidget(self.setup_page)  # where the progress and Cancel are shown
        self.setup_page.installer.start_download()

    def _import_from_menu(self) -> None:
        self.pages.setCurrentWidget(self.setup_page)
        self.setup_page.installer.choose_file_to_import()

    def _show_about_app(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<b>{APP_NAME} {__version__}</b><br>Identifies European birds in photos, offline, "
            "with Birder's eu-common Hiera model.",
        )
