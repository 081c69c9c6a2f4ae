"""The answer: ranked species with probability bars, a "not sure" warning, the whole list, copy;
and where and when the photo was taken, with the answer ranked by it (the range prior) or by the
picture alone, as the person switches.

Everything about the place comes ready from the engine (IdentifyOutcome's place fields): this
panel only chooses which list to show and words it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
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

from birdid_app.core.model.species_names import SpeciesSearch, names_beside, search_key
from birdid_app.core.places.geomodel import ATTRIBUTION
from birdid_app.core.places.range_prior import month_of_week

MODEL_VIEW_SIZE = 160  # logical pixels of the "what the model saw" preview

# The states of the line about where and when (PlaceShown.state).
RANKED = "ranked"  # a place is known and the range prior ranked the answer
UNKNOWN_PLACE = "unknown"  # the range model is there, but no place is known for the photo
NO_RANGE_MODEL = "no range model"  # none is installed
UNAVAILABLE = "unavailable"  # one is installed but cannot be used (its sentence is the tooltip)
UNKNOWN_LINE = "Where: unknown — set a place (Photo > Set Place…) or a home place in Settings"
UNKNOWN_PASTED_LINE = "Where: unknown — a pasted picture has no GPS: set a home place in Settings"
INSTALL_LINE = "Install the range model (Model > Range Model…) to rank by where and when"
UNAVAILABLE_LINE = "The range model could not be used: the species are ranked by the picture alone."
SHORT_ATTRIBUTION = "Range prior: BirdNET Geomodel (CC BY-SA 4.0)"
# Where the place came from (core.place.Where.source), as the line says it.
_PLACE_SOURCES = {
    "photo": "from the photo's GPS",
    "person": "the place you set for this photo",
    "folder": "the place you set for its folder",
    "settings": "your home place (Settings)",
    "option": "the place given",
}


def percent(probability: float) -> str:
    return f"{probability * 100:.1f}%" if probability >= 0.001 else "<0.1%"


@dataclass(frozen=True)
class ShownSpecies:
    """A row as the panel shows it with the range prior: `probability` is the ranking's own (the
    combined one, or the picture's), `prior` what the range model says of the species there."""

    name: str
    probability: float
    prior: str  # core PlacedSpecies.prior_line: "expected here in June: 0.60", "unusual here in …"
    unusual: bool


@dataclass(frozen=True)
class PlaceShown:
    """What the panel says about where and when for one answer (see place_shown)."""

    state: str  # RANKED, UNKNOWN_PLACE, NO_RANGE_MODEL or UNAVAILABLE
    line: str
    tooltip: str = ""
    by_place: list[ShownSpecies] = field(default_factory=list)  # every species, by picture and place
    by_picture: list[ShownSpecies] = field(default_factory=list)  # every species, by the picture alone
    doubt: str | None = None  # why the top answer by place is not to be trusted, or None


def where_words(where, place_words: str | None) -> str:
    """"Texel, North Holland, Netherlands · May (week 20) · from the photo's GPS", or
    "… · all year: no capture date"; coordinates where the place has no name."""
    place = place_words or f"{where.latitude:.4f}, {where.longitude:.4f}"
    if where.week == 0:
        when = "all year: no capture date"
    else:
        when = f"{month_of_week(where.week)} (week {where.week})"
    return " · ".join((place, when, _PLACE_SOURCES.get(where.source, where.source)))


def place_shown(outcome, prior_state) -> PlaceShown | None:
    """The line about where and when for an engine IdentifyOutcome, given the engine's
    RangePriorState now (None: not known yet); None when nothing is to be said."""
    if outcome.range_model is None:
        if prior_state is None:
            return None
        if not prior_state.installed:
            return PlaceShown(NO_RANGE_MODEL, INSTALL_LINE)
        if prior_state.problem:
            return PlaceShown(UNAVAILABLE, UNAVAILABLE_LINE, prior_state.problem)
        return None  # answered before the range model was loaded: it is asked again
    notes = list(outcome.where_notes)
    if outcome.place_answer is None:
        line = UNKNOWN_LINE if outcome.request.path is not None else UNKNOWN_PASTED_LINE
        return PlaceShown(UNKNOWN_PLACE, line, "\n".join(notes))
    where = outcome.place_answer.where
    week = where.week
    tooltip = "\n".join([f"{where.latitude:.5f}, {where.longitude:.5f}", *notes, ATTRIBUTION])
    return PlaceShown(
        RANKED,
        where_words(where, outcome.place_words),
        tooltip,
        by_place=[ShownSpecies(s.name, s.probability, s.prior_line(week), s.unusual_here) for s in outcome.place_ranked],
        by_picture=[ShownSpecies(s.name, s.picture_probability, s.prior_line(week), s.unusual_here)
                    for s in outcome.place_by_picture],
        doubt=outcome.place_doubt,
    )


