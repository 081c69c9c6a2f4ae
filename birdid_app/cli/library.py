"""The photo library from the command line: index, similar, find, duplicates, bursts, export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.cluster import add_engine_options, index_on_ray
from birdid_app.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Failure,
    choose_model,
    fraction,
    json_option,
    load_classifier,
    model_option,
    open_library,
    positive_int,
    print_json,
    running_options,
)
from birdid_app.cli.progress import ProgressPrinter
from birdid_app.cli.sightings import add_ebird_options, export_ebird


def add_commands(commands) -> None:
    library_file = argparse.ArgumentParser(add_help=False)
    library_file.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    reading = [library_file, model_option()]  # the model whose identifications are read
    running = running_options()

    index = commands.add_parser("index", parents=[*reading, running], help="add folders to the library and index them")
    index.add_argument("folders", nargs="*", type=Path, metavar="FOLDER", help="(default: the library's folders)")
    index.add_argument(
        "--rebuild", action="store_true",
        help="set a damaged library file aside (kept beside it) and index its folders into a new one",
    )
    index.add_argument(
        "--zoom", action="store_true",
        help="identify each photo again where the model found its evidence, and keep the answer it is surer of "
        "(decodes at full resolution and runs a gradient pass: about four times the work)",
    )
    index.add_argument("--no-cull", dest="cull", action="store_false",
                       help="do not score each photo's sharpness on the bird for culling (birdid cull scores it later)")
    add_engine_options(index)
    index.set_defaults(run=index_folders)
    similar = commands.add_parser(
        "similar", parents=[*reading, running, json_option()], help="the library photos most like PHOTO"
    )
    similar.add_argument("photo", type=Path, metavar="PHOTO")
    similar.add_argument("--top-k", type=positive_int, default=20, metavar="K")
    similar.set_defaults(run=similar_photos)
    find = commands.add_parser("find", parents=[*reading, json_option()], help="library photos of SPECIES")
    find.add_argument("species", metavar="SPECIES", help="any part of any of its names (\"robin\", \"Erithacus\"), in any case")
    find.add_argument("--in-top", type=int, choices=range(1, 6), default=1, metavar="N",
                      help="photos where it is among the top N species (default 1: the top one)")
    find.add_argument("--confirmed", action="store_true", help="only photos you labelled as SPECIES")
    find.add_argument(
        "--ranking", choices=("picture", "place"), default="picture",
        help="read the picture's own answers (default), or the answers ranked with where and when "
        "(photos indexed with a place and the range model installed)",
    )
    find.set_defaults(run=find_species)
    label = commands.add_parser(
        "label", parents=[*reading], help="confirm or correct the species of a library photo (your own label)"
    )
    label.add_argument("photo", type=Path, metavar="PHOTO")
    label.add_argument("species", nargs="?", metavar="SPECIES",
                       help='one of the model\'s species, "not a bird" or "unknown species"')
    label.add_argument("--clear", action="store_true", help="remove your label from PHOTO")
    label.set_defaults(run=label_photo)
    duplicates = commands.add_parser(
        "duplicates", parents=[*reading, json_option()], help="groups of near-identical library photos"
    )
    duplicates.add_argument("--threshold", type=fraction, default=0.95, help="cosine similarity (default 0.95)")
    duplicates.set_defaults(run=duplicate_groups)
    bursts = commands.add_parser(
        "bursts", parents=[*reading, json_option()],
        help="groups of photos shot one after another (within --seconds of each other) that look alike",
    )
    add_burst_options(bursts)
    bursts.set_defaults(run=burst_groups)
    export = commands.add_parser(
        "export", parents=reading,
        help="the library's identifications as CSV, or with --ebird your sightings for eBird's Import data",
    )
    export.add_argument("out", nargs="?", type=Path, metavar="FILE.csv",
                        help="path, date, GPS, top-5 species, model and your label of every photo")
    add_ebird_options(export)
    export.set_defaults(run=export_csv)


def index_folders(args: argparse.Namespace) -> int:
    from birdid_app.core.insight.bird_box import index_steps
    from birdid_app.core.library import IndexJob, Library, default_library_path, rebuild_library

    for folder in args.folders:
        if not folder.is_dir():
            raise Failure(f"{folder}: This is not a folder.")
    if args.engine == "ray":
        if args.zoom:
            raise Failure("--zoom runs on the local engine only: the Ray engine's workers decode photos to the "
                          "model's input size, too small to zoom into.")
        return index_on_ray(args)
    if args.shards is not None:
        raise Failure("--shards is for --engine ray; the local engine indexes into the library.")
    if args.rebuild:
        damaged, folders = rebuild_library(args.library or default_library_path())
        print(f"The damaged library was set aside as {damaged}; the new one starts with the "
              f"{len(folders)} folders that could be read from it.", file=sys.stderr)
    classifier, chosen = load_classifier(args)
    model_name = chosen.info["name"]
    with Library(args.library, model=model_name) as library:
        for folder in args.folders:
            library.add_folder(folder)
        if not library.folders():
            raise Failure("The library has no folders yet: name one, as in `birdid index ~/Pictures`.")
        printer = ProgressPrinter(sys.stderr, done_word="indexed", bar=False)
        # With culling, the same forward keeps its stage maps to find the bird for sharpness.
        identify, decode_size, prepare, bird_box = index_steps(classifier, zoom=args.zoom, culling=args.cull)
        prior, home_place = _range_prior(classifier.class_names)
        job = IndexJob(
            library, identify, model_name, progress=printer.update, decode_size=decode_size, prepare=prepare, wait_for_lock=True,
            species_names=classifier.class_names, range_prior=prior, home_place=home_place, bird_box=bird_box,
            on_wait=lambda: print(f"Another birdid is indexing {library.path}; waiting for it to finish "
                                  "(Ctrl+C to stop)…", file=sys.stderr, flush=True),
        )
        try:
            plan = job.plan()
            print(f"{plan.scanned} photos found: {plan.unchanged} unchanged, {plan.renamed} moved, "
                  f"{plan.removed} gone, {len(job.pending)} to identify", file=sys.stderr)
            summary = job.run()
        except KeyboardInterrupt:
            raise Failure(f"Stopped after {job.done} photos; run it again to carry on.", EXIT_INTERRUPTED) from None
        finally:
            printer.finish()
            job.close()
        print(f"indexed {summary.embedded} photos ({summary.failed} could not be read); "
              f"the library holds {library.count()}")
        if prior is not None:
            # Photos indexed before the range model was installed, or before a place was set for
            # their folder: ranked again from their stored embeddings, without the image model.
            from birdid_app.core.library import refresh_place_answers

            updated = refresh_place_answers(library, model_name, prior, classifier.head_weights(),
                                            home_place=home_place)
            if updated:
                print(f"ranked {updated} photos again by where and when")
    return EXIT_OK


def _range_prior(class_names):
    """(RangePrior or None, home place or None) for indexing: the answers ranked with where and
    when are stored beside the picture's own when a range model is installed. A damaged range
    model is said once and the index goes on without it."""
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.places.geomodel import GeomodelStore
    from birdid_app.core.places.range_prior import RangePrior
    from birdid_app.core.settings import load_settings

    home = load_settings().home_place
    store = GeomodelStore()
    if not store.installed():
        return None, None
    try:
        return RangePrior(store.load(), class_names), tuple(home) if home else None
    except BirdidError as error:
        print(f"birdid: {error} Photos are indexed by the picture alone.", file=sys.stderr)
        return None, None


def similar_photos(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import PhotoError

    with open_library(args) as library:
        known = library.photo_by_path(args.photo)
        if known is not None and library.has_embedding(known.id):
            hits = library.similar_to_photo(known.id, args.top_k)
        else:
            classifier, _ = load_classifier(args)
            (result,) = classifier.identify_files([args.photo], keep_stage_maps=False)
            if isinstance(result, PhotoError):
                raise result
            hits = library.similar(result.embedding, args.top_k)
        _warn_if_not_identified_by(library)
    _print_records([{"path": str(photo.path), "score": score} for photo, score in hits], args.json,
                   lambda r: f"{r['score']:.4f}  {r['path']}")
    return EXIT_OK


def _warn_if_not_identified_by(library) -> None:
    """Say so when the library holds no identifications by the model it is read with (a model
    was just switched, say): an empty answer should not look like 'no such photos'."""
    model = library.reading_model()
    counts = dict(library.models())
    if model is not None and model not in counts and counts:
        others = ", ".join(f"{name} ({count} photos)" for name, count in counts.items())
        print(f"birdid: The library holds no photos identified by {model} yet (it holds {others}): "
              "run `birdid index` to identify them with it.", file=sys.stderr)


def find_species(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        from birdid_app.core.library.labels import species_meant
        from birdid_app.core.model.species_names import ambiguity_sentence, search_key

        species = species_meant(library, args.species)  # any part of any of its names: "robin"
        if isinstance(species, list):
            raise Failure(ambiguity_sentence(args.species, species, "the species in the library"))
        if search_key(species) != search_key(args.species):
            print(f"birdid: Finding {species}.", file=sys.stderr)  # said, so "robin" is not a surprise
        hits = library.find_species(species, in_top=args.in_top, confirmed_only=args.confirmed, ranking=args.ranking)
        _warn_if_not_identified_by(library)
    records = []
    for photo, probability in hits:
        record = {"path": str(photo.path), "probability": probability}
        if photo.label is not None:
            record["confirmed"] = True  # labelled so by the person; listed first
        records.append(record)
    _print_records(records, args.json, _found_line)
    return EXIT_OK


def _found_line(record: dict) -> str:
    probability = "" if record["probability"] is None else f"{record['probability'] * 100:.2f}%"
    mark = "confirmed" if record.get("confirmed") else ""
    return f"{probability:>7}  {mark:9}  {record['path']}"


def label_photo(args: argparse.Namespace) -> int:
    from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES
    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.species_names import shown_name, typed_species

    if args.clear == (args.species is not None):
        raise Failure("Name a SPECIES for the photo, or --clear its label.")
    with open_library(args) as library:
        photo = library.photo_by_path(args.photo)
        if photo is None:
            raise Failure(f"{args.photo}: This photo is not in the library: index its folder first.")
        if args.clear:
            library.set_label(photo.id, None)
            print(f"{photo.path}: label removed")
            return EXIT_OK
        chosen = choose_model(args.model)
        names = read_checkpoint(chosen.path, check_crc=not chosen.crc_checked).class_names
        species = typed_species(args.species, [*names, NOT_A_BIRD, UNKNOWN_SPECIES])
        if species is None:
            raise Failure(f"The model knows no species called {shown_name(args.species)}; "
                          f'use one of its names, "{NOT_A_BIRD}" or "{UNKNOWN_SPECIES}".')
        library.set_label(photo.id, species)
    print(f"{photo.path}: labelled {species}")
    return EXIT_OK


def duplicate_groups(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        groups = library.duplicate_groups(args.threshold)
        _warn_if_not_identified_by(library)
    _print_groups(groups, args.json, f"No near-duplicates: no two photos are {args.threshold:g} alike or more.")
    return EXIT_OK


def _print_groups(groups, as_json: bool, none_found: str) -> None:
    if as_json:
        print_json([[str(p.path) for p in group] for group in groups])
    elif not groups:
        print(none_found)  # an empty answer should not look like a command that did nothing
    else:
        for number, group in enumerate(groups, start=1):
            print(f"group {number}: " + "  ".join(str(p.path) for p in group))


def burst_groups(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        groups = library.burst_groups(args.seconds, args.threshold)
        _warn_if_not_identified_by(library)
    _print_groups(groups, args.json, f"No bursts: no photos taken within {args.seconds:g} s of each other are "
                  f"{args.threshold:g} alike or more.")
    return EXIT_OK


def add_burst_options(parser: argparse.ArgumentParser) -> None:
    """--seconds and --threshold: what makes photos one burst (`birdid bursts`, `birdid cull`)."""
    from birdid_app.core.library.groups import BURST_SECONDS, BURST_THRESHOLD

    parser.add_argument("--seconds", type=non_negative_seconds, default=BURST_SECONDS,
                        help=f"largest gap between two frames of a burst, by capture time (default {BURST_SECONDS:g})")
    parser.add_argument("--threshold", type=fraction, default=BURST_THRESHOLD,
                        help=f"how alike two frames of a burst are at least, cosine (default {BURST_THRESHOLD:g})")


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, not {text!r}")
    return value


def export_csv(args: argparse.Namespace) -> int:
    if (args.out is None) == (args.ebird is None):
        raise Failure("Name one file: `birdid export FILE.csv` for the identifications, or "
                      "`birdid export --ebird FILE.csv` for your sightings in eBird's format.")
    if args.ebird is not None:
        return export_ebird(args)
    if args.year is not None:
        raise Failure("--year goes with --ebird: `birdid export FILE.csv` writes every photo.")
    with open_library(args) as library:
        rows = library.export_csv(args.out)
        _warn_if_not_identified_by(library)
    print(f"{args.out}: {rows} photos")
    return EXIT_OK


def _print_records(records: list[dict], as_json: bool, line) -> None:
    if as_json:
        print_json(records)
    else:
        for record in records:
            print(line(record))
