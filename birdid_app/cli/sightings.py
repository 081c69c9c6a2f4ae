"""Your sightings from the command line: `birdid lifelist` (the life list, a year list, the list per
place) and the eBird file of `birdid export --ebird` (export's parser is in library.py)."""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Any

from birdid_app.cli.common import EXIT_OK, json_option, model_option, open_library, print_json


def add_commands(commands) -> None:
    library_file = argparse.ArgumentParser(add_help=False)
    library_file.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    lifelist = commands.add_parser(
        "lifelist", parents=[library_file, model_option(), json_option()],
        help="the species of the photos you labelled: when and where you first photographed each",
    )
    lifelist.add_argument("--year", type=year_number, metavar="YYYY", help="the year list: only that year's photos")
    lifelist.add_argument("--place", metavar="TEXT", help="only photos whose place name contains TEXT (any case)")
    lifelist.add_argument("--by-place", action="store_true", help="per place, the species photographed there")
    lifelist.add_argument("--csv", type=Path, metavar="FILE", help="write the list to FILE as CSV, with a header")
    lifelist.set_defaults(run=show_life_list)


def add_ebird_options(export: argparse.ArgumentParser) -> None:
    """--ebird and --year on `birdid export`."""
    export.add_argument(
        "--ebird", type=Path, metavar="FILE.csv",
        help="your labelled photos with a date and place as eBird Record Format (Extended), for eBird's "
        "Import data: one row per species per checklist (a date at one place)",
    )
    export.add_argument("--year", type=year_number, metavar="YYYY", help="with --ebird: only that year's sightings")


def year_number(text: str) -> int:
    if not re.fullmatch(r"[0-9]{4}", text.strip()):
        raise argparse.ArgumentTypeError(f"expected a year as YYYY, not {text!r}")
    return int(text)


def export_ebird(args: argparse.Namespace) -> int:
    from birdid_app.core.library.sightings import write_ebird_csv

    with open_library(args) as library:
        written = write_ebird_csv(library, args.ebird, year=args.year)
    print(written.sentence())
    return EXIT_OK


def show_life_list(args: argparse.Namespace) -> int:
    from birdid_app.core.library.sightings import LifeList, PlacesList, life_list, places_list

    listed: LifeList | PlacesList
    with open_library(args) as library:
        if args.by_place:
            listed = places_list(library, year=args.year)
        else:
            listed = life_list(library, year=args.year, place=args.place)
    records: list[dict[str, Any]]
    columns: tuple[str, ...]
    if isinstance(listed, PlacesList):
        places = [entry for entry in listed.places
                  if args.place is None or args.place.casefold() in (entry.place or "").casefold()]
        records = [{"place": entry.place, "species": [_place_species_record(kind) for kind in entry.species]}
                   for entry in places]
        rows = [{"place": record["place"], **kind} for record in records for kind in record["species"]]
        columns, written = PLACE_COLUMNS, f"{_plural(len(places), 'place')}, {_plural(len(rows), 'row')}"
    else:
        records = rows = [_entry_record(entry) for entry in listed.entries]
        columns, written = LIFE_LIST_COLUMNS, f"{listed.species} species from {_plural(listed.photos, 'photo')}"
    if args.csv is not None:
        _write_csv(args.csv, rows, columns)
        print(f"{args.csv}: {written}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(records)
    if args.json or args.csv is not None:
        for note in listed.notes:  # stdout is the JSON, or the one line saying what was written
            print(f"birdid: {note}", file=sys.stderr)
        return EXIT_OK
    if args.by_place:
        _print_places(places)
    else:
        _print_life_list(listed)
    for note in listed.notes:
        print(note)
    return EXIT_OK


LIFE_LIST_COLUMNS = ("species", "ebird_name", "scientific_name", "first_seen", "first_place", "first_latitude",
                     "first_longitude", "photos", "days", "last_seen")
PLACE_COLUMNS = ("place", "species", "photos", "days", "first_seen")


def _entry_record(entry) -> dict:
    return {
        "species": entry.species, "ebird_name": entry.ebird_name, "scientific_name": entry.scientific_name,
        "first_seen": entry.first_seen, "first_place": entry.first_place, "first_latitude": entry.first_latitude,
        "first_longitude": entry.first_longitude, "photos": entry.photos, "days": entry.days,
        "last_seen": entry.last_seen,
    }


def _place_species_record(kind) -> dict:
    return {"species": kind.species, "photos": kind.photos, "days": kind.days, "first_seen": kind.first.seen}


def _write_csv(destination: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    from birdid_app.core.atomic import atomic_write
    from birdid_app.core.csv_cells import text_cell

    # Text (species, places) as text_cell makes it safe in a spreadsheet; numbers go as they are.
    with atomic_write(destination, "w", newline="") as handle:  # csv writes its own line ends
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: text_cell(value) if value is None or isinstance(value, str) else value
                          for key, value in row.items()} for row in rows)


UNKNOWN_PLACE = "place unknown"


def _print_life_list(listed) -> None:
    if not listed.entries:
        print("No sightings" + _scope(listed) + ": label photos with a species (`birdid label PHOTO SPECIES`) "
              "to list them.")
        return
    width = max(len("Species"), *(len(entry.species) for entry in listed.entries))
    print(f"{'Species':{width}}  {'First seen':10}  {'Where':40}  Photos")
    for entry in listed.entries:
        print(f"{entry.species:{width}}  {entry.first.day.isoformat():10}  "
              f"{entry.first_place or UNKNOWN_PLACE:40}  {entry.photos:6}")
    print(f"{listed.species} species, {_plural(listed.photos, 'photo')} on {_plural(listed.days, 'day')}"
          + _scope(listed) + ".")


def _scope(listed) -> str:
    year = f" in {listed.year}" if listed.year is not None else ""
    place = f" at places matching '{listed.place}'" if listed.place is not None else ""
    return year + place


def _print_places(places) -> None:
    if not places:
        print("No sightings: label photos with a species (`birdid label PHOTO SPECIES`) to list them.")
        return
    width = max(len(kind.species) for entry in places for kind in entry.species)
    for entry in places:
        print(f"{entry.place or UNKNOWN_PLACE}: {len(entry.species)} species")
        for kind in entry.species:
            print(f"  {kind.species:{width}}  {kind.first.day.isoformat()}  {_plural(kind.photos, 'photo')}")


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
