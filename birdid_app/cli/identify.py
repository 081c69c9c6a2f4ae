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
                          help="the library --trust compares with (default: yours)")
    identify.set_defaults(run=identify_photos)


def add_selftest(commands) -> None:
    selftest = commands.add_parser(
        "selftest", parents=[model_option(), running_options()],
        help="check this installation: load a model and identify the bundled sample picture",
    )
    selftest.add_argument("--window", action="store_true",
                          help="also open the window (offscreen works) and identify the sample in it")
    selftest.set_defaults(run=run_selftest)


def identify_photos(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import PhotoError

    classifier, chosen = load_classifier(args)
    if args.zoom or args.trust:
        return _identify_carefully(args, classifier, chosen)
    # One batch of photos in memory at a time, and only the top-k kept of each: memory does
    # not grow with the number of photos given.
    results = classifier.iter_identify_files(args.photos)
    records = []
    for path, result in zip(args.photos, results, strict=True):
        if isinstance(result, PhotoError):
            records.append({"path": str(path), "error": str(result)})
        else:
            species = [{"name": s.name, "probability": s.probability} for s in result.ranked(args.top_k)]
            records.append({"path": str(path), "species": species, "model": chosen.info})

    if args.json:
        print_json(records)
    else:
        print(f"model: {chosen.info['name']} ({chosen.info['trust']})")
        _print_table(records)
        print(f"precision: {classifier.precision_reason}", file=sys.stderr)
    for record in records:
        if "error" in record:
            print(f"birdid: {record['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if any("error" in r for r in records) else EXIT_OK


def _identify_carefully(args: argparse.Namespace, classifier, chosen) -> int:
    """identify --zoom / --trust: one photo at a time, decoded at full resolution for the zoom."""
    import numpy as np

    from birdid_app.core import trust
    from birdid_app.core.errors import PhotoError
    from birdid_app.core.photo import decode_photo

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
            record["species"] = _species(answer, args.top_k)
            if args.trust:
                best = int(np.argmax(answer.probabilities))
                signals = [trust.tta_agreement(classifier, image, best).signal()]
                if library is not None:
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
        _print_table(records)
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
    return [{"name": s.name, "probability": s.probability} for s in identification.ranked(top_k)]


def _print_table(records: list[dict]) -> None:
    for number, record in enumerate(records):
        if number:
            print()
        print(record["path"])
        if "error" in record:
            print("  could not be read (see below)")
            continue
        if "zoom" in record:
            _print_zoom(record)
        else:
            _print_species(record["species"])
        for signal in record.get("trust", []):
            print(f"  {signal['signal']}: {signal['finding']}")
            print(f"    ({signal['meaning']})")


def _print_species(species_list: list[dict]) -> None:
    for species in species_list:
        print(f"  {species['probability'] * 100:6.2f}%  {species['name']}")


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
            for line in selftest.identify_sample_in_window(chosen.path):
                print(line, flush=True)
    except (BirdidError, selftest.SelftestFailed) as error:
        code = EXIT_USAGE if isinstance(error, BirdidError) else EXIT_SOME_FAILED
        raise Failure(f"The selftest failed: {error}", code) from None
    print("selftest passed")
    return EXIT_OK
