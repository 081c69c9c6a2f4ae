"""`birdid model ...`: download, import, list, verify, choose, remove and retune installed models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, Failure, Parser
from birdid_app.cli.progress import ProgressPrinter
from birdid_app.core import options


def add_commands(commands) -> None:
    model = commands.add_parser("model", help="download, import, list, verify, choose, remove or retune models")
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    download = actions.add_parser("download", help="download the eu-common model (about 195 MB) from the hub")
    download.add_argument("--cache-dir", type=Path, help="where to keep it (default: the Hugging Face cache)")
    download.set_defaults(run=download_model)
    import_ = actions.add_parser("import", help="copy a model file (from a USB stick, say) into birdid")
    import_.add_argument("file", type=Path, metavar="FILE")
    import_.set_defaults(run=import_model)
    actions.add_parser("list", help="list the installed models").set_defaults(run=list_models)
    verify = actions.add_parser("verify", help="hash installed model files again (all, or NAME)")
    verify.add_argument("name", nargs="?", metavar="NAME")
    verify.set_defaults(run=verify_models)
    use = actions.add_parser("use", help="make NAME the model birdid uses")
    use.add_argument("name", metavar="NAME")
    use.set_defaults(run=use_model)
    remove = actions.add_parser("remove", help="uninstall NAME")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=remove_model)
    retune = actions.add_parser(
        "retune", help='measure again which precision "auto" runs NAME in (default: the active model) on this computer'
    )
    retune.add_argument("name", nargs="?", metavar="NAME")
    retune.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE)
    retune.set_defaults(run=retune_model)


def download_model(args: argparse.Namespace) -> int:
    from birdid_app.core.model.download import DownloadError, download_published_model
    from birdid_app.core.model.model_store import ModelStore

    store = ModelStore()
    bar = ProgressPrinter(sys.stderr, done_word="downloaded", bar=True)
    try:
        model = download_published_model(store, cache_dir=args.cache_dir, progress=bar.update)
    except DownloadError as error:  # the network or the hub: worth trying again, unlike bad usage
        raise Failure(str(error), EXIT_SOME_FAILED) from None
    except KeyboardInterrupt:
        raise Failure("The download was interrupted; run `birdid model download` again to resume.",
                      EXIT_INTERRUPTED) from None
    finally:
        bar.finish()
    print(f"{model.name}: downloaded and verified ({model.path})")
    return EXIT_OK


def import_model(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.model.model_store import ModelStore

    try:
        model = ModelStore().import_file(args.file)
    except BirdidError as error:  # this file could not be used: the command did not do its job
        raise Failure(str(error), EXIT_SOME_FAILED) from None
    print(f"{model.name}: imported ({model.trust_label}) to {model.path}")
    return EXIT_OK


def list_models(args: argparse.Namespace) -> int:
    from birdid_app.core.model.model_store import ModelStore
    from birdid_app.core.model.precision import kept_choices  # reads the kept trials without torch

    store = ModelStore()
    active = store.active()
    models = store.models()
    if not models:
        print("No model is installed: run `birdid model download` or `birdid model import FILE`.")
    for model in models:
        marker = "*" if active is not None and model.name == active.name else " "
        print(f"{marker} {model.name}  {model.size / 1e6:.1f} MB  {model.trust_label}  {model.path}")
        for where, choice in kept_choices(model.path):
            print(f"    precision on {where}: {choice.describe()}")
    return EXIT_OK


def verify_models(args: argparse.Namespace) -> int:
    from birdid_app.core.model.model_store import ModelStore

    store = ModelStore()
    models = [store.get(args.name)] if args.name else store.models()
    if not models:
        raise Failure("No model is installed, so there is nothing to verify: run `birdid model download` "
                      "or `birdid model import FILE`.")
    failed = 0
    for model in models:
        if store.verify(model):
            state = "matches the published model" if model.verified else "unchanged since it was imported"
            print(f"{model.name}: OK, {state}")
        else:
            failed += 1
            print(f"{model.name}: FAILED, {model.path} is missing or changed; download or import it again")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def use_model(args: argparse.Namespace) -> int:
    from birdid_app.core.model.model_store import ModelStore

    model = ModelStore().set_active(args.name)
    print(f"{model.name} is now the active model ({model.trust_label})")
    return EXIT_OK


def remove_model(args: argparse.Namespace) -> int:
    from birdid_app.core.model.model_store import ModelStore

    model = ModelStore().remove(args.name)
    kept = "" if not model.path.exists() else f"; the file stays at {model.path} for other tools that use it"
    print(f"{model.name} removed{kept}")
    return EXIT_OK


def retune_model(args: argparse.Namespace) -> int:
    """Forget the kept precision trial of the model on this device, torch and CPU, and run it now."""
    from birdid_app.core.model.model_store import ModelStore

    store = ModelStore()
    model = store.get(args.name) if args.name else store.active()
    if model is None:
        raise Failure("No model is installed, so there is nothing to measure: run `birdid model download` "
                      "or `birdid model import FILE`.")
    # torch: only now.
    from birdid_app.core.model.checkpoint import read_checkpoint
    from birdid_app.core.model.inference import cpu_has_native_bf16, resolve_device
    from birdid_app.core.model.precision import choose_precision, forget_trials

    checkpoint = read_checkpoint(store.checked_path(model), check_crc=False)
    device = resolve_device(args.device)
    forget_trials(checkpoint, device)
    choice = choose_precision(
        checkpoint, device, native_bf16=cpu_has_native_bf16(),
        on_converting=lambda: print(
            "Preparing the int8 copy of the model (once for this model; about half a minute)…", file=sys.stderr
        ),
        on_progress=lambda line: print(line, file=sys.stderr),
    )
    print(f"{model.name}: {choice.describe()}")
    return EXIT_OK
