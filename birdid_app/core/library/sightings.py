"""Sightings: the person's confirmed photos, with their date and place, as a life list, a year list,
a list per place, and a file for eBird's "Import data" in the eBird Record Format (Extended).

A sighting is a photo the person labelled with a species (not NOT_A_BIRD or UNKNOWN_SPECIES) that
has a capture date. Its place is the photo's GPS position when place.checked_position accepts it;
otherwise the place is unknown and it is still a sighting: it counts on the lists, but cannot go to
eBird, which needs a location. A confirmed photo with no capture date is not a sighting: the lists
count such photos and say so in their notes.

Dates and times are the camera's own clock (EXIF DateTimeOriginal is local time, and most cameras
write no offset), which is what eBird asks for: a checklist's local date and start time.

No Qt and no torch here: the library is read in one query, place names come from place.py's
offline list, eBird's names from species_names.py.
"""

from __future__ import annotations

import csv
import datetime
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from birdid_app.core.atomic import atomic_write
from birdid_app.core.csv_cells import text_cell
from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES, Library
from birdid_app.core.model.species_names import GeoLabel, match_species, published_labels
from birdid_app.core.places.place import EARTH_RADIUS_KM, capture_date, checked_position, place_name

# Photos of one day within this distance of the first photo of a checklist (the earliest that day
# at that place) are one checklist: eBird's incidental checklist is one date at one location, and a
# kilometre keeps a walk round one lake together while the next village gets its own.
CHECKLIST_RADIUS_KM = 1.0
# Photos named in a row's Species Comments; more are counted, not named.
NAMED_PHOTOS = 5
SUBMISSION_COMMENT = "Exported from birdid"
EBIRD_COLUMNS = (
    "Common Name", "Genus", "Species", "Number", "Species Comments", "Location Name", "Latitude", "Longitude",
    "Date", "Start Time", "State/Province", "Country Code", "Protocol", "Number of Observers", "Duration",
    "All observations reported?", "Effort Distance Miles", "Effort area acres", "Submission Comments",
)
_NOT_SPECIES = frozenset({NOT_A_BIRD, UNKNOWN_SPECIES})
_KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180  # of latitude, anywhere


@dataclass(frozen=True)
class Sighting:
    photo_id: int
    path: Path
    species: str  # the label: one of the model's species names
    day: datetime.date
    time: datetime.time | None  # None when the capture date has no time of day that can be read
    position: tuple[float, float] | None  # None: the place is unknown (no GPS, 0,0, out of range)
    place: str | None  # place.place_name of the position; None when unknown or far from any town

    @property
    def seen(self) -> str:
        """ISO 8601: "2024-05-01T07:12:03", or "2024-05-01" when the time of day is unknown."""
        if self.time is None:
            return self.day.isoformat()
        return datetime.datetime.combine(self.day, self.time).isoformat()

    @property
    def where(self) -> str | None:
        """The place name, else the position as "lat, lon" (at sea, say), else None (unknown)."""
        if self.place is not None:
            return self.place
        if self.position is not None:
            return f"{self.position[0]:.4f}, {self.position[1]:.4f}"
        return None

    @property
    def order(self) -> tuple:
        """Sorts by when: a day's photos with no time of day after those with one."""
        return (self.day, self.time is None, self.time or datetime.time(), str(self.path))


@dataclass(frozen=True)
class Sightings:
    """The labelled photos read once: the sightings (in time order) and what was left out of them."""

    sightings: list[Sighting]
    undated: int  # photos labelled with a species but with no capture date


@dataclass(frozen=True)
class LifeListEntry:
    species: str  # the model's name, as labelled
    ebird_name: str | None  # eBird's English name; None when eBird's list has no match
    scientific_name: str | None
    first: Sighting  # the first sighting (within the year, for a year list)
    last: Sighting
    photos: int
    days: int  # different days it was photographed on

    @property
    def first_seen(self) -> str:
        return self.first.seen

    @property
    def last_seen(self) -> str:
        return self.last.seen

    @property
    def first_place(self) -> str | None:
        return self.first.where

    @property
    def first_latitude(self) -> float | None:
        return None if self.first.position is None else self.first.position[0]

    @property
    def first_longitude(self) -> float | None:
        return None if self.first.position is None else self.first.position[1]


