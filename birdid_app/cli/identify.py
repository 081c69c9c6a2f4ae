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


def _print_table(records: list[dict]) -> None:
    for number, record in enumerate(records):
        if number:
            print()
        print(record["path"])
        if "error" in record:
            print("  could not be read (see below)")
            continue
        for species in record["species"]:
            print(f"  {species['probability'] * 100:6.2f}%  {species['name']}")


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