def result_as_text(source: str, ranked, top_k: int, doubt: str | None, region: bool,
                   place_line: str | None = None, ranking: str | None = None) -> str:
    """The answer as Copy Result gives it: `place_line` (where and when, or why not) and `ranking`
    (which ranking this is) when the range prior is part of it; each row's prior after its name."""
    lines = [f"{source}{' (selected region)' if region else ''}"]
    if place_line:
        lines.append(place_line)
    if ranking:
        lines.append(ranking)
    if doubt:
        lines.append(f"Not sure: {doubt}.")
    for s in ranked[:top_k]:
        prior = getattr(s, "prior", None)
        lines.append(f"{percent(s.probability):>7}  {s.name}" + (f"  ({prior})" if prior else ""))
    return "\n".join(lines)


@dataclass
class _Answer:
    """What show_outcome was given: the switch redraws from it, with no new request."""

    source: str
    ranked: list[Any]
    top_k: int
    doubt: str | None
    region: bool
    where: str
    place: PlaceShown | None


class ResultsPanel(QWidget):
    rank_by_place_changed = Signal(bool)  # the person turned "Rank by where and when" on or off
    copied = Signal(str)  # Copy result put the answer on the clipboard: the sentence saying so

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ranked: list = []  # what is shown, most likely first: SpeciesScore, or ShownSpecies with a place
        self.copy_text = ""
        self._answer: _Answer | None = None

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

        # Where and when: a line above the ranking, and the switch between the two rankings.
        self.place_line = QLabel()
        self.place_line.setWordWrap(True)
        self.place_line.setAccessibleName("Where and when")
        self.place_line.setTextFormat(Qt.TextFormat.PlainText)
        self.rank_switch = QCheckBox("Rank by &where and when")
        self.rank_switch.setChecked(True)
        self.rank_switch.setAccessibleName("Rank by where and when")
        self.rank_switch.setToolTip(
            "On: the species are ranked by the picture and by what lives at this place at this time of "
            "year (BirdNET's range model); off: by the picture alone. Either way each species says "
            f"whether it is expected there.\n{ATTRIBUTION}"
        )
        self.rank_switch.toggled.connect(self._switched)
        self.attribution = QLabel(SHORT_ATTRIBUTION)
        self.attribution.setToolTip(ATTRIBUTION)
        self.attribution.setAccessibleName("Range prior attribution")
        small = self.attribution.font()
        small.setPointSizeF(small.pointSizeF() * 0.85)
        self.attribution.setFont(small)

        self.rows = QGridLayout()
        self.rows.setColumnStretch(0, 3)  # names get the room; bars keep a readable width
        self.rows.setColumnStretch(1, 2)
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
        layout.addWidget(self.place_line)
        layout.addWidget(self.rank_switch)
        layout.addSpacing(6)
        layout.addLayout(self.rows)
        layout.addWidget(self.attribution)
        layout.addLayout(buttons)
        layout.addSpacing(12)
        layout.addWidget(self.model_view_title)
        layout.addWidget(self.model_view)
        self.show_message("No photo yet", "Drop photos on the window, open them with Ctrl+O, or paste one.")

    # --- states ------------------------------------------------------------------------------

    def show_message(self, headline: str, detail: str = "") -> None:
        self.ranked, self.copy_text, self._answer = [], "", None
        self.headline.setText(headline)
        self.detail.setText(detail)
        self.doubt_banner.hide()
        self._show_place(None)
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
                     where: str | None = None, place: PlaceShown | None = None) -> None:
        """`where`: what the answer is of, when not "the selected region" or "the whole photo".
        `place`: where and when (place_shown), with both rankings when the range prior ranked it."""
        where = where or ("the selected region" if region else "the whole photo")
        self._answer = _Answer(source, list(ranked), top_k, doubt, region, where, place)
        self._draw()
        self.model_view.setPixmap(QPixmap.fromImage(model_view))
        self.model_view_title.show()
        self.model_view.show()

    def set_rank_by_place(self, on: bool) -> None:
        """The switch as the settings say, without telling anyone it changed."""
        self.rank_switch.blockSignals(True)
        self.rank_switch.setChecked(on)
        self.rank_switch.blockSignals(False)
        if self._answer is not None:
            self._draw()

    def by_place(self) -> bool:
        """Whether the ranking shown is the one with where and when."""
        answer = self._answer
        return answer is not None and answer.place is not None and answer.place.state == RANKED and (
            self.rank_switch.isChecked()
        )

    def _switched(self, on: bool) -> None:
        if self._answer is not None:
            self._draw()
        self.rank_by_place_changed.emit(on)

    def _draw(self) -> None:
        answer = self._answer
        if answer is None:
            return
        place = answer.place
        ranking = None
        if place is not None and place.state == RANKED:
            if self.rank_switch.isChecked():
                ranked, doubt, ranking = place.by_place, place.doubt, "Ranked by the picture and by where and when."
            else:
                ranked, doubt, ranking = place.by_picture, answer.doubt, "Ranked by the picture alone."
        else:
            ranked, doubt = answer.ranked, answer.doubt
        self.ranked = list(ranked)
        best = self.ranked[0]
        self.headline.setText(best.name if not doubt else f"Perhaps {best.name}")
        self.detail.setText(f"{percent(best.probability)} · {answer.where}")
        self.doubt_banner.setText(f"Not sure: {doubt}." if doubt else "")
        self.doubt_banner.setVisible(bool(doubt))
        self._show_place(place)
        self._set_rows(self.ranked[: answer.top_k], answer.top_k)
        self.all_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        place_line = None if place is None else f"Where: {place.line}" if place.state == RANKED else place.line
        self.copy_text = result_as_text(answer.source, self.ranked, answer.top_k, doubt, answer.region, place_line,
                                        ranking)

    def _show_place(self, place: PlaceShown | None) -> None:
        self.place_line.setVisible(place is not None)
        self.rank_switch.setVisible(place is not None and place.state == RANKED)
        self.attribution.setVisible(place is not None and place.state == RANKED)
        if place is None:
            return
        self.place_line.setText(place.line)
        self.place_line.setToolTip(place.tooltip)
        # The line is a sentence about the answer where a place is known; a quiet hint otherwise.
        font = self.place_line.font()
        font.setItalic(place.state in (NO_RANGE_MODEL, UNAVAILABLE))
        self.place_line.setFont(font)

    # --- actions -----------------------------------------------------------------------------

    def copy_result(self) -> None:
        if not self.copy_text:
            self.copied.emit("No answer to copy yet.")
            return
        QGuiApplication.clipboard().setText(self.copy_text)
        best = self.ranked[0].name if self.ranked else ""
        self.copied.emit(f"Copied the answer ({best}, {len(self.copy_text.splitlines())} lines) to the clipboard.")

    def show_all_species(self) -> None:
        place = self._answer.place if self._answer is not None else None
        heading = None
        if place is not None:
            heading = place.line
            if place.state == RANKED:
                heading += "\n" + ("Ranked by the picture and by where and when." if self.by_place()
                                   else "Ranked by the picture alone.")
        SpeciesListDialog(self.ranked, self, heading=heading).open()

    def _set_rows(self, ranked, top_k: int) -> None:
        while len(self.row_names) < len(ranked):
            row = len(self.row_names)
            name, bar = QLabel(), QProgressBar()
            name.setWordWrap(True)  # a long name and its line about the place wrap, not widen the panel
            bar.setMinimumWidth(60)
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
                text = html.escape(score.name)
                text = f"<b>{text}</b>" if index == 0 else text
                prior = getattr(score, "prior", None)
                if prior:
                    # An unusual bird is flagged by a sign and a bold word, not by colour alone.
                    said = f"⚠ <b>{html.escape(prior)}</b>" if score.unusual else html.escape(prior)
                    text += f"<br><small>{said}</small>"
                name.setText(text)
                name.setToolTip(prior or "")
                bar.setValue(round(score.probability * 1000))
                bar.setFormat(percent(score.probability))
                bar.setAccessibleName(f"{score.name}: {percent(score.probability)}" + (f" ({prior})" if prior else ""))


