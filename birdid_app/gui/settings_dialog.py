"""The settings dialog: device, precision, species shown per photo, CPU threads, keywords, the
zoom, and the home place (looked up on a worker thread as it is typed, place_dialog.PlaceResolver).

It only edits a copy: the caller reads settings() after OK and saves them, so Cancel, or closing
the window, changes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.errors import BirdidError
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.model.precision import forget_trials  # no torch: it only edits the kept trials
from birdid_app.core.settings import (
    AUTOMATIC_CPU_THREADS,
    TOP_K_MAX,
    TOP_K_MIN,
    Settings,
    max_cpu_threads,
)
from birdid_app.gui.place_dialog import PLACE_HINT, PlaceResolver

# Before the engine has loaded torch nothing more is known to exist.
DEVICES_BEFORE_ENGINE = [("auto", "Automatic"), ("cpu", "CPU")]

# (value, item text, tooltip). "Automatic" is what core/model/precision.py measures as fastest and agreeing.
PRECISION_CHOICES = [
    ("auto", "Automatic", "The fastest mode that gives fp32's answers on this computer, measured once per model"),
    ("fp32", "fp32 – full precision, slowest", "32-bit floats: the reference results, twice the memory of the others"),
    ("bf16", "bf16 – half precision, recent GPUs and CPUs", "16-bit brain floats: fast on GPUs and CPUs with native bf16, slow on others"),
    ("fp16", "fp16 – half precision, most GPUs", "16-bit floats: fast on most GPUs, slow on the CPU"),
    ("int8", "int8 – 8-bit weights, CPU only", "8-bit integer weights run by ONNX Runtime: fast on every CPU; converted once per model"),
]


def describe_device(value: str) -> str:
    """A label for a device value that came from the settings file rather than from the engine."""
    labels = dict(DEVICES_BEFORE_ENGINE) | {"cuda": "GPU (cuda)", "mps": "Apple GPU (mps)"}
    if value in labels:
        return labels[value]
    if value.startswith("cuda:"):
        return f"GPU {value.removeprefix('cuda:')} ({value})"
    return value


class SettingsDialog(QDialog):
    # "Measure again" forgot the active model's kept precision trial: the window reloads the
    # model, and the engine measures again where the model lives.
    measure_again = Signal()

    def __init__(
        self,
        settings: Settings,
        devices: list[tuple[str, str]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """`devices`: (value, label) pairs for the device list, from the engine once it knows
        them; None before that. The current device is always offered, so OK never loses it."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        # A copy, so that a caller changing its own object while the dialog is open changes nothing here.
        self._initial = replace(settings, recent_files=list(settings.recent_files))

        self.device_box = QComboBox()
        choices = list(DEVICES_BEFORE_ENGINE if devices is None else devices)
        for value, label in choices:
            self.device_box.addItem(label, value)
        if settings.device not in [value for value, _ in choices]:
            label = describe_device(settings.device)
            self.device_box.addItem(label if devices is None else f"{label} – not found now", settings.device)
        self.device_box.setCurrentIndex(self.device_box.findData(settings.device))
        self.device_box.setToolTip("Where the model runs. Automatic picks a GPU when there is one.")

        self.precision_box = QComboBox()
        for value, label, explanation in PRECISION_CHOICES:
            self.precision_box.addItem(label, value)
            self.precision_box.setItemData(self.precision_box.count() - 1, explanation, Qt.ItemDataRole.ToolTipRole)
        self.precision_box.setCurrentIndex(max(self.precision_box.findData(settings.precision), 0))
        self.precision_box.setToolTip("The number format the model computes in: half precision is faster on a GPU.")
        self.measure_button = QPushButton("&Measure again")
        self.measure_button.setToolTip(
            "Forget which precision was measured fastest for this model on this computer, and measure again "
            "as the model reloads: worth it when the computer was busy the first time."
        )
        self._forgotten = False  # once pressed, the button stays off: the model is reloading
        self.measure_button.setEnabled(self.precision_box.currentData() == "auto")
        self.precision_box.currentIndexChanged.connect(
            lambda: self.measure_button.setEnabled(self.precision_box.currentData() == "auto" and not self._forgotten)
        )
        self.measure_button.clicked.connect(self._measure_again)

        self.top_k_box = QSpinBox()
        self.top_k_box.setRange(TOP_K_MIN, TOP_K_MAX)
        self.top_k_box.setValue(settings.top_k)
        self.top_k_box.setToolTip("How many of the most likely species to list for each photo.")

        self.threads_box = QSpinBox()
        self.threads_box.setRange(AUTOMATIC_CPU_THREADS, max_cpu_threads())
        self.threads_box.setSpecialValueText("Automatic")  # shown for the minimum, AUTOMATIC_CPU_THREADS
        self.threads_box.setValue(settings.cpu_threads)
        self.threads_box.setToolTip("Threads for running the model on the CPU; Automatic lets PyTorch choose.")

        # Keywords for photo editors (Library > Write keywords, `birdid keywords write`).
        self.editor_box = QComboBox()
        self.editor_box.addItem("Lightroom, Capture One (photo.xmp)", "lightroom")
        self.editor_box.addItem("darktable, digiKam (photo.jpg.xmp)", "darktable")
        self.editor_box.setCurrentIndex(max(self.editor_box.findData(settings.sidecar_style), 0))
        self.editor_box.setToolTip("How new XMP sidecars are named; a sidecar that is already there is always used.")
        self.keyword_root_edit = QLineEdit(settings.keyword_root)
        self.keyword_root_edit.setToolTip("The top of the hierarchical keyword, as in Birds|Great Tit.")
        self.embed_box = QCheckBox("Write keywords into JPEGs themselves, not sidecars")
        self.embed_box.setChecked(settings.embed_in_jpeg)
        self.embed_box.setToolTip("Changes the original JPEG files; off, only sidecars are written.")

        self.zoom_box = QCheckBox("Zoom on the bird in every photo")
        self.zoom_box.setChecked(settings.zoom_every_photo)
        self.zoom_box.setToolTip(
            "Identify each photo again where the model found its evidence, and show both answers; "
            "indexing keeps the answer the model is surer of. About four times the work per photo."
        )

        # Where the person usually photographs: the range prior's place for a photo with no GPS
        # and no place set for it or its folder.
        self.home_edit = QLineEdit(_home_text(settings))
        self.home_edit.setPlaceholderText(PLACE_HINT)
        self.home_edit.setClearButtonEnabled(True)
        self.home_edit.setToolTip(
            "Where you usually take photos: used to rank species by where and when for photos without GPS. "
            "Empty: none."
        )
        self.home_found = QLabel(self._home_known_text())
        self.home_found.setWordWrap(True)
        self.home_found.setAccessibleName("Home place found")
        self._home: tuple[float, float, str] | None = None  # what the text now typed was found to be
        self.home_resolver = PlaceResolver(self)
        self.home_resolver.resolved.connect(self._home_resolved)
        self.home_resolver.failed.connect(self._home_failed)
        self.home_edit.textChanged.connect(self._home_typed)
        self.home_edit.returnPressed.connect(lambda: self.home_resolver.ask(self.home_edit.text(), now=True))

        form = QFormLayout()
        for text, name, widget in (
            ("&Device:", "Device", self.device_box),
            ("&Precision:", "Precision", self.precision_box),
            ("", "Measure precision again", self.measure_button),
            ("&Species shown per photo:", "Species shown per photo", self.top_k_box),
            ("CPU &threads:", "CPU threads", self.threads_box),
            ("Photo &editor:", "Photo editor", self.editor_box),
            ("&Keyword root:", "Keyword root", self.keyword_root_edit),
            ("", "Embed keywords in JPEGs", self.embed_box),
            ("", "Zoom on the bird in every photo", self.zoom_box),
            ("&Home place:", "Home place", self.home_edit),
            ("", "Home place found", self.home_found),
        ):
            widget.setAccessibleName(name)
            widget.setAccessibleDescription(widget.toolTip())
            buddy = QLabel(text)
            buddy.setBuddy(widget)
            form.addRow(buddy, widget)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

    def settings(self) -> Settings:
        """A new Settings with the values chosen in the dialog and the recent files as they were."""
        return replace(
            self._initial,
            device=self.device_box.currentData(),
            precision=self.precision_box.currentData(),
            top_k=self.top_k_box.value(),
            cpu_threads=self.threads_box.value(),
            recent_files=list(self._initial.recent_files),
            sidecar_style=self.editor_box.currentData(),
            keyword_root=self.keyword_root_edit.text().strip().strip("|") or self._initial.keyword_root,
            embed_in_jpeg=self.embed_box.isChecked(),
            zoom_every_photo=self.zoom_box.isChecked(),
            **self._home_place(),
        )

    def _measure_again(self) -> None:
        try:
            model = ModelStore().active()
        except BirdidError as error:
            self.measure_button.setToolTip(str(error))
            return
        if model is not None:
            forget_trials(model.path)
        self._forgotten = True
        self.measure_button.setEnabled(False)
        self.measure_button.setText("Measured again as the model reloads")
        self.measure_again.emit()

    # --- the home place ----------------------------------------------------------------------

    def _home_known_text(self) -> str:
        place = self._initial.home_place
        if not place:
            return "No home place: photos without GPS are ranked by the picture alone."
        where = f"{place[0]:.4f}, {place[1]:.4f}"
        name = self._initial.home_place_name
        return f"{name} ({where})" if name and name != where else where

    def _home_typed(self, text: str) -> None:
        self._home = None
        if not text.strip():
            self.home_resolver.clear()
            self.home_found.setText("No home place: photos without GPS are ranked by the picture alone.")
        elif text.strip() == _home_text(self._initial):
            self.home_resolver.clear()  # as it was: kept as it is
            self.home_found.setText(self._home_known_text())
        else:
            self.home_found.setText("Looking it up…")
            self.home_resolver.ask(text)
        self._enable_ok()

    def _home_resolved(self, text: str, place) -> None:
        self._home = place
        self.home_found.setText(f"Found: {place[2]}")
        self._enable_ok()

    def _home_failed(self, text: str, problem: str) -> None:
        self._home = None
        self.home_found.setText(problem)
        self._enable_ok()

    def home_pending(self) -> bool:
        """Whether the home place typed is still being looked up, or was not found (OK waits)."""
        text = self.home_edit.text().strip()
        return bool(text) and text != _home_text(self._initial) and self._home is None

    def _enable_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not self.home_pending())

    def _home_place(self) -> dict:
        """Settings' home_place and home_place_name for what is typed: empty clears them, the text
        they were given keeps them, a place found replaces them."""
        text = self.home_edit.text().strip()
        if not text:
            return {"home_place": [], "home_place_name": ""}
        if self._home is None:  # unchanged (or, should OK come first, not found: kept as it was)
            return {"home_place": list(self._initial.home_place), "home_place_name": self._initial.home_place_name}
        latitude, longitude, label = self._home
        return {"home_place": [latitude, longitude], "home_place_name": label}


def _home_text(settings: Settings) -> str:
    """What the home place field shows for the settings: the name, else the coordinates."""
    if not settings.home_place:
        return ""
    return settings.home_place_name or f"{settings.home_place[0]:.5f}, {settings.home_place[1]:.5f}"
