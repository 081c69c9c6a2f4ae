"""The answer: ranked species with probability bars, a "not sure" warning, the whole list, copy."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

MODEL_VIEW_SIZE = 160  # logical pixels of the "what the model saw" preview


def percent(probability: float) -> str:
    return f"{probability * 100:.1f}%" if probability >= 0.001 else "<0.1%"


def result_as_text(source: str, ranked, top_k: int, doubt: str | None, region: bool) -> str:
    lines = [f"{source}{' (selected region)' if region else ''}"]
    if doubt:
        lines.append(f"Not sure: {doubt}.")
    lines += [f"{percent(s.probability):>7}  {s.name}" for s in ranked[:top_k]]
    return "\n".join(lines)


class ResultsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ranked: list = []
        self.copy_text = ""

        self.headline = QLabel()
        self.headline.setAccessibleName("Best match")
        self.headline.setWordWrap(True)
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.7)
        font.setBold(True)
        self.headline.setFont(font)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setAccessibleName("Result details")
        self.doubt_banner = QLabel()
        self.doubt_banner.setWordWrap(True)
        self.doubt_banner.setAccessibleName("Not sure")
        self.doubt_banner.setStyleSheet(
            "QLabel { background: palette(highlight); color: palette(highlighted-text);"
            " border-radius: 4px; padding: 6px; font-weight: bold; }"
        )

        self.rows = QGridLayout()
        self.rows.setColumnStretch(1, 1)
        self.row_names: list[QLabel] = []
        self.row_bars: list[QProgressBar] = []

        self.all_button = QPushButton("&All species…")
        self.all_button.setAccessibleName("Show all species")
        self.all_button.clicked.connect(self.show_all_species)
        self.copy_button = QPushButton("&Copy result")
        self.copy_button.setAccessibleName("Copy result as text")
        self.copy_button.clicked.connect(self.copy_result)
        buttons = QHBoxLayout()
        buttons.addWidget(self.all_button)
        buttons.addWidget(self.copy_button)
        buttons.addStretch()

        self.model_view_title = QLabel("What the model saw")
        self.model_view = QLabel()
        self.model_view.setAccessibleName("What the model saw")
        self.model_view.setFixedSize(MODEL_VIEW_SIZE, MODEL_VIEW_SIZE)
        self.model_view.setScaledContents(True)
        self.model_view.setToolTip(
            "The model sees the whole photo (or the selected region) squashed to a square of "
            "384 × 384 pixels."
        )

        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.detail)
        layout.addWidget(self.doubt_banner)
        layout.addSpacing(6)
        layout.addLayout(self.rows)
        layout.addLayout(buttons)
        layout.addSpacing(12)
        layout.addWidget(self.model_view_title)
        layout.addWidget(self.model_view)
        self.show_message("No photo yet", "Drop photos on the window, open them with Ctrl+O, or paste one.")

    # --- states ------------------------------------------------------------------------------

    def show_message(self, headline: str, detail: str = "") -> None:
        self.ranked, self.copy_text = [], ""
        self.headline.setText(headline)
        self.detail.setText(detail)
        self.doubt_banner.hide()
        self._set_rows([], 0)
        self.all_button.setEnabled(False)
        self.copy_button.setEnabled(False)
        self.model_view_title.hide()
        self.model_view.hide()

    def show_working(self, source: str) -> None:
        self.show_message("Identifying…", source)

    def show_error(self, message: str) -> None:
        self.show_message("Could not identify this photo", message)

    def show_outcome(self, source: str, ranked, top_k: int, doubt: str | None, model_view: QImage, region: bool,
                     where: str | None = None) -> None:
        """`where`: what the answer is of, when not "the selected region" or "the whole photo"."""
        self.ranked = list(ranked)
        best = self.ranked[0]
        self.headline.setText(best.name if not doubt else f"Perhaps {best.name}")
        where = where or ("the selected region" if region else "the whole photo")
        self.detail.setText(f"{percent(best.probability)} · {where}")
        self.doubt_banner.setText(f"Not sure: {doubt}." if doubt else "")
        self.doubt_banner.setVisible(bool(doubt))
        self._set_rows(self.ranked[:top_k], top_k)
        self.all_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        self.copy_text = result_as_text(source, self.ranked, top_k, doubt, region)
        self.model_view.setPixmap(QPixmap.fromImage(model_view))
        self.model_view_title.show()
        self.model_view.show()

    # --- actions -----------------------------------------------------------------------------

    def copy_result(self) -> None:
        QGuiApplication.clipboard().setText(self.copy_text)

    def show_all_species(self) -> None:
        SpeciesListDialog(self.ranked, self).open()

    def _set_rows(self, ranked, top_k: int) -> None:
        while len(self.row_names) < len(ranked):
            row = len(self.row_names)
            name, bar = QLabel(), QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            self.rows.addWidget(name, row, 0)
            self.rows.addWidget(bar, row, 1)
            self.row_names.append(name)
            self.row_bars.append(bar)
        for index, (name, bar) in enumerate(zip(self.row_names, self.row_bars, strict=True)):
            shown = index < len(ranked)
            name.setVisible(shown)
            bar.setVisible(shown)
            if shown:
                score = ranked[index]
                name.setText(f"<b>{score.name}</b>" if index == 0 else score.name)
                bar.setValue(round(score.probability * 1000))
                bar.setFormat(percent(score.probability))
                bar.setAccessibleName(f"{score.name}: {percent(score.probability)}")


class SpeciesListDialog(QDialog):
    """Every species the model knows, most likely first, filtered as you type."""

    def __init__(self, ranked, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"All {len(ranked)} species")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Search by name")
        self.filter.setAccessibleName("Search species")
        self.filter.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setAccessibleName("Species ranked by probability")
        for rank, score in enumerate(ranked, start=1):
            item = QListWidgetItem(f"{rank}. {score.name} — {percent(score.probability)}")
            item.setData(Qt.ItemDataRole.UserRole, score.name.casefold())  # what the search matches
            self.list.addItem(item)
        self.filter.textChanged.connect(self.apply_filter)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(420, 560)

    def apply_filter(self, text: str) -> None:
        needle = text.strip().casefold()
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setHidden(bool(needle) and needle not in item.data(Qt.ItemDataRole.UserRole))

    def visible_rows(self) -> list[str]:
        return [self.list.item(r).text() for r in range(self.list.count()) if not self.list.item(r).isHidden()]
