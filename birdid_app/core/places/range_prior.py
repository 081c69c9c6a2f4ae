"""Ranking species by the picture and by what lives where and when the photo was taken.

The rule, in one place (README "Where and when" quotes it):

    weight(s)    = FLOOR + (1 - FLOOR) * min(1, expected(s) / FULL_FROM)      (1 when s has no prior)
    combined(s)  = picture(s) * weight(s) / sum over all species of picture * weight

`expected(s)` is the range model's occurrence value for species s at the place and week (0..1).
A species expected at FULL_FROM or more keeps its whole picture probability; below that its
weight falls linearly to FLOOR, never to zero. So:

- nothing is hidden: a bird far out of range keeps a twentieth of its weight, and a picture
  twenty times surer than for anything expected still puts it first (and flags it unusual);
- where the picture cannot tell two look-alikes apart (Willow and Marsh Tit, Common and Arctic
  Tern), the one expected here comes first;
- among species that are all well expected, the picture alone decides: the range model says
  where a bird lives, not how likely it is to be in this photo, so a value of 0.9 is no reason
  to prefer it to one of 0.4;
- a species whose name matched no range-model label gets weight 1, as if expected: no prior,
  never pushed down for a naming gap.

`unusual_here` is expected(s) < UNUSUAL_BELOW, BirdNET's own default threshold for its range
filter (0.03): the birds BirdNET would leave off its species list are flagged here, not dropped.
"""

from __future__ import annotations

import calendar
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from birdid_app.core.model.species_names import SpeciesMatch, match_species
from birdid_app.core.places.geomodel import Geomodel

FLOOR = 0.05
FULL_FROM = 0.25
UNUSUAL_BELOW = 0.03
_CACHED_PLACES = 256  # (place, week) answers kept: a folder of photos is mostly one place


def prior_weights(expected: np.ndarray) -> np.ndarray:
    """expected [C] (0..1, NaN for no prior) -> weights [C] float32 in FLOOR..1."""
    with np.errstate(invalid="ignore"):
        weights = FLOOR + (1.0 - FLOOR) * np.minimum(expected / FULL_FROM, 1.0)
    return np.where(np.isnan(expected), 1.0, weights).astype(np.float32)


def combine(picture: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """picture [C] probabilities, expected [C] -> the combined probabilities [C] (sum 1)."""
    weighted = picture.astype(np.float64) * prior_weights(expected)
    total = weighted.sum()
    return (weighted / total if total > 0 else picture).astype(np.float32)


def month_of_week(week: int) -> str:
    """'May' for weeks 17-20 of BirdNET's 48-week year (four weeks a month)."""
    return calendar.month_name[(week - 1) // 4 + 1]


def week_words(week: int) -> str:
    """'in May' for weeks 17-20 of BirdNET's 48-week year; 'all year' for week 0."""
    return "all year" if week == 0 else f"in {month_of_week(week)}"


@dataclass(frozen=True)
class PlacedSpecies:
    name: str
    probability: float  # combined: picture and prior
    picture_probability: float
    expected_here: float | None  # the range model's value here and this week; None without a prior
    unusual_here: bool

    def prior_line(self, week: int) -> str:
        """'expected here in May: 0.93' / 'unusual here in May (0.01)' / 'no range data for this species'."""
        if self.expected_here is None:
            return "no range data for this species"
        if self.unusual_here:
            return f"unusual here {week_words(week)} ({self.expected_here:.2f})"
        return f"expected here {week_words(week)}: {self.expected_here:.2f}"

    def as_json(self) -> dict:
        return {
            "name": self.name, "probability": self.probability, "picture_probability": self.picture_probability,
            "expected_here": self.expected_here, "unusual_here": self.unusual_here,
        }


@dataclass(frozen=True)
class PlaceAnswer:
    """One photo's answer with the place taken into account."""

    where: object  # core.place.Where: latitude, longitude, week, source
    class_names: Sequence[str]
    picture: np.ndarray  # [C] the model's own probabilities
    expected: np.ndarray  # [C] the range model's values, NaN where a species has no prior
    probabilities: np.ndarray  # [C] combined

    def ranked(self, top_k: int | None = None) -> list[PlacedSpecies]:
        """Species by descending combined probability."""
        order = np.argsort(-self.probabilities, kind="stable")[:top_k]
        return [self.species(int(i)) for i in order]

    def ranked_by_picture(self, top_k: int | None = None) -> list[PlacedSpecies]:
        """Species by the picture alone, each with what the range model says of it."""
        order = np.argsort(-self.picture, kind="stable")[:top_k]
        return [self.species(int(i)) for i in order]

    def species(self, index: int) -> PlacedSpecies:
        expected = float(self.expected[index])
        known = not np.isnan(expected)
        return PlacedSpecies(
            name=self.class_names[index], probability=float(self.probabilities[index]),
            picture_probability=float(self.picture[index]), expected_here=expected if known else None,
            unusual_here=known and expected < UNUSUAL_BELOW,
        )


class RangePrior:
    """A range model matched to one image model's species: what each of its classes is expected
    to be at a place and week, and the combined answer. Thread-safe."""

    def __init__(self, geomodel: Geomodel, class_names: Sequence[str]) -> None:
        self.geomodel = geomodel
        self.class_names = tuple(class_names)
        self.match: SpeciesMatch = match_species(self.class_names, geomodel.labels)
        self._columns = self.match.label_columns()  # [C] label index per class, -1 unmatched
        self._matched = self._columns >= 0
        self._cache: OrderedDict[tuple[float, float, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def expected(self, latitude: float, longitude: float, week: int) -> np.ndarray:
        """[C] float32: the range model's value for each class at the place and week, NaN where
        the class matched no label. Places are taken to 0.01 degrees (about a kilometre, finer
        than the range model resolves) so a folder's photos share one run."""
        key = (round(float(latitude), 2), round(float(longitude), 2), int(week))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        values = self.geomodel.occurrence(*key)  # [n_labels]
        expected = np.full(len(self.class_names), np.nan, dtype=np.float32)
        expected[self._matched] = values[self._columns[self._matched]]
        expected.setflags(write=False)
        with self._lock:
            self._cache[key] = expected
            while len(self._cache) > _CACHED_PLACES:
                self._cache.popitem(last=False)
        return expected

    def answer(self, picture: np.ndarray, where) -> PlaceAnswer:
        """The answer for picture [C] probabilities at `where` (latitude, longitude, week)."""
        expected = self.expected(where.latitude, where.longitude, where.week)
        return PlaceAnswer(where, self.class_names, picture, expected, combine(picture, expected))