class SpeciesListDialog(QDialog):
    """Every species the model knows, most likely first, filtered as you type."""

    def __init__(self, ranked, parent: QWidget | None = None, heading: str | None = None) -> None:
        """`heading`: where and when, and which ranking this is, when the range prior is part of it."""
        super().__init__(parent)
        self.setWindowTitle(f"All {len(ranked)} species")
        self.heading = QLabel(heading or "")
        self.heading.setWordWrap(True)
        self.heading.setAccessibleName("Where and when")
        self.heading.setVisible(bool(heading))
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Search by name")
        self.filter.setAccessibleName("Search species")
        self.filter.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setAccessibleName("Species ranked by probability")
        for rank, score in enumerate(ranked, start=1):
            prior = getattr(score, "prior", None)
            item = QListWidgetItem(f"{rank}. {score.name} — {percent(score.probability)}" + (f" · {prior}" if prior else ""))
            self.list.addItem(item)
        # Any part of any of a species' names, as the label fields and the Library tab's search match.
        self.search = SpeciesSearch(names_beside([score.name for score in ranked]))
        self.filter.textChanged.connect(self.apply_filter)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.filter)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(420, 560)

    def apply_filter(self, text: str) -> None:
        fitting = {hit.name for hit in self.search.matching(text)}
        for row, name in enumerate(species.name for species in self.search.species):
            self.list.item(row).setHidden(bool(search_key(text)) and name not in fitting)

    def visible_rows(self) -> list[str]:
        return [self.list.item(r).text() for r in range(self.list.count()) if not self.list.item(r).isHidden()]
