"""Culling bursts from the command line: `birdid cull` prints each burst with its frames'
sharpness on the bird and the suggested best frame (scoring the frames indexed before culling
first); `--write` rejects every other frame (xmp:Rating -1 in its sidecar, and in the library),
never one the person has already culled there or rated in their editor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_OK, EXIT_SOME_FAILED, model_option, running_options


def add_commands(commands) -> None:
    from birdid_app.cli.library import add_burst_options
    from birdid_app.core.options import SIDECAR_STYLES

    library_file = argparse.ArgumentParser(add_help=False)
    library_file.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    cull = commands.add_parser(
        "cull", parents=[library_file, model_option(), running_options()],
        help="each burst's frames by sharpness on the bird, and the best one; --write rejects the others",
    )
    cull.add_argument("--write", action="store_true",
                      help="reject (xmp:Rating -1) every frame but the best of each burst, leaving alone any frame "
                           "you have rated, picked or rejected already")
    cull.add_argument("--style", choices=SIDECAR_STYLES,
                      help="sidecar naming: lightroom (photo.xmp) or darktable (photo.ext.xmp); default: your setting")
    add_burst_options(cull)
    cull.set_defaults(run=cull_bursts)


def _say(message: str) -> None:
    print(f"birdid: {message}", file=sys.stderr)


def cull_bursts(args: argparse.Namespace) -> int:
    from birdid_app.cli.common import open_library
    from birdid_app.core.library.cull import bursts_for_culling

    problems = 0
    with open_library(args) as library:
        if args.write:
            library.require_writable()  # before any sidecar is written: the two must agree
        bursts = bursts_for_culling(library, args.seconds, args.threshold)
        unscored = {frame.photo.id: frame.photo.path for burst in bursts for frame in burst.frames
                    if frame.sharpness is None}
        if unscored and library.read_only:
            _say(f"The library {library.path} is read-only, so the {len(unscored)} frames indexed before culling "
                 "were not scored; make it writable to score them.")
        elif unscored:
            problems += _score(args, library, unscored)
            bursts = bursts_for_culling(library, args.seconds, args.threshold)
        if not bursts:
            print(f"No bursts: no photos taken within {args.seconds:g} s of each other are {args.threshold:g} alike "
                  "or more.")
            return EXIT_OK
        for number, burst in enumerate(bursts, start=1):
            print(f"burst {number}: {len(burst.frames)} frames; best: {_name(burst)}")
            for frame in burst.frames:
                mark = "*" if frame.photo.id == burst.best else " "
                score = "not scored" if frame.sharpness is None else f"sharpness {frame.sharpness:9.1f}"
                species = f"  {frame.photo.species[0][0]} {frame.photo.species[0][1]:.0%}" if frame.photo.species else ""
                cull = f"  [{frame.cull.describe()}]" if frame.cull is not None else ""
                print(f" {mark} {frame.photo.path}  {score}{species}{cull}")
        if args.write:
            problems += _reject_others(args, library, bursts)
    return EXIT_SOME_FAILED if problems else EXIT_OK


def _name(burst) -> str:
    return next((frame.photo.path.name for frame in burst.frames if frame.photo.id == burst.best), "none")


def _score(args: argparse.Namespace, library, unscored: dict[int, Path]) -> int:
    """Score the burst frames indexed before culling; how many could not be."""
    from birdid_app.cli.common import load_classifier
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.insight.bird_box import score_photos
    from birdid_app.core.library.cull import set_sharpness

    print(f"Scoring the sharpness of {len(unscored)} frames indexed before culling…", file=sys.stderr)
    try:
        classifier, _ = load_classifier(args, photos=len(unscored))
    except BirdidError as error:  # no model, say: the bursts are still worth printing
        _say(f"{error} So {len(unscored)} frames are not scored.")
        return len(unscored)
    failed: list[str] = []
    scores = score_photos(classifier, list(unscored.values()), failed.append)
    by_path = {path: pid for pid, path in unscored.items()}
    set_sharpness(library, {by_path[path]: score for path, score in scores.items()})
    for message in failed:
        _say(message)
    return len(failed)


def _reject_others(args: argparse.Namespace, library, bursts) -> int:
    """Reject every frame but the best of each burst; how many could not be written."""
    from birdid_app.core.library.cull import REJECTED, Cull, write_cull
    from birdid_app.core.photos.sidecar import SidecarError, read_rating
    from birdid_app.core.settings import load_settings

    style = args.style or load_settings().sidecar_style
    to_reject: dict[int, Path] = {}
    kept = 0
    problems: list[str] = []
    for burst in bursts:
        if burst.best is None:  # every frame rejected already: nothing to keep, nothing to reject
            continue
        for frame in burst.others():
            if frame.cull is not None:
                kept += 1  # culled in birdid already: the person's word stands
                continue
            try:
                rating = read_rating(frame.photo.path)
            except SidecarError as error:
                problems.append(str(error))
                continue
            if rating:  # rated (or rejected) in their editor; 0 is a camera's "not rated"
                kept += 1
                continue
            to_reject[frame.photo.id] = frame.photo.path
    written = write_cull(library, to_reject, Cull(REJECTED), style=style, source="birdid")
    problems += written.problems
    for message in problems:
        _say(message)
    print(f"rejected {len(written.written)} frames in {style} sidecars and the library; "
          f"{kept} already culled or rated were left as they are"
          + (f"; {len(problems)} could not be written" if problems else ""))
    return len(problems)
