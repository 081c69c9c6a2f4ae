"""Species as keywords for photo editors: `birdid keywords write` puts each library photo's
species into its XMP sidecar (or, asked to, into the JPEG itself), merged with what Lightroom,
darktable or digiKam wrote there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_OK, EXIT_SOME_FAILED, Parser, fraction, model_option


def add_commands(commands) -> None:
    from birdid_app.core.options import SIDECAR_STYLES

    library_file = argparse.ArgumentParser(add_help=False)
    library_file.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    keywords = commands.add_parser("keywords", help="write species as keywords your photo editor reads")
    actions = keywords.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    write = actions.add_parser(
        "write", parents=[library_file, model_option()],
        help="write each library photo's species into its XMP sidecar, merged with what is there",
    )
    write.add_argument("--min-probability", type=fraction, default=0.5, metavar="P",
                       help="the model's top species only from this probability (default 0.5); your labels always")
    write.add_argument("--confirmed-only", action="store_true", help="only photos you labelled")
    write.add_argument("--style", choices=SIDECAR_STYLES,
                       help="sidecar naming: lightroom (photo.xmp) or darktable (photo.ext.xmp); default: your setting")
    write.add_argument("--root", metavar="ROOT", help='root of the hierarchical keyword (default: your setting, "Birds")')
    write.add_argument("--embed", action="store_true", help="write into JPEGs themselves instead of sidecars")
    write.set_defaults(run=write_keywords)


def write_keywords(args: argparse.Namespace) -> int:
    from birdid_app.cli.common import open_library
    from birdid_app.core.library.keywords import write_library_keywords
    from birdid_app.core.settings import load_settings

    settings = load_settings()
    style = args.style or settings.sidecar_style
    embed = args.embed or settings.embed_in_jpeg
    with open_library(args) as library:
        summary = write_library_keywords(
            library, min_probability=args.min_probability, confirmed_only=args.confirmed_only, style=style,
            root=args.root or settings.keyword_root, embed=embed,
            on_error=lambda message: print(f"birdid: {message}", file=sys.stderr),
        )
    files = "JPEG" if embed else "sidecar"  # of the style asked for, or the one the editor made before
    print(summary.sentence(files=files, min_probability=None if args.confirmed_only else args.min_probability))
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK
