"""`birdid geomodel ...`: download, import, check and remove the range model (BirdNET's Geomodel)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, Failure, Parser, json_option, print_json
from birdid_app.cli.progress import ProgressPrinter


def add_commands(commands) -> None:
    geomodel = commands.add_parser(
        "geomodel", help="the range model that ranks species by where and when a photo was taken"
    )
    actions = geomodel.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    download = actions.add_parser("download", help="download BirdNET's range model (about 7 MB) from the hub")
    download.add_argument("--cache-dir", type=Path, help="where to keep it (default: the Hugging Face cache)")
    download.set_defaults(run=download_geomodel)
    import_ = actions.add_parser("import", help="install a range model from its ONNX file and label list, offline")
    import_.add_argument("model", type=Path, metavar="MODEL.onnx")
    import_.add_argument("labels", type=Path, metavar="LABELS.txt", nargs="?",
                         help="one line per output: eBird code, scientific name, English name, tab-separated "
                         "(default: the published model's labels, which ship with birdid)")
    import_.set_defaults(run=import_geomodel)
    status = actions.add_parser(
        "status", parents=[json_option()],
        help="whether a range model is installed, its attribution, and which of the model's species it knows",
    )
    status.add_argument("--model", type=Path, help="the image model whose species are matched (default: the installed one)")
    status.set_defaults(run=geomodel_status)
    actions.add_parser("remove", help="uninstall the range model").set_defaults(run=remove_geomodel)


def download_geomodel(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.places.geomodel import GeomodelStore, download_geomodel

    bar = ProgressPrinter(sys.stderr, done_word="downloaded", bar=True)
    try:
        geomodel = download_geomodel(GeomodelStore(), cache_dir=args.cache_dir, progress=bar.update)
    except BirdidError as error:  # the network or the hub (DownloadError), or a file that is no range model
        raise Failure(str(error), EXIT_SOME_FAILED) from None
    except KeyboardInterrupt:
        raise Failure("The download was interrupted; run `birdid geomodel download` again to resume.",
                      EXIT_INTERRUPTED) from None
    finally:
        bar.finish()
    print(f"range model: downloaded, verified and installed ({len(geomodel.labels):,} species, {geomodel.path})")
    return EXIT_OK


def import_geomodel(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.places.geomodel import GeomodelStore

    try:
        geomodel = GeomodelStore().install(args.model, args.labels, origin="import", source=str(args.model))
    except BirdidError as error:
        raise Failure(str(error), EXIT_SOME_FAILED) from None
    print(f"range model: imported ({len(geomodel.labels):,} species) to {geomodel.path}")
    return EXIT_OK


def remove_geomodel(args: argparse.Namespace) -> int:
    from birdid_app.core.places.geomodel import GeomodelStore

    removed = GeomodelStore().remove()
    print("range model: removed" if removed else "No range model is installed.")
    return EXIT_OK


def geomodel_status(args: argparse.Namespace) -> int:
    from birdid_app.core.places.geomodel import ATTRIBUTION, GeomodelStore
    from birdid_app.core.places.range_prior import RangePrior

    store = GeomodelStore()
    record = store.record()
    report: dict = {"installed": record is not None, "attribution": ATTRIBUTION}
    if record is not None:
        geomodel = store.load()  # a damaged or changed file: one sentence, exit 2
        report |= {"path": str(record.model_path), "origin": record.origin, "source": record.source,
                   "sha256": record.model_sha256, "species": len(geomodel.labels)}
        class_names, model_name = _image_model_classes(args.model)
        if class_names is not None:
            match = RangePrior(geomodel, class_names).match
            report |= {
                "image_model": model_name, "matched": len(match.matches), "of": len(class_names),
                "matched_by": _counts(m.how for m in match.matches.values()), "unmatched": list(match.unmatched),
            }
    if args.json:
        print_json(report)
        return EXIT_OK
    if record is None:
        print("No range model is installed: run `birdid geomodel download`, or `birdid geomodel import "
              "MODEL.onnx LABELS.txt`.")
    else:
        print(f"range model: installed ({report['origin']} from {report['source']})")
        print(f"  {report['path']}  {report['species']:,} species  sha256 {report['sha256'][:16]}…")
        if "matched" in report:
            how = ", ".join(f"{count} by {way}" for way, count in report["matched_by"].items())
            print(f"  {report['image_model']}: {report['matched']} of {report['of']} species matched ({how})")
            if report["unmatched"]:
                print(f"  no range data (ranked by the picture alone): {', '.join(report['unmatched'])}")
    print(ATTRIBUTION)
    return EXIT_OK


def _image_model_classes(model_arg: Path | None) -> tuple[list[str] | None, str | None]:
    """The species of --model or the installed model; (None, None) when there is no model."""
    from birdid_app.cli.common import choose_model
    from birdid_app.core.errors import NoModelError
    from birdid_app.core.model.checkpoint import read_checkpoint

    try:
        chosen = choose_model(model_arg)
    except NoModelError:
        return None, None
    checkpoint = read_checkpoint(chosen.path, check_crc=not chosen.crc_checked)
    return list(checkpoint.class_names), chosen.info["name"]


def _counts(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
