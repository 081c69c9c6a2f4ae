"""Species as keywords for photo editors: `birdid keywords write` puts each library photo's
species into its XMP sidecar (or, asked to, into the JPEG itself), merged with what Lightroom,
darktable or digiKam wrote there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_OK, EXIT_SOME_FAILED, Parser, fraction, model_option


def add_commands(commands) -> None:
    from birdid_app.core.settings import SIDECAR_STYLES

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
    from birdid_app.cli.library import _open_library
    from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES
    from birdid_app.core.settings import load_settings
    from birdid_app.core.sidecar import SidecarError, write_keywords

    settings = load_settings()
    style = args.style or settings.sidecar_style
    root = args.root or settings.keyword_root
    embed = args.embed or settings.embed_in_jpeg
    written = with_species = failed = 0
    with _open_library(args) as library:
        model = library.reading_model()
        for photo in library.all_photos():
            if photo.error is not None:
                continue
            probabilities = dict(photo.species)
            if photo.label is not None:
                # Yours always; "not a bird" and "unknown species" take birdid's keywords away.
                species = None if photo.label in (NOT_A_BIRD, UNKNOWN_SPECIES) else photo.label
                confirmed = True
            elif not args.confirmed_only and photo.species and photo.species[0][1] >= args.min_probability:
                species, confirmed = photo.species[0][0], False
            else:
                species, confirmed = None, False  # below the bar now: what birdid wrote before goes
            try:
                write_keywords(photo.path, species, model=model or "", probability=probabilities.get(species),
                               confirmed=confirmed, root=root, style=style, embed=embed)
            except SidecarError as error:
                failed += 1
                print(f"birdid: {error}", file=sys.stderr)
                continue
            written += 1
            with_species += species is not None
    where = "JPEGs" if embed else f"{style} sidecars"
    print(f"keywords written for {written} photos ({with_species} with a species) in {where}"
          + (f"; {failed} could not be written" if failed else ""))
    return EXIT_SOME_FAILED if failed else EXIT_OK
