"""`birdid map`: the library's photos on a plane, alike photos together, drawn to a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_OK, EXIT_SOME_FAILED, Failure, model_option


def add_commands(commands) -> None:
    library_map = commands.add_parser(
        "map", parents=[model_option()],
        help="draw a map of the library: each photo a point, alike photos together, coloured by species or label",
    )
    library_map.add_argument("--out", type=Path, required=True, metavar="FILE.png")
    library_map.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    library_map.add_argument("--colour-by", choices=("species", "label"), default="species",
                             help="the model's top species (default) or your own label")
    library_map.add_argument("--size", type=_size, default=(1600, 1200), metavar="WxH",
                             help="the picture's size in pixels (default 1600x1200)")
    library_map.set_defaults(run=draw_library_map)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, as 1600x1200, not {text!r}") from None
    if not (200 <= width <= 20_000 and 200 <= height <= 20_000):
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be 200 to 20000 pixels")
    return width, height


def draw_library_map(args: argparse.Namespace) -> int:
    from birdid_app.cli.common import open_library
    from birdid_app.core.insight.explain import save_png
    from birdid_app.core.library.map import draw_map, library_map, map_cache_path, point_keys

    with open_library(args) as library:
        if not len(library.vectors()):
            raise Failure(f"{library.path}: The library has no identified photos to map; index a folder first.",
                          EXIT_SOME_FAILED)
        laid_out = library_map(library, on_stage=lambda text: print(f"{text}…", file=sys.stderr, flush=True))
        keys = point_keys(library, laid_out, args.colour_by)
        by = "top species" if args.colour_by == "species" else "your label"
        title = f"{len(keys):,} photos · {laid_out.model} · coloured by {by}"
        save_png(draw_map(laid_out, keys, size=args.size, title=title), args.out)
        cache = map_cache_path(library.path, laid_out.model)
    print(f"Wrote the map of {len(keys):,} photos to {args.out} (the layout is kept in {cache}).")
    return EXIT_OK
