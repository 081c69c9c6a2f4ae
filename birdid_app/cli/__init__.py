"""The `birdid` command: the core jobs without a window. With no arguments it opens the window.

Exit codes: 0 every photo identified, 1 some photos failed, 2 bad usage or no usable model,
130 stopped with Ctrl+C.

Each command is a function of its parsed arguments that returns an exit code or raises; `main`
alone turns what it raises into one sentence on stderr and an exit code. The commands live in
identify.py (identify, selftest), explain.py, library.py (index, similar, find, label,
duplicates, bursts, export), sightings.py (lifelist, and export --ebird's file), maps.py (map),
cluster.py (index --engine ray, library import), keywords.py (keywords write), cull.py (cull), models.py
(model ...) and geomodel.py (geomodel ...).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from birdid_app import __version__
from birdid_app.cli import cluster, cull, explain, geomodel, identify, keywords, library, maps, models, sightings
from birdid_app.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    Failure,
    Parser,
)
from birdid_app.core.errors import sentence

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "build_parser", "main"]

COMMANDS = (
    "identify", "explain", "index", "similar", "find", "label", "duplicates", "bursts", "export", "lifelist", "map",
    "library", "keywords", "cull", "model", "geomodel", "selftest",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="birdid",
        description="Identify European birds in photos, offline.",
        epilog="With no command, `birdid` opens the window, and `birdid PHOTO...` (or FOLDER) opens "
        "the window with those photos in it.",
    )
    parser.add_argument("--version", action="version", version=f"birdid {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    identify.add_identify(commands)
    explain.add_commands(commands)
    library.add_commands(commands)
    sightings.add_commands(commands)
    maps.add_commands(commands)
    cluster.add_commands(commands)
    keywords.add_commands(commands)
    cull.add_commands(commands)
    models.add_commands(commands)
    geomodel.add_commands(commands)
    identify.add_selftest(commands)
    assert tuple(commands.choices) == COMMANDS, "main() tells commands from photo names by COMMANDS"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # os.path.exists, not Path.exists: it says False, where Path raises, for a name too long.
    if not argv or (argv[0] not in COMMANDS and all(os.path.exists(a) for a in argv)):
        # `birdid` alone, or `birdid PHOTO...` (as "Open with" runs it): the window. Anything
        # else that is not a command goes to argparse, which says what is wrong with it.
        from birdid_app.gui.app import run_app

        return run_app([Path(a) for a in argv])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command: the one place where what it raises becomes a line on stderr,
    "birdid: " and one sentence, and an exit code."""
    from birdid_app.core.errors import BirdidError, PhotoError

    try:
        return args.run(args)
    except Failure as failure:
        message, code = str(failure), failure.code
    except PhotoError as error:  # a photo that cannot be read: "some photos failed"
        message, code = str(error), EXIT_SOME_FAILED
    except BirdidError as error:  # a missing model, an unusable library, a file that is not a model
        message, code = str(error), EXIT_USAGE
    except KeyboardInterrupt:
        message, code = "Stopped.", EXIT_INTERRUPTED
    except OSError as error:  # a file the command writes, in a folder that is not there, say
        message, code = _os_error_sentence(error), EXIT_SOME_FAILED
    print(f"birdid: {message}", file=sys.stderr)
    return code


def _os_error_sentence(error: OSError) -> str:
    what = sentence(error.strerror or str(error)).rstrip(".") + "."
    return f"{error.filename}: {what}" if error.filename is not None else what
