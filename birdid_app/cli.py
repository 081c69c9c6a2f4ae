"""The `birdid` command: the core jobs without a window. With no arguments it opens the window.

Exit codes: 0 every photo identified, 1 some photos failed, 2 bad usage or no usable model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from birdid_app import __version__

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; this keeps the message one line
        self.exit(EXIT_USAGE, f"birdid: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="birdid", description="Identify European birds in photos, offline.")
    parser.add_argument("--version", action="version", version=f"birdid {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    identify = commands.add_parser("identify", help="rank the likely species in each photo")
    identify.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    identify.add_argument("--model", type=Path, help="a Birder Hiera .pt file (default: the installed model)")
    identify.add_argument("--top-k", type=_positive_int, default=5, metavar="K", help="species per photo (default 5)")
    identify.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    identify.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    identify.add_argument("--json", action="store_true", help="print one JSON array, one object per photo")
    identify.set_defaults(run=_identify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from birdid_app.gui.app import run_app

        return run_app()
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_usage(sys.stderr)
        return EXIT_USAGE
    return args.run(args)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _identify(args: argparse.Namespace) -> int:
    # Imported here so that `birdid --version` and `--help` answer without loading torch.
    from birdid_app.core.errors import BirdidError, PhotoError
    from birdid_app.core.inference import Classifier
    from birdid_app.core.paths import MODEL_FILENAME, MODEL_REPO, default_model_path

    model_path = args.model or default_model_path()
    if args.model is None and not model_path.exists():
        print(
            f"birdid: no model is installed. Download {MODEL_FILENAME} from the Hugging Face repository "
            f"{MODEL_REPO} and pass it with --model PATH, or place it at {model_path}.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        classifier = Classifier.from_file(model_path, device=args.device, precision=args.precision)
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE

    results = classifier.identify_files(args.photos)
    records = []
    for path, result in zip(args.photos, results):
        if isinstance(result, PhotoError):
            records.append({"path": str(path), "error": str(result)})
        else:
            species = [{"name": s.name, "probability": s.probability} for s in result.ranked(args.top_k)]
            records.append({"path": str(path), "species": species})

    if args.json:
        json.dump(records, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_table(records)
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


if __name__ == "__main__":
    sys.exit(main())
