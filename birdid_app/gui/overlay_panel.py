"""Controls for seeing what the model sees: stage, mode, channel, species, colours, opacity."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from birdid_app.core.options import COLORMAPS, OVERLAY_MODES
from birdid_app.core.settings import Settings

STAGE_LABELS = [
    "1: fine detail (every 4 px)",
    "2: textures (every 8 px)",
    "3: parts (every 16 px)",
    "4: whole objects (every 32 px)",
]
MODE_LABELS = {
    "mean": "Activation strength",
    "pca": "PCA colours (parts)",
    "channel": "Single channel",
    "cam": "Class activation (Grad-CAM)",
}
MODE_HELP = {
    "mean": "How strongly this stage responds at each place, whatever it responds to.",
    "pca": "The three main patterns of this stage as red, green and blue: places with the same "
    "colour look alike to the model, which often paints a bird's parts apart.",
    "channel": "One of the stage's feature channels, strongest on this photo first; step with the arrows.",
    "cam": "Grad-CAM: the places whose features, at this stage, raised the score of the chosen species. "
    "It shows what this model used, not what makes the species; coarse stages blur it, and a bright "
    "spot on the background means the model leaned on the background.",
}


@dataclass(frozen=True)
class OverlayChoice:
    enabled: bool
    stage: int  # 1-4
    mode: str  # one of OVERLAY_MODES
    channel_rank: int  # 0: the channel that fires most on this photo
    class_index: int | None  # the species for "cam", by its index in the model's classes
    colormap: str
    opacity: float


class OverlayPanel(QWidget):
    changed = Signal()  # what the overlay shows changed; opacity has its own signal
    opacity_changed = Signal(float)
    export_requested = Signal(bool)  # True: blended over the photo; False: the overlay alone

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.channel_rank = 0
        self.channel_count = 0

        self.show_box = QCheckBox("&Show what the model sees")
        self.show_box.setAccessibleName("Show overlay")
        self.stage_box = QComboBox()
        self.stage_box.addItems(STAGE_LABELS)
        self.stage_box.setCurrentIndex(settings.overlay_stage - 1)
        self.stage_box.setAccessibleName("Stage")
        self.mode_box = QComboBox()
        for mode in OVERLAY_MODES:
            self.mode_box.addItem(MODE_LABELS[mode], mode)
        self.mode_box.setCurrentIndex(OVERLAY_MODES.index(settings.overlay_mode))
        self.mode_box.setAccessibleName("Overlay mode")
        self.species_box = QComboBox()
        self.species_box.setAccessibleName("Species for the class-activation map")
        self.previous_channel = QPushButton("◀")
        self.previous_channel.setAccessibleName("Previous channel")
        self.next_channel = QPushButton("▶")
        self.next_channel.setAccessibleName("Next channel")
        self.channel_label = QLabel()
        self.colormap_box = QComboBox()
        self.colormap_box.addItems(list(COLORMAPS))
        self.colormap_box.setCurrentText(settings.overlay_colormap)
        self.colormap_box.setAccessibleName("Colour map")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(settings.overlay_opacity * 100))
        self.opacity_slider.setAccessibleName("Overlay opacity")
        self.help = QLabel()
        self.help.setWordWrap(True)
        # The lists shrink with the side panel instead of widening it to their longest entry.
        for box in (self.stage_box, self.mode_box, self.species_box, self.colormap_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
        self.export_overlay = QPushButton("E&xport overlay…")
        self.export_blended = QPushButton("Export blended…")

        channel_row = QHBoxLayout()
        channel_row.addWidget(self.previous_channel)
        channel_row.addWidget(self.channel_label, 1)
        channel_row.addWidget(self.next_channel)
        self.channel_row = QWidget()
        self.channel_row.setLayout(channel_row)
        channel_row.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        form.addRow("Sta&ge", self.stage_box)
        form.addRow("Mo&de", self.mode_box)
        form.addRow("Channel", self.channel_row)
        form.addRow("Species", self.species_box)
        form.addRow("Colo&urs", self.colormap_box)
        form.addRow("&Opacity", self.opacity_slider)
        exports = QHBoxLayout()
        exports.addWidget(self.export_overlay)
        exports.addWidget(self.export_blended)
        exports.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.show_box)
        layout.addLayout(form)
        layout.addWidget(self.help)
        layout.addLayout(exports)

        for signal in (self.show_box.toggled, self.stage_box.currentIndexChanged, self.mode_box.currentIndexChanged,
                       self.species_box.currentIndexChanged, self.colormap_box.currentIndexChanged):
            signal.connect(self._changed)
        self.stage_box.currentIndexChanged.connect(self._reset_channel)
        self.previous_channel.clicked.connect(lambda: self.step_channel(-1))
        self.next_channel.clicked.connect(lambda: self.step_channel(1))
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100))
        self.export_overlay.clicked.connect(lambda: self.export_requested.emit(False))
        self.export_blended.clicked.connect(lambda: self.export_requested.emit(True))
        self._update_visibility()

    def choice(self) -> OverlayChoice:
        return OverlayChoice(
            enabled=self.show_box.isChecked(),
            stage=self.stage_box.currentIndex() + 1,
            mode=self.mode_box.currentData(),
            channel_rank=self.channel_rank,
            class_index=self.species_box.currentData(),
            colormap=self.colormap_box.currentText(),
            opacity=self.opacity_slider.value() / 100,
        )

    def set_species(self, ranked, class_names: list[str]) -> None:
        """Fill the species list, most likely first, keeping the chosen species if it is there."""
        chosen = self.species_box.currentData()
        index_of = {name: i for i, name in enumerate(class_names)}
        self.species_box.blockSignals(True)
        self.species_box.clear()
        for rank, score in enumerate(ranked, start=1):
            self.species_box.addItem(f"{rank}. {score.name} ({score.probability:.0%})", index_of[score.name])
        found = self.species_box.findData(chosen)
        self.species_box.setCurrentIndex(found if found >= 0 else 0)
        self.species_box.blockSignals(False)

    def show_channel(self, channel: int, count: int) -> None:
        self.channel_count = count
        self.channel_label.setText(f"channel {channel} · {_ordinal(self.channel_rank + 1)} strongest of {count}")
        self.previous_channel.setEnabled(self.channel_rank > 0)
        self.next_channel.setEnabled(self.channel_rank + 1 < count)

    def step_channel(self, delta: int) -> None:
        rank = max(0, min(self.channel_count - 1, self.channel_rank + delta))
        if rank != self.channel_rank:
            self.channel_rank = rank
            self.changed.emit()

    def _reset_channel(self) -> None:
        self.channel_rank = 0

    def _changed(self) -> None:
        self._update_visibility()
        self.changed.emit()

    def _update_visibility(self) -> None:
        mode = self.mode_box.currentData()
        self.channel_row.setEnabled(mode == "channel")
        self.species_box.setEnabled(mode == "cam")
        self.help.setText(MODE_HELP[mode])


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