@dataclass(frozen=True)
class LifeList:
    entries: list[LifeListEntry]  # by first seen
    year: int | None  # a year list's year; None for the life list
    place: str | None  # the place filter, as given
    photos: int  # sightings (photos) listed
    days: int  # different days among them
    unplaced: int  # of those, photos whose place is unknown
    undated: int  # confirmed photos with no capture date, left out
    notes: list[str] = field(default_factory=list)  # one sentence each, for the person

    @property
    def species(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class PlaceSpecies:
    species: str
    photos: int
    days: int
    first: Sighting


@dataclass(frozen=True)
class PlaceEntry:
    place: str | None  # Sighting.where; None gathers the sightings whose place is unknown
    species: list[PlaceSpecies]  # by first seen there


@dataclass(frozen=True)
class PlacesList:
    places: list[PlaceEntry]  # by name, the unknown place last
    year: int | None
    photos: int
    undated: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EbirdExport:
    """What write_ebird_csv wrote, and what it left out and why."""

    destination: Path
    rows: int  # one per species per checklist
    species: int
    checklists: int
    photos: int  # photos behind the rows
    no_place: int  # sightings left out: no known place (eBird needs a location)
    no_ebird_name: dict[str, int]  # species eBird's list has no match for -> their photos, left out
    no_date: int  # confirmed photos with no capture date, left out
    year: int | None = None

    def sentence(self) -> str:
        """What was written, in one sentence: "birds.csv: 17 sightings of 12 species on 5
        checklists; 2 confirmed photos without a place left out (eBird needs a location)"."""
        parts = [f"{self.destination}: {_count(self.rows, 'sighting')} of {_count(self.species, 'species')} "
                 f"on {_count(self.checklists, 'checklist')}" + (f" in {self.year}" if self.year else "")]
        if self.no_place:
            parts.append(f"{_count(self.no_place, 'confirmed photo')} without a place left out "
                         "(eBird needs a location)")
        if self.no_ebird_name:
            named = ", ".join(f"{name} ({_count(n, 'photo')})" for name, n in sorted(self.no_ebird_name.items()))
            parts.append(f"{named} left out: eBird's list has no such species")
        if self.no_date:
            parts.append(f"{_count(self.no_date, 'confirmed photo')} without a capture date left out")
        return "; ".join(parts)


def read_sightings(library: Library) -> Sightings:
    """Every sighting in the library, in time order, and the count of confirmed photos with no date."""
    sightings: list[Sighting] = []
    undated = 0
    names: dict[tuple[float, float], str | None] = {}
    assigned_places = library.assigned_places()
    for photo in library.labelled_photos():
        if photo.label is None or photo.label in _NOT_SPECIES:
            continue
        day = capture_date(photo.taken_at)
        if day is None:
            undated += 1
            continue
        # A place the person set for the photo or its folder comes first, as for the range prior.
        assigned = library.assigned_place_for(photo.path, assigned_places)
        position: tuple[float, float] | None
        if assigned is not None:
            position = assigned[:2]
            name = assigned[2] or _cached(names, position, place_name)
        else:
            checked = checked_position(photo.latitude, photo.longitude)
            position = None if isinstance(checked, str) else checked
            name = None if position is None else _cached(names, position, place_name)
        sightings.append(Sighting(photo.id, photo.path, photo.label, day, _time_of_day(photo.taken_at), position, name))
    sightings.sort(key=lambda sighting: sighting.order)
    return Sightings(sightings, undated)


def life_list(library: Library, *, year: int | None = None, place: str | None = None) -> LifeList:
    """One entry per species, by first seen: the life list, or with `year` the year list (only that
    year's sightings, first seen within it). `place` keeps the sightings whose place name contains
    it, in any case."""
    read = read_sightings(library)
    chosen = _in_year(read.sightings, year)
    unplaced_all = sum(1 for s in chosen if s.where is None)
    if place is not None:
        chosen = [s for s in chosen if _at_place(s, place)]
    by_species: dict[str, list[Sighting]] = defaultdict(list)
    for sighting in chosen:
        by_species[sighting.species].append(sighting)
    match = match_species(sorted(by_species), published_labels())
    entries = []
    for species, seen in by_species.items():
        ebird = match.ebird(species)
        entries.append(LifeListEntry(
            species, None if ebird is None else ebird.common, None if ebird is None else ebird.scientific,
            seen[0], seen[-1], len(seen), len({s.day for s in seen}),
        ))
    entries.sort(key=lambda entry: (entry.first.order, entry.species))

    notes = []
    if read.undated:
        notes.append(f"{_count(read.undated, 'confirmed photo')} {_have(read.undated)} no capture date and "
                     f"{_are(read.undated)} not in the list.")
    unplaced = sum(1 for s in chosen if s.where is None)
    if place is not None and unplaced_all:
        notes.append(f"{_count(unplaced_all, 'sighting')} with no known place could not be matched to "
                     f"'{place}' and {_are(unplaced_all)} not in the list.")
    elif unplaced:
        notes.append(f"{_count(unplaced, 'sighting')} {_have(unplaced)} no known place (no GPS position, or "
                     "one that cannot be right, such as 0,0).")
    unmatched = [entry.species for entry in entries if entry.ebird_name is None]
    if unmatched:
        notes.append(f"eBird's list has no name for {', '.join(unmatched)}.")
    return LifeList(entries, year, place, len(chosen), len({s.day for s in chosen}), unplaced, read.undated, notes)


def places_list(library: Library, *, year: int | None = None) -> PlacesList:
    """Per place (its name, or its position where no town is near), the species seen there with
    their photos and days; the sightings with no known place gathered last."""
    read = read_sightings(library)
    chosen = _in_year(read.sightings, year)
    by_place: dict[str | None, dict[str, list[Sighting]]] = defaultdict(lambda: defaultdict(list))
    for sighting in chosen:
        by_place[sighting.where][sighting.species].append(sighting)
    places = [
        PlaceEntry(where, sorted(
            (PlaceSpecies(species, len(seen), len({s.day for s in seen}), seen[0]) for species, seen in kinds.items()),
            key=lambda kind: (kind.first.order, kind.species),
        ))
        for where, kinds in by_place.items()
    ]
    places.sort(key=lambda entry: (entry.place is None, (entry.place or "").casefold()))
    notes = []
    if read.undated:
        notes.append(f"{_count(read.undated, 'confirmed photo')} {_have(read.undated)} no capture date and "
                     f"{_are(read.undated)} not in the list.")
    return PlacesList(places, year, len(chosen), read.undated, notes)


def write_ebird_csv(library: Library, destination: Path, *, year: int | None = None) -> EbirdExport:
    """Write the sightings (of `year`, when given) as eBird Record Format (Extended): no header,
    the 19 columns of EBIRD_COLUMNS, one row per species per checklist, a checklist being one date
    at one place (see CHECKLIST_RADIUS_KM), protocol "incidental", number "X" (a photo does not
    count the birds). Sightings with no known place and species eBird's list has no name for are
    left out and counted. Written whole or not at all (atomic_write), UTF-8."""
    destination = Path(destination)
    read = read_sightings(library)
    chosen = _in_year(read.sightings, year)
    match = match_species(sorted({s.species for s in chosen}), published_labels())
    no_ebird_name: dict[str, int] = defaultdict(int)
    placed, no_place = [], 0
    ebird_of: dict[str, GeoLabel] = {}  # eBird's name of each species placed
    for sighting in chosen:
        ebird = match.ebird(sighting.species)
        if ebird is None:
            no_ebird_name[sighting.species] += 1
        elif sighting.position is None:
            no_place += 1
        else:
            placed.append(sighting)
            ebird_of[sighting.species] = ebird

    checklists = _checklists(placed)
    countries: dict[tuple[float, float], str | None] = {}
    rows = []
    for checklist in checklists:
        start = checklist[0]  # the earliest photo: the checklist's place and start time
        assert start.position is not None  # placed: each has a position
        latitude, longitude = start.position
        country = _cached(countries, start.position, country_code) or ""
        by_species: dict[str, list[Sighting]] = {}
        for sighting in checklist:
            by_species.setdefault(sighting.species, []).append(sighting)
        for species, seen in by_species.items():
            ebird = ebird_of[species]
            genus, _, rest = ebird.scientific.partition(" ")
            # Text cells as text_cell makes them safe in a spreadsheet; the numbers are birdid's own.
            rows.append([
                text_cell(ebird.common), text_cell(genus), text_cell(rest.split(" ")[0]), "X",
                text_cell(_species_comment(seen)), text_cell(start.where),
                f"{latitude:.6f}", f"{longitude:.6f}", start.day.strftime("%m/%d/%Y"),
                "" if start.time is None else start.time.strftime("%H:%M"), "", text_cell(country),
                "incidental", "1", "", "N", "", "", SUBMISSION_COMMENT,
            ])
    with atomic_write(destination, "w", encoding="utf-8", newline="") as handle:  # csv writes its own line ends
        csv.writer(handle).writerows(rows)
    return EbirdExport(
        destination, len(rows), len({row[0] for row in rows}), len(checklists), len(placed), no_place,
        dict(no_ebird_name), read.undated, year,
    )


def country_code(latitude: float, longitude: float) -> str | None:
    """The two-letter ISO code of the country of the town place_name names the position after
    (the nearest within place.NAMED_WITHIN_KM); None where it names none (at sea). Near a border
    that town can be across it: eBird's import shows each location on a map to confirm."""
    from birdid_app.core.places import place_names

    # place_names.py has no public look-up of the code; its list is loaded once and shared, not read again.
    cities = place_names._cities()
    found = cities.nearest(latitude, longitude)
    return None if found is None else cities.country_codes[found[0]]


def _checklists(placed: Iterable[Sighting]) -> list[list[Sighting]]:
    """Sightings with a place (in time order) as checklists: each photo joins the nearest checklist
    of its day whose first photo is within CHECKLIST_RADIUS_KM, else starts one. Measured from the
    first photo, not chained photo to photo, so a day's walk does not become one 20 km "place"."""
    by_day: dict[datetime.date, list[list[Sighting]]] = defaultdict(list)
    for sighting in placed:
        checklists = by_day[sighting.day]
        nearest, nearest_km = None, math.inf
        here = sighting.position
        assert here is not None  # placed: each has a position
        for checklist in checklists:
            first = checklist[0].position
            assert first is not None
            # The ground distance is at least the latitudes' difference: most of a day's checklists
            # are ruled out without trigonometry.
            if abs(first[0] - here[0]) * _KM_PER_DEGREE > CHECKLIST_RADIUS_KM:
                continue
            km = _km(first, here)
            if km <= CHECKLIST_RADIUS_KM and km < nearest_km:
                nearest, nearest_km = checklist, km
        if nearest is None:
            checklists.append([sighting])
        else:
            nearest.append(sighting)
    return sorted((checklist for day in by_day.values() for checklist in day), key=lambda c: c[0].order)


def _cached(cache: dict, position: tuple[float, float], look_up):
    """look_up(latitude, longitude) of the position rounded to 4 decimals (about 11 m, far finer than
    a town): the photos of one spot, GPS jitter and all, share one look-up in the list of places."""
    key = (round(position[0], 4), round(position[1], 4))
    if key not in cache:
        cache[key] = look_up(*key)
    return cache[key]


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = (math.radians(v) for v in (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _species_comment(seen: list[Sighting]) -> str:
    names = ", ".join(s.path.name for s in seen[:NAMED_PHOTOS])
    more = f" and {len(seen) - NAMED_PHOTOS} more" if len(seen) > NAMED_PHOTOS else ""
    return f"Photographed: {_count(len(seen), 'photo')} ({names}{more}), identified with birdid"


def _time_of_day(taken_at: str | None) -> datetime.time | None:
    """The "HH:MM:SS" of photo_metadata's "YYYY-MM-DDTHH:MM:SS"; None when it is not a real time."""
    text = (taken_at or "").strip()
    if len(text) < 19 or text[10] not in "T ":
        return None
    try:
        return datetime.time.fromisoformat(text[11:19])
    except ValueError:
        return None


def _in_year(sightings: list[Sighting], year: int | None) -> list[Sighting]:
    return sightings if year is None else [s for s in sightings if s.day.year == year]


def _at_place(sighting: Sighting, text: str) -> bool:
    return sighting.place is not None and text.casefold() in sighting.place.casefold()


def _count(number: int, noun: str) -> str:
    """ "1 photo", "2 photos"; "species" is its own plural."""
    return f"{number} {noun}" if number == 1 or noun.endswith("species") else f"{number} {noun}s"


def _have(number: int) -> str:
    return "has" if number == 1 else "have"


def _are(number: int) -> str:
    return "is" if number == 1 else "are"
