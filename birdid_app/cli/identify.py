"""`birdid identify` and `birdid selftest`: species for photos, and a check of the installation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    Failure,
    choose_model,
    load_classifier,
    model_option,
    positive_int,
    print_json,
    running_options,
)


def add_identify(commands) -> None:
    identify = commands.add_parser(
        "identify", parents=[model_option(), running_options()], help="rank the likely species in each photo"
    )
    identify.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    identify.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="species per photo (default 5)")
    identify.add_argument("--json", action="store_true", help="print one JSON array, one object per photo")
    identify.add_argument(
        "--zoom", action="store_true",
        help="also identify the part of the photo where the model found its evidence (at full resolution), "
        "and give the answer the model is surer of",
    )
    identify.add_argument(
        "--trust", action="store_true",
        help="say how far to trust each answer: a mirror image and two crops, the labels of your nearest "
        "confirmed library photos, and whether the photo is unlike what the model knows",
    )
    identify.add_argument("--library", type=Path, metavar="PATH",
                          help="the library --trust compares with, and whose places set for folders are used "
                          "(default: yours)")
    identify.add_argument(
        "--at", type=place_argument, metavar="LAT,LON",
        help="where the photos were taken (coordinates, or a town's name), before their own GPS",
    )
    identify.add_argument("--on", type=date_argument, metavar="YYYY-MM-DD",
                          help="the day the photos were taken, before their capture date")
    identify.add_argument("--no-prior", action="store_true",
                          help="rank by the picture alone, without the range model's where and when")
    identify.set_defaults(run=identify_photos)


def add_selftest(commands) -> None:
    selftest = commands.add_parser(
        "selftest", parents=[model_option(), running_options()],
        help="check this installation: load a model and identify the bundled sample picture",
    )
    selftest.add_argument("--window", action="store_true",
                          help="also open the window (offscreen works) and identify the sample in it")
    selftest.set_defaults(run=run_selftest)


def place_argument(text: str) -> tuple[float, float, str]:
    """--at: coordinates (at once), else a town's name (the offline city list loads, ~1 s)."""
    from birdid_app.core.places.place import PlaceError, parse_coordinates, place_from_text

    try:
        return (*parse_coordinates(text), text)
    except PlaceError:
        pass
    try:
        return place_from_text(text)
    except PlaceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def date_argument(text: str):
    from birdid_app.core.places.place import PlaceError, parse_date

    try:
        return parse_date(text)
    except PlaceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def identify_photos(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import PhotoError

    classifier, chosen = load_classifier(args, photos=len(args.photos))
    places = _PlaceContext(args, classifier.class_names)
    if args.zoom or args.trust:
        return _identify_carefully(args, classifier, chosen, places)
    # One batch of photos in memory at a time, and only the top-k kept of each: memory does
    # not grow with the number of photos given.
    results = classifier.iter_identify_files(args.photos)
    records = []
    for path, result in zip(args.photos, results, strict=True):
        if isinstance(result, PhotoError):
            records.append({"path": str(path), "error": str(result)})
        else:
            record = {"path": str(path), "model": chosen.info}
            record |= places.ranked(path, result, args.top_k)
            records.append(record)

    if args.json:
        print_json(records)
    else:
        print(f"model: {chosen.info['name']} ({chosen.info['trust']})")
        _print_table(records, show_where=places.prior is not None)
    print(f"precision: {classifier.precision_reason}", file=sys.stderr)  # which mode ran, and why
    places.report()
    for record in records:
        if "error" in record:
            print(f"birdid: {record['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if any("error" in r for r in records) else EXIT_OK


class _PlaceContext:
    """Where and when for `identify`: the range prior (unless --no-prior, or none is installed),
    the places set for folders in the library, the home place in Settings, --at and --on."""

    def __init__(self, args: argparse.Namespace, class_names) -> None:
        from birdid_app.core.errors import BirdidError
        from birdid_app.core.places.geomodel import GeomodelStore
        from birdid_app.core.places.range_prior import RangePrior
        from birdid_app.core.settings import load_settings

        self.option_place = args.at[:2] if args.at else None
        self.option_date = args.on
        home = load_settings().home_place
        self.home_place = (home[0], home[1]) if home else None  # [latitude, longitude]
        self.assigned = _assigned_places(args.library)
        self.prior: RangePrior | None = None
        self.problem: str | None = None  # why the range prior is not used, said once
        store = GeomodelStore()
        if not args.no_prior and store.installed():
            try:
                self.prior = RangePrior(store.load(), class_names)
            except BirdidError as error:  # a damaged range model: the picture still answers
                self.problem = f"{error} The species are ranked by the picture alone."

    def ranked(self, path: Path, identification, top_k: int) -> dict:
        """The record's "where", "where_notes", "species" and "species_by_picture"."""
        from birdid_app.core.library import photo_where
        from birdid_app.core.photos.photo import photo_metadata

        where, notes = photo_where(
            self.assigned, Path(path).resolve(), *photo_metadata(path), home_place=self.home_place,
            option_place=self.option_place, option_date=self.option_date,
        )
        if where is None and self.prior is not None:
            notes.append("No place is known (no --at, no GPS, no home place in Settings): ranked by the picture alone.")
        record: dict = {"where": where.as_json() if where is not None else None, "where_notes": notes}
        if self.prior is None or where is None:
            picture = [_plain(s) for s in identification.ranked(top_k)]
            return record | {"species": picture, "species_by_picture": picture}
        answer = self.prior.answer(identification.probabilities, where)
        record["species"] = [s.as_json() for s in answer.ranked(top_k)]
        record["species_by_picture"] = [s.as_json() | {"probability": s.picture_probability}
                                        for s in answer.ranked_by_picture(top_k)]
        return record

    def report(self) -> None:
        if self.problem:
            print(f"birdid: {self.problem}", file=sys.stderr)


def _plain(score) -> dict:
    return {"name": score.name, "probability": score.probability, "expected_here": None, "unusual_here": False}


def _week_words(week: int) -> str:
    from birdid_app.core.places.range_prior import week_words

    return week_words(week)


def _assigned_places(library_path: Path | None) -> dict:
    """The places set for folders and photos in the library, if there is one; {} otherwise."""
    from birdid_app.core.library import Library, LibraryError, default_library_path

    path = library_path or default_library_path()
    if not path.exists():
        return {}
    try:
        with Library(path, create=False) as library:
            return library.assigned_places()
    except LibraryError:  # a damaged library: its places are not worth failing an identification for
        return {}


def _identify_carefully(args: argparse.Namespace, classifier, chosen, places: _PlaceContext) -> int:
    """identify --zoom / --trust: one photo at a time, decoded at full resolution for the zoom."""
    import numpy as np

    from birdid_app.core.errors import PhotoError
    from birdid_app.core.insight import trust
    from birdid_app.core.photos.photo import decode_photo

    library = _library_for_trust(args) if args.trust else None
    head = classifier.head_weights() if args.trust else None
    records = []
    try:
        for path in args.photos:
            try:
                image = decode_photo(path, draft_size=None if args.zoom else classifier.image_size)
            except PhotoError as error:
                records.append({"path": str(path), "error": str(error)})
                continue
            record: dict = {"path": str(path), "model": chosen.info}
            if args.zoom:
                (zoomed,) = trust.zoom_identify(classifier, [image], [str(path)])
                answer = zoomed.preferred()
                record["whole_photo"] = _species(zoomed.whole, args.top_k)
                record["zoom"] = {"box": list(zoomed.zoom.box) if zoomed.zoom.box else None,
                                  "reason": zoomed.zoom.reason}
                if zoomed.zoomed is not None:
                    record["zoom"]["species"] = _species(zoomed.zoomed, args.top_k)
                record["answer_from"] = "zoom" if answer is zoomed.zoomed else "whole photo"
            else:
                (answer,) = classifier.identify_images([image], [str(path)], keep_stage_maps=False)
            record |= places.ranked(path, answer, args.top_k)
            if args.trust:
                best = int(np.argmax(answer.probabilities))
                signals = [trust.tta_agreement(classifier, image, best).signal()]
                if library is not None and head is not None:  # both there with --trust
                    own = library.photo_by_path(path)
                    vote, familiar = trust.library_signals(
                        library, classifier.class_names[best], answer.embedding, head,
                        exclude=[own.id] if own is not None else [],
                    )
                    signals += [vote.signal(), familiar.signal()]
                else:
                    signals += trust.without_library(args.library)
                record["trust"] = [
                    {"signal": s.title, "state": s.state, "finding": s.finding, "meaning": s.meaning} for s in signals
                ]
            records.append(record)
    finally:
        if library is not None:
            library.close()
    if args.json:
        print_json(records)
    else:
        print(f"model: {chosen.info['name']} ({chosen.info['trust']})")
        _print_table(records, show_where=places.prior is not None)
    places.report()
    for record in records:
        if "error" in record:
            print(f"birdid: {record['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if any("error" in r for r in records) else EXIT_OK


def _library_for_trust(args: argparse.Namespace):
    """The library --trust reads (by the model that identifies), or None when there is none yet."""
    from birdid_app.core.library import Library, LibraryError, default_library_path

    path = args.library or default_library_path()
    if not path.exists():
        return None
    try:
        return Library(path, model=choose_model(args.model).info["name"], create=False)
    except LibraryError as error:
        raise Failure(f"{path}: {error}") from None


def _species(identification, top_k: int) -> list[dict]:
    """The picture's own ranking, each species with the contract's keys (no range data here)."""
    return [_plain(s) for s in identification.ranked(top_k)]


def _print_table(records: list[dict], show_where: bool) -> None:
    """The records as text; where and when (and why not) only when a range model ranks them."""
    for number, record in enumerate(records):
        if number:
            print()
        print(record["path"])
        if "error" in record:
            print("  could not be read (see below)")
            continue
        if show_where and record.get("where"):
            _print_where(record)
        for note in record.get("where_notes", []) if show_where else []:
            print(f"  ({note})")
        ranked_here = show_where and record.get("where") is not None  # the range prior ranked it
        if "zoom" in record:
            _print_zoom(record)
        else:
            _print_species(record["species"], _week_words(record["where"]["week"]) if ranked_here else None)
            if record["species"] != record.get("species_by_picture", record["species"]):
                print("  by the picture alone:")
                _print_species(record["species_by_picture"])
        for signal in record.get("trust", []):
            print(f"  {signal['signal']}: {signal['finding']}")
            print(f"    ({signal['meaning']})")


def _print_species(species_list: list[dict], week_words: str | None = None) -> None:
    for species in species_list:
        line = f"  {species['probability'] * 100:6.2f}%  {species['name']}"
        if week_words is not None and species.get("expected_here") is not None:
            expected = species["expected_here"]
            line += (f"  (unusual here {week_words}: {expected:.2f})" if species["unusual_here"]
                     else f"  (expected here {week_words}: {expected:.2f})")
        elif week_words is not None:
            line += "  (no range data)"
        print(line)


def _print_where(record: dict) -> None:
    from birdid_app.core.places.place import place_name

    where = record["where"]
    name = place_name(where["latitude"], where["longitude"])
    shown = f"{where['latitude']:.4f}, {where['longitude']:.4f}" + (f" ({name})" if name else "")
    when = "the whole year" if where["week"] == 0 else f"week {where['week']} of 48 ({where['date']})"
    source = _PLACE_SOURCES.get(where["source"], where["source"])
    print(f"  where: {shown}, from {source}; when: {when}")


_PLACE_SOURCES = {"option": "--at", "photo": "the photo's GPS", "settings": "the home place in Settings",
                  "folder": "the place set for its folder", "person": "the place set for this photo"}


def _print_zoom(record: dict) -> None:
    zoom = record["zoom"]
    print("  whole photo:" + ("  (kept: the model is surer of it)" if record["answer_from"] == "whole photo" else ""))
    _print_species(record["whole_photo"])
    if zoom["box"] is None:
        print(f"  no zoom: {zoom['reason']}")
        return
    x, y, width, height = zoom["box"]
    kept = "  (kept: the model is surer of it)" if record["answer_from"] == "zoom" else ""
    print(f"  zoomed on {width}x{height} at ({x}, {y}):{kept}")
    _print_species(zoom["species"])


def run_selftest(args: argparse.Namespace) -> int:
    from birdid_app import selftest
    from birdid_app.core.errors import BirdidError

    for line in selftest.describe_installation():
        print(line, flush=True)
    try:
        chosen = choose_model(args.model)
        for line in selftest.identify_sample(chosen.path, args.device, args.precision, check_crc=not chosen.crc_checked):
            print(line, flush=True)
        if args.window:
            for line in selftest.identify_sample_in_window(chosen.path, args.device, args.precision):
                print(line, flush=True)
    except (BirdidError, selftest.SelftestFailed) as error:
        code = EXIT_USAGE if isinstance(error, BirdidError) else EXIT_SOME_FAILED
        raise Failure(f"The selftest failed: {error}", code) from None
    print("selftest passed")
    return EXIT_OK
