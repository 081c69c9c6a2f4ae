"""What the commands share: exit codes, the failure they raise, argument types and option groups,
and finding and loading the model. Nothing here loads torch until a command runs the model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple, NoReturn

from birdid_app.core import options
from birdid_app.core.errors import sentence

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl+C


class Failure(Exception):
    """A command ends with one sentence on stderr (after "birdid: ") and this exit code; main()
    prints it. For failures whose code is not the one main() gives a BirdidError."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; this keeps the message one line
        self.exit(EXIT_USAGE, f"birdid: {sentence(message)}\n")


def region(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,WIDTH,HEIGHT in pixels, not {text!r}") from None
    if width < 1 or height < 1 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a region inside a photo")
    return (x, y, width, height)


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def model_option() -> argparse.ArgumentParser:
    """--model, for every command that runs the model or reads what it found."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--model", type=Path, help="a Birder Hiera .pt file (default: the installed model)")
    return parent


def running_options() -> argparse.ArgumentParser:
    """--device and --precision: every command that runs the model takes them, and hands them
    to load_classifier."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE)
    parent.add_argument("--precision", choices=options.PRECISIONS, default=options.DEFAULT_PRECISION)
    return parent


def json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON")
    return parent


class ChosenModel(NamedTuple):
    path: Path  # the file to load
    info: dict  # how results describe it: name, verified, trust
    crc_checked: bool  # an installed model, checked by the store: no need to read it twice


def choose_model(model_arg: Path | None) -> ChosenModel:
    """The --model file, else the active model."""
    from birdid_app.core.errors import NoModelError
    from birdid_app.core.model.model_store import ModelStore

    store = ModelStore()
    if model_arg is not None:
        known = next((m for m in store.models() if m.path == model_arg.resolve() or m.path == model_arg), None)
        if known is None:
            info = {"name": model_arg.stem, "verified": False, "trust": f"not installed, file {model_arg}"}
            return ChosenModel(model_arg, info, crc_checked=False)
        model = known
    else:
        active = store.active()
        if active is None:
            raise NoModelError(
                "No model is installed: run `birdid model download`, or `birdid model import FILE` "
                "with a copy of the model file."
            )
        model = active
    info = {"name": model.name, "verified": model.verified, "trust": model.trust_label}
    return ChosenModel(store.checked_path(model), info, crc_checked=True)


# Below this many photos, "auto" with no kept trial does not measure first: the trial (and an int8
# conversion) takes about half a minute once, and saves a fraction of a second a photo.
PHOTOS_WORTH_A_TRIAL = 200


def load_classifier(args: argparse.Namespace, photos: int | None = None):
    """(Classifier, ChosenModel) for --model (or the active model) on --device in --precision;
    raises BirdidError. `photos`: how many the command will identify, when it knows; with
    "auto", fewer than PHOTOS_WORTH_A_TRIAL and no trial kept run in the mode that needs no
    preparation, and say so."""
    # torch: only once a command runs the model.
    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.inference import Classifier, cpu_has_native_bf16, resolve_device
    from birdid_app.core.model.precision import kept_choice, ready_precision

    chosen = choose_model(args.model)
    checkpoint = read_checkpoint(chosen.path, check_crc=not chosen.crc_checked)
    precision, reason = args.precision, None
    if precision == "auto" and photos is not None and photos < PHOTOS_WORTH_A_TRIAL:
        device, native_bf16 = resolve_device(args.device), cpu_has_native_bf16()
        if kept_choice(checkpoint, device, native_bf16=native_bf16) is None:
            precision = ready_precision(device, native_bf16=native_bf16)
            reason = (f"{precision}: {photos} photo{'s' if photos != 1 else ''} too few to measure the fastest "
                      "precision first (about half a minute, once); `birdid model retune` measures it")
    classifier = Classifier(
        checkpoint, device=args.device, precision=precision,
        on_converting=lambda: print(
            "Preparing the int8 copy of the model (once for this model; about half a minute)…", file=sys.stderr
        ),
    )
    if reason is not None:
        classifier.precision_reason = reason
    return classifier, chosen


def print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def reading_model(args: argparse.Namespace) -> str | None:
    """The model whose identifications a library command reads: --model's, else the installed
    active one's; None (the library's only model) when no model is installed."""
    from birdid_app.core.errors import NoModelError

    try:
        return choose_model(args.model).info["name"]
    except NoModelError:
        return None


def open_library(args: argparse.Namespace):
    """The library file for a command that reads it; only `index` creates one that is not there."""
    from birdid_app.core.library import Library

    return Library(args.library, model=reading_model(args), create=False)
