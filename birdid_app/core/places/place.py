"""Where and when a photo was taken, as the range prior needs it: a latitude, a longitude and a
week of BirdNET's 48-week year, with the place's source and sentences saying what was used.

`resolve_where` picks the place (an option, a place a person set, the photo's GPS, the settings)
and the date (an option, the photo's capture date, else the whole year). `parse_coordinates`,
`parse_date` and `place_from_text` read what a person types.

Place names come from the offline GeoNames list that core/places/place_names.py reads and searches
(`place_name` names a position with it, `find_places` finds towns by name).

No Qt and no torch here.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re
from dataclasses import dataclass

# EARTH_RADIUS_KM and NamedPlace are imported from here too.
from birdid_app.core.places.place_names import EARTH_RADIUS_KM, NamedPlace, PlaceError, _cities, _joined, find_places  # noqa: F401

# Shown wherever place names are (About, the range model's dialog): the list's licence asks for it.
PLACE_NAMES_ATTRIBUTION = "Place names: GeoNames, CC BY 4.0."

WHOLE_YEAR = 0
"""The week that stands for the whole year (the Geomodel answers with the most likely week)."""

SOURCES = ("option", "photo", "settings", "folder", "person")
ASSIGNED_SOURCES = ("folder", "person")
DATE_SOURCES = ("option", "photo", "none")

# A capture date outside these years is a camera's unset clock or a damaged field.
_FIRST_YEAR = 1900
_LAST_YEAR = 2200

IN_TOWN_KM = 5.0  # farther than this, a place is "near" its town


def birdnet_week(day: datetime.date) -> int:
    """The week of BirdNET's year, 1..48, that `day` falls in.

    BirdNET's year has 48 weeks, 4 to a month whatever the month's length: days 1-7 of a month
    are its first week, 8-14 the second, 15-21 the third, and 22 to the month's end (7 to 10 days)
    the fourth. So week = (month - 1) * 4 + min(4, (day - 1) // 7 + 1): January 1 is week 1,
    January 8 week 2, January 31 week 4, February 1 week 5, December 31 week 48.
    """
    return (day.month - 1) * 4 + min(4, (day.day - 1) // 7 + 1)


@dataclass(frozen=True)
class Where:
    """The place and week the range prior is asked about, and where each came from."""

    latitude: float
    longitude: float
    week: int  # 1..48, or WHOLE_YEAR when the date is unknown
    source: str  # one of SOURCES: where the place came from
    date: datetime.date | None  # the day the week is of; None for the whole year
    date_source: str  # one of DATE_SOURCES

    def as_json(self) -> dict:
        """{"latitude", "longitude", "week", "source", "date" (ISO or None), "date_source"}."""
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "week": self.week,
            "source": self.source,
            "date": None if self.date is None else self.date.isoformat(),
            "date_source": self.date_source,
        }


# --- Positions -----------------------------------------------------------------------------------


def checked_position(latitude, longitude) -> tuple[float, float] | str:
    """(latitude, longitude) as floats, or one sentence saying why they are not a known position:
    missing, not numbers, not finite, out of range, or exactly 0,0 (what cameras without a GPS fix
    write)."""
    if latitude is None and longitude is None:
        return "There is no position."
    values = []
    for axis, value, limit in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if value is None:
            return f"The {axis} is missing."
        number = _number(value)
        if number is None:
            return f"The {axis} {_shown(value)} is not a number."
        if not math.isfinite(number):
            return f"The {axis} is not a finite number ({number})."
        if not -limit <= number <= limit:
            return f"The {axis} {number:g} is outside -{limit} to {limit}."
        values.append(number)
    if values[0] == 0 and values[1] == 0:
        return "0,0 is where cameras without a GPS fix write their position, so it is taken as unknown."
    return values[0], values[1]


def _number(value) -> float | None:
    # A bool is an int to Python, and a numeric string is still text: neither is a coordinate.
    if isinstance(value, (str, bytes, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _shown(value) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return f"'{text[:40]}'"


# One coordinate: an optional sign, degrees (with a degree mark or not), then optionally minutes
# and seconds with their marks, and a hemisphere letter before it ("N 52.37") or after it
# ("52.37 N"): which, is decided for the whole text, as "N 52.37 E 4.89" and "52.37 N 4.89 E" have
# the same shape. ASCII digits only.
_COORDINATE = r"""
    {before}
    (?P<{p}sign>[-+\u2212])?\s*
    (?P<{p}deg>[0-9]+(?:\.[0-9]+)?)\s*[°º]?\s*
    (?:(?P<{p}min>[0-9]+(?:\.[0-9]+)?)\s*['′’]\s*
       (?:(?P<{p}sec>[0-9]+(?:\.[0-9]+)?)\s*(?:["″”]|'')\s*)?
    )?
    {after}
"""
# Two coordinates, parted by a comma or semicolon, by spaces, or by nothing after a hemisphere
# letter ("52.37N4.89E"): never by nothing between digits, which would split "52.37" in two.
_COORDINATE_SEPARATOR = r"(?:\s*[,;]\s*|\s+|(?<=[NSEWnsew]))"


def _position_pattern(letters_before: bool) -> re.Pattern:
    def coordinate(p: str) -> str:
        letter = rf"(?P<{p}letter>[NSEW])?"
        return _COORDINATE.format(
            p=p, before=letter + r"\s*" if letters_before else "", after="" if letters_before else letter
        )

    return re.compile(
        r"^\s*" + coordinate("a") + _COORDINATE_SEPARATOR + coordinate("b") + r"\s*$", re.VERBOSE | re.IGNORECASE
    )


_POSITIONS = (_position_pattern(letters_before=False), _position_pattern(letters_before=True))
_EXAMPLE = "52.37, 4.89"


def parse_coordinates(text: str) -> tuple[float, float]:
    """(latitude, longitude) from what a person typed: "52.37, 4.89", "-33.9,18.4", "52.37 4.89",
    "52.37 N, 4.89 E", "52.37N 4.89E", "N 52.37 E 4.89", "52°22'N 4°53'E", "52°22'30"N 4°53'10"E".

    With hemisphere letters, N/S marks the latitude and E/W the longitude, in either order (S and W
    are negative); without them the latitude comes first. Raises PlaceError with one sentence
    naming the text and what is wrong with it.
    """
    shown = f"'{' '.join(str(text).split())[:80]}'"
    match = None
    if isinstance(text, str):
        match = _POSITIONS[0].match(text) or _POSITIONS[1].match(text)
    if match is None:
        raise PlaceError(f"{shown} is not a position: write latitude, longitude, such as {_EXAMPLE}.")
    parts = []
    for p in "ab":
        value, hemisphere, problem = _coordinate(match, p)
        if problem:
            raise PlaceError(f"{shown} is not a position: {problem}.")
        parts.append((value, hemisphere))
    (first, first_letter), (second, second_letter) = parts
    if first_letter:
        first_is_latitude = first_letter in ("N", "S")
    else:  # the other number's letter decides, else the order
        first_is_latitude = second_letter in ("E", "W", "")
    second_is_latitude = second_letter in ("N", "S") if second_letter else not first_is_latitude
    if first_is_latitude == second_is_latitude:
        axis = "latitude" if first_is_latitude else "longitude"
        raise PlaceError(f"{shown} is not a position: both numbers are marked as a {axis}.")
    latitude, longitude = (first, second) if first_is_latitude else (second, first)
    position = checked_position(latitude, longitude)
    if isinstance(position, str):
        raise PlaceError(f"{shown} is not a position: {position[:1].lower()}{position[1:]}")
    return position


def _coordinate(match: re.Match, p: str) -> tuple[float, str, str | None]:
    """(signed degrees, hemisphere letter or "", a problem or None) of coordinate `p`."""
    letter, sign = (match[p + "letter"] or "").upper(), match[p + "sign"]
    if letter and sign:
        return 0.0, "", "a number has both a sign and a hemisphere letter"
    degrees, minutes, seconds = match[p + "deg"], match[p + "min"], match[p + "sec"]
    value = float(degrees)
    if minutes is not None:
        if "." in degrees:
            return 0.0, "", f"degrees {degrees} with a fraction cannot also have minutes"
        if "." in minutes and seconds is not None:
            return 0.0, "", f"minutes {minutes} with a fraction cannot also have seconds"
        if float(minutes) >= 60 or (seconds is not None and float(seconds) >= 60):
            return 0.0, "", "minutes and seconds must be under 60"
        value += float(minutes) / 60 + float(seconds or 0) / 3600
    negative = sign in ("-", "\u2212") or letter in ("S", "W")
    return (-value if negative else value), letter, None


# --- Dates ---------------------------------------------------------------------------------------

_ISO_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def parse_date(text: str) -> datetime.date:
    """The day in a YYYY-MM-DD text; PlaceError with one sentence for anything else, or for a day
    that does not exist (2023-02-29)."""
    shown = f"'{' '.join(str(text).split())[:40]}'"
    match = _ISO_DAY.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise PlaceError(f"{shown} is not a date: write it as YYYY-MM-DD, such as 2024-05-17.")
    year, month, day = (int(part) for part in match.groups())
    if year < 1:
        problem = "there is no year 0"
    elif not 1 <= month <= 12:
        problem = f"there is no month {month}"
    elif not 1 <= day <= calendar.monthrange(year, month)[1]:
        days = calendar.monthrange(year, month)[1]
        problem = f"{calendar.month_name[month]} {year} has {days} days"
    else:
        return datetime.date(year, month, day)
    raise PlaceError(f"{shown} is not a real date: {problem}.")


def capture_date(taken_at: str | None) -> datetime.date | None:
    """The day of photo_metadata's "YYYY-MM-DDTHH:MM:SS", or None when there is none or it is
    not a real day: "0000-00-00" (a camera whose clock was never set), a year before 1900 or after
    2200, February 30."""
    if not isinstance(taken_at, str):
        return None
    match = _ISO_DAY.match(taken_at.strip())
    if match is None:
        return None
    year, month, day = (int(part) for part in match.groups())
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        return None
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


# --- Where and when ------------------------------------------------------------------------------

# How the notes name a place that took precedence over the photo's GPS, by its source.
_INSTEAD = {
    "option": "the place given as an option is used instead",
    "folder": "the place set for its folder is used instead",
    "person": "the place set for it is used instead",
}


def resolve_where(
    *,
    option_place: tuple[float, float] | None,
    option_date: datetime.date | None,
    photo_taken_at: str | None,
    photo_latitude,
    photo_longitude,
    assigned_place: tuple[float, float] | None = None,
    assigned_source: str = "person",
    settings_place: tuple[float, float] | None,
) -> tuple[Where | None, list[str]]:
    """Where and when a photo was taken, for the range prior, and the notes a person reads about it.

    The place, first found of: `option_place` ("option"), `assigned_place` (a place a person set
    for a folder or a photo; source `assigned_source`, "folder" or "person"), the photo's GPS
    position ("photo") unless checked_position rejects it, `settings_place` ("settings").
    The date: `option_date` ("option"), else the photo's capture date ("photo"), else the whole
    year (week WHOLE_YEAR, date None, date_source "none").

    Returns (None, notes) when no place is known. The notes are one-line sentences: why the
    photo's GPS position was not used, when the whole year is used and why, and any given place
    that could not be used.
    """
    if assigned_source not in ASSIGNED_SOURCES:
        raise ValueError(f"assigned_source must be one of {ASSIGNED_SOURCES}, not {assigned_source!r}")
    notes: list[str] = []
    photo = checked_position(photo_latitude, photo_longitude)
    photo_has_none = photo_latitude is None and photo_longitude is None

    place, source = None, ""
    for given, given_source in ((option_place, "option"), (assigned_place, assigned_source)):
        if given is None:
            continue
        checked = checked_position(*given)
        if isinstance(checked, str):
            notes.append(f"The {_given_name(given_source)} is not used: {_lowered(checked)}")
            continue
        place, source = checked, given_source
        if not isinstance(photo, str):
            notes.append(f"The photo's GPS position is not used: {_INSTEAD[given_source]}.")
        break
    if place is None:
        if not isinstance(photo, str):
            place, source = photo, "photo"
        else:
            settings = None if settings_place is None else checked_position(*settings_place)
            if isinstance(settings, tuple):
                place, source = settings, "settings"
            if not photo_has_none:
                notes.append(f"The photo's GPS position is not used: {_lowered(photo)}")
            if isinstance(settings, str):
                notes.append(f"The place in the settings is not used: {_lowered(settings)}")
            if place is not None:
                notes.append(
                    "The photo has no GPS position: the place in the settings is used."
                    if photo_has_none
                    else "The place in the settings is used instead."
                )
            elif settings is None:
                notes.append(
                    "No place is known: the photo has no GPS position and none is set."
                    if photo_has_none
                    else "No place is known: none is set."
                )
            else:
                notes.append("No place is known.")
    if place is None:
        return None, notes

    taken = capture_date(photo_taken_at)
    if option_date is not None:
        day, date_source = option_date, "option"
        if taken is not None and taken != option_date:
            notes.append(f"The date given, {option_date.isoformat()}, is used instead of the capture date {taken.isoformat()}.")
    elif taken is not None:
        day, date_source = taken, "photo"
    else:
        day, date_source = None, "none"
        if photo_taken_at is None:
            notes.append("No capture date: the whole year is used.")
        else:
            notes.append(f"The capture date '{photo_taken_at}' is not a real date: the whole year is used.")
    week = WHOLE_YEAR if day is None else birdnet_week(day)
    return Where(place[0], place[1], week, source, day, date_source), notes


def _given_name(source: str) -> str:
    return {"option": "place given as an option", "folder": "place set for the folder"}.get(source, "place set for it")


def _lowered(reason: str) -> str:
    """A reason sentence made the end of another: "The latitude 91 is ..." -> "the latitude 91 is ..."."""
    return reason[:1].lower() + reason[1:]


def place_name(latitude: float, longitude: float) -> str | None:
    """A name for a position: "Amsterdam, North Holland, Netherlands" within IN_TOWN_KM of a town's
    centre, "near Den Burg, Netherlands" farther, None when no town of 1,000 people is within
    NAMED_WITHIN_KM (at sea) or the position is not a known one. Raises PlaceError only when the
    list of places itself cannot be read."""
    position = checked_position(latitude, longitude)
    if isinstance(position, str):
        return None
    cities = _cities()
    found = cities.nearest(*position)
    if found is None:
        return None
    index, km = found
    if km > IN_TOWN_KM:
        return f"near {_joined(cities.names[index], cities.country(index))}"
    return _joined(cities.names[index], cities.states[index], cities.country(index))


def place_from_text(text: str) -> tuple[float, float, str]:
    """(latitude, longitude, a label to show) for what a person typed in the window or after
    --at: coordinates (see parse_coordinates; labelled with the nearest town when there is one),
    else the best match of find_places. Raises PlaceError with one sentence when it is neither."""
    text = " ".join(str(text).split())
    if not text:
        raise PlaceError(f"No place was given: type coordinates such as {_EXAMPLE}, or a town's name.")
    if _looks_like_coordinates(text):
        latitude, longitude = parse_coordinates(text)
        shown = f"{_degrees(latitude)}, {_degrees(longitude)}"
        name = place_name(latitude, longitude)
        return latitude, longitude, shown if name is None else f"{shown} ({name})"
    places = find_places(text, limit=1)
    if not places:
        raise PlaceError(f"No place called '{text[:80]}' is known offline: type coordinates such as {_EXAMPLE}.")
    best = places[0]
    return best.latitude, best.longitude, best.label()


def _looks_like_coordinates(text: str) -> bool:
    """Digits, and no letters but hemisphere letters: "52.37N 4.89E" is a position, "Route 66" a name."""
    return any(character.isdigit() for character in text) and not re.search(r"[^\W\d_NSEWnsew]", text)


def _degrees(value: float) -> str:
    """Up to 5 decimals (about a metre), without trailing zeros: 52.37, 4.89, -33.9."""
    return f"{value:.5f}".rstrip("0").rstrip(".")

