"""The `birdid` command: the core jobs without a window. With no arguments it opens the window.

Exit codes: 0 every photo identified, 1 some photos failed, 2 bad usage or no usable model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from birdid_app import __version__
from birdid_app.core.errors import sentence

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
COMMANDS = ("identify", "explain", "index", "similar", "find", "duplicates", "export", "model", "selftest")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; this keeps the message one line
        self.exit(EXIT_USAGE, f"birdid: {sentence(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="birdid",
        description="Identify European birds in photos, offline.",
        epilog="With no command, `birdid` opens the window, and `birdid PHOTO...` (or FOLDER) opens "
        "the window with those photos in it.",
    )
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

    explain = commands.add_parser("explain", help="draw what the model sees in a photo, as a PNG")
    explain.add_argument("photo", type=Path, metavar="PHOTO")
    explain.add_argument("--stage", type=int, choices=(1, 2, 3, 4), default=3, help="1 (fine) to 4 (coarse)")
    explain.add_argument(
        "--mode", default="pca", metavar="MODE",
        help="mean, pca, channel:K (channel number K), cam (the top species) or cam:SPECIES (default pca)",
    )
    explain.add_argument("--out", type=Path, required=True, metavar="FILE.png")
    explain.add_argument("--model", type=Path, help="a Birder Hiera .pt file (default: the installed model)")
    explain.add_argument("--region", type=_region, metavar="X,Y,W,H", help="a region of the photo, in its pixels")
    explain.add_argument("--opacity", type=_fraction, default=0.6, help="of the overlay, 0 to 1 (default 0.6)")
    explain.add_argument("--colormap", choices=("viridis", "magma", "grey"), default="viridis")
    explain.add_argument("--max-size", type=int, default=1600, metavar="PIXELS",
                         help="longest side of the picture written (default 1600; 0: the photo's own size)")
    explain.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    explain.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    explain.set_defaults(run=_explain)

    library_options = argparse.ArgumentParser(add_help=False)
    library_options.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    library_options.add_argument("--model", type=Path, help="a Birder Hiera .pt file (default: the installed model)")
    json_option = argparse.ArgumentParser(add_help=False)
    json_option.add_argument("--json", action="store_true", help="print JSON")

    index = commands.add_parser("index", parents=[library_options], help="add folders to the library and index them")
    index.add_argument("folders", nargs="*", type=Path, metavar="FOLDER", help="(default: the library's folders)")
    index.add_argument(
        "--rebuild", action="store_true",
        help="set a damaged library file aside (kept beside it) and index its folders into a new one",
    )
    index.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    index.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    index.set_defaults(run=_index)
    similar = commands.add_parser(
        "similar", parents=[library_options, json_option], help="the library photos most like PHOTO"
    )
    similar.add_argument("photo", type=Path, metavar="PHOTO")
    similar.add_argument("--top-k", type=_positive_int, default=20, metavar="K")
    similar.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    similar.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    similar.set_defaults(run=_similar)
    find = commands.add_parser("find", parents=[library_options, json_option], help="library photos of SPECIES")
    find.add_argument("species", metavar="SPECIES")
    find.add_argument("--in-top", type=int, choices=range(1, 6), default=1, metavar="N",
                      help="photos where it is among the top N species (default 1: the top one)")
    find.set_defaults(run=_find)
    duplicates = commands.add_parser(
        "duplicates", parents=[library_options, json_option], help="groups of near-identical library photos"
    )
    duplicates.add_argument("--threshold", type=_fraction, default=0.95, help="cosine similarity (default 0.95)")
    duplicates.set_defaults(run=_duplicates)
    export = commands.add_parser("export", parents=[library_options], help="the library's identifications as CSV")
    export.add_argument("out", type=Path, metavar="FILE.csv")
    export.set_defaults(run=_export)

    model = commands.add_parser("model", help="download, import, list, verify, choose or remove models")
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    download = actions.add_parser("download", help="download the eu-common model (about 195 MB) from the hub")
    download.add_argument("--cache-dir", type=Path, help="where to keep it (default: the Hugging Face cache)")
    download.set_defaults(run=_model_download)
    import_ = actions.add_parser("import", help="copy a model file (from a USB stick, say) into birdid")
    import_.add_argument("file", type=Path, metavar="FILE")
    import_.set_defaults(run=_model_import)
    actions.add_parser("list", help="list the installed models").set_defaults(run=_model_list)
    verify = actions.add_parser("verify", help="hash installed model files again (all, or NAME)")
    verify.add_argument("name", nargs="?", metavar="NAME")
    verify.set_defaults(run=_model_verify)
    use = actions.add_parser("use", help="make NAME the model birdid uses")
    use.add_argument("name", metavar="NAME")
    use.set_defaults(run=_model_use)
    remove = actions.add_parser("remove", help="uninstall NAME")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=_model_remove)
    selftest = commands.add_parser(
        "selftest", help="check this installation: load a model and identify the bundled sample picture"
    )
    selftest.add_argument("--model", type=Path, help="a Birder Hiera .pt file (default: the installed model)")
    selftest.add_argument("--window", action="store_true",
                          help="also open the window (offscreen works) and identify the sample in it")
    selftest.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    selftest.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    selftest.set_defaults(run=_selftest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # os.path.exists, not Path.exists: it says False, where Path raises, for a name too long.
    if not argv or (argv[0] not in COMMANDS and all(os.path.exists(a) for a in argv)):
        # `birdid` alone, or `birdid PHOTO...` (as "Open with" runs it): the window. Anything
        # else that is not a command goes to argparse, which says what is wrong with it.
        from birdid_app.gui.app import run_app

        return run_app([Path(a) for a in argv])
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_usage(sys.stderr)
        return EXIT_USAGE
    from birdid_app.core.errors import BirdidError

    try:
        return args.run(args)
    except BirdidError as error:
        # A missing model, an unusable library, a file that is not a model: one sentence.
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE


def _region(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,WIDTH,HEIGHT in pixels, not {text!r}") from None
    if width < 1 or height < 1 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a region inside a photo")
    return (x, y, width, height)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _identify(args: argparse.Namespace) -> int:
    # Imported here so that `birdid --version` and `--help` answer without loading torch.
    from birdid_app.core.errors import BirdidError, PhotoError
    from birdid_app.core.inference import Classifier

    try:
        chosen = _model_for_identify(args.model)
        model_info = chosen.info
        classifier = Classifier.from_file(
            chosen.path, device=args.device, precision=args.precision, check_crc=not chosen.crc_checked
        )
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE

    # One batch of photos in memory at a time, and only the top-k kept of each: memory does
    # not grow with the number of photos given.
    results = classifier.iter_identify_files(args.photos)
    records = []
    for path, result in zip(args.photos, results, strict=True):
        if isinstance(result, PhotoError):
            records.append({"path": str(path), "error": str(result)})
        else:
            species = [{"name": s.name, "probability": s.probability} for s in result.ranked(args.top_k)]
            records.append({"path": str(path), "species": species, "model": model_info})

    if args.json:
        json.dump(records, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(f"model: {model_info['name']} ({model_info['trust']})")
        _print_table(records)
        print(f"precision: {classifier.precision_reason}", file=sys.stderr)
    for record in records:
        if "error" in record:
            print(f"birdid: {record['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if any("error" in r for r in records) else EXIT_OK


def _selftest(args: argparse.Namespace) -> int:
    from birdid_app import selftest
    from birdid_app.core.errors import BirdidError

    for line in selftest.describe_installation():
        print(line, flush=True)
    try:
        chosen = _model_for_identify(args.model)
        model_path = chosen.path
        for line in selftest.identify_sample(model_path, args.device, args.precision, check_crc=not chosen.crc_checked):
            print(line, flush=True)
        if args.window:
            for line in selftest.identify_sample_in_window(model_path):
                print(line, flush=True)
    except (BirdidError, selftest.SelftestFailed) as error:
        print(f"birdid: The selftest failed: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, BirdidError) else EXIT_SOME_FAILED
    print("selftest passed")
    return EXIT_OK


class _ChosenModel(NamedTuple):
    path: Path  # the file to load
    info: dict  # how results describe it: name, verified, trust
    crc_checked: bool  # an installed model, checked by the store: no need to read it twice


def _model_for_identify(model_arg: Path | None) -> _ChosenModel:
    """The --model file, else the active model."""
    from birdid_app.core.errors import NoModelError
    from birdid_app.core.model_store import ModelStore

    store = ModelStore()
    if model_arg is not None:
        known = next((m for m in store.models() if m.path == model_arg.resolve() or m.path == model_arg), None)
        if known is None:
            info = {"name": model_arg.stem, "verified": False, "trust": f"not installed, file {model_arg}"}
            return _ChosenModel(model_arg, info, crc_checked=False)
        model = known
    else:
        model = store.active()
        if model is None:
            raise NoModelError(
                "No model is installed: run `birdid model download`, or `birdid model import FILE` "
                "with a copy of the model file."
            )
    info = {"name": model.name, "verified": model.verified, "trust": model.trust_label}
    return _ChosenModel(store.checked_path(model), info, crc_checked=True)


def _explain(args: argparse.Namespace) -> int:
    from birdid_app.core import explain
    from birdid_app.core.errors import BirdidError, PhotoError
    from birdid_app.core.inference import Classifier
    from birdid_app.core.photo import crop_region, decode_photo

    view, _, argument = args.mode.partition(":")
    if view not in ("mean", "pca", "channel", "cam") or (view == "channel" and not argument.isdigit()):
        print(f"birdid: --mode {args.mode!r}: choose mean, pca, channel:K, cam or cam:SPECIES", file=sys.stderr)
        return EXIT_USAGE
    try:
        chosen = _model_for_identify(args.model)
        classifier = Classifier.from_file(
            chosen.path, device=args.device, precision=args.precision, check_crc=not chosen.crc_checked
        )
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        # What the model looks at, decoded as the window decodes it, so both draw the same maps;
        # decoded (and reduced) before the full-size photo, so two full-size copies never meet.
        subject = None if args.region else decode_photo(args.photo, draft_size=classifier.image_size)
        photo = decode_photo(args.photo, draft_size=None)  # upright, full size: what a person sees
        if args.region:
            subject = crop_region(photo, args.region)
    except PhotoError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except ValueError as error:
        print(f"birdid: --region: {error}", file=sys.stderr)
        return EXIT_USAGE

    (identification,) = classifier.identify_images([subject], [str(args.photo)])
    ranked = identification.ranked()
    what = f"stage {args.stage}, {view}"
    try:
        if view == "cam":
            species = argument or ranked[0].name
            names = {name.casefold(): i for i, name in enumerate(classifier.class_names)}
            if species.casefold() not in names:
                print(f"birdid: The model knows no species called {species!r}.", file=sys.stderr)
                return EXIT_USAGE
            model_input = classifier.model_input(subject)[None].to(classifier.device, classifier.dtype)
            values = explain.class_activation_map(classifier.model, model_input, names[species.casefold()], args.stage)
            what += f" for {classifier.class_names[names[species.casefold()]]}"
        else:
            values = explain.stage_view(identification.stage_maps[args.stage - 1], view, int(argument or 0))
    except ValueError as error:
        print(f"birdid: --mode {args.mode}: {error}", file=sys.stderr)
        return EXIT_USAGE

    region = args.region
    if args.max_size and max(photo.size) > args.max_size:
        # Blend at the size written, not at the photo's: a 100-megapixel photo blended whole
        # would hold several full-size RGBA copies at once.
        full_width, full_height = photo.size
        photo.thumbnail((args.max_size, args.max_size))
        if region is not None:
            sx, sy = photo.width / full_width, photo.height / full_height
            x, y, width, height = region
            region = (round(x * sx), round(y * sy), max(1, round(width * sx)), max(1, round(height * sy)))
    picture = explain.blend(photo, explain.overlay_rgba(values, args.opacity, args.colormap), region)
    partial = args.out.with_name(f".{args.out.name}.partial")
    picture.save(partial, format="PNG")
    partial.replace(args.out)
    print(f"{args.out}: {what} over {args.photo} (best match: {ranked[0].name}, {ranked[0].probability:.0%})")
    return EXIT_OK


def _reading_model(args: argparse.Namespace) -> str | None:
    """The model whose identifications a library command reads: --model's, else the installed
    active one's; None (the library's only model) when no model is installed."""
    from birdid_app.core.errors import NoModelError

    try:
        return _model_for_identify(args.model).info["name"]
    except NoModelError:
        return None


def _open_library(args: argparse.Namespace, *, create: bool = False):
    """The library file for a command; only `index` creates one that is not there."""
    from birdid_app.core.library import Library

    return Library(args.library, model=_reading_model(args), create=create)


def _load_classifier(args: argparse.Namespace):
    """(classifier, model name) for --model (or the active model), --device and --precision;
    raises BirdidError."""
    from birdid_app.core.inference import Classifier

    chosen = _model_for_identify(args.model)
    classifier = Classifier.from_file(
        chosen.path, device=args.device, precision=args.precision, check_crc=not chosen.crc_checked
    )
    return classifier, chosen.info["name"]


def _index(args: argparse.Namespace) -> int:
    from birdid_app.core.library import IndexJob, Library, default_library_path, rebuild_library

    for folder in args.folders:
        if not folder.is_dir():
            print(f"birdid: {folder}: This is not a folder.", file=sys.stderr)
            return EXIT_USAGE
    if args.rebuild:
        damaged, folders = rebuild_library(args.library or default_library_path())
        print(f"The damaged library was set aside as {damaged}; the new one starts with the "
              f"{len(folders)} folders that could be read from it.", file=sys.stderr)
    classifier, model_name = _load_classifier(args)
    with Library(args.library, model=model_name) as library:
        for folder in args.folders:
            library.add_folder(folder)
        if not library.folders():
            print("birdid: The library has no folders yet: name one, as in `birdid index ~/Pictures`.",
                  file=sys.stderr)
            return EXIT_USAGE
        printer = ProgressPrinter(sys.stderr)
        job = IndexJob(
            library, lambda images: classifier.identify_images(images, keep_stage_maps=False), model_name,
            progress=printer.update_index, decode_size=classifier.image_size, wait_for_lock=True,
            on_wait=lambda: print(f"Another birdid is indexing {library.path}; waiting for it to finish "
                                  "(Ctrl+C to stop)…", file=sys.stderr, flush=True),
        )
        try:
            plan = job.plan()
            print(f"{plan.scanned} photos found: {plan.unchanged} unchanged, {plan.renamed} moved, "
                  f"{plan.removed} gone, {len(job.pending)} to identify", file=sys.stderr)
            summary = job.run()
        except KeyboardInterrupt:
            printer.finish()
            print(f"birdid: Stopped after {job.done} photos; run it again to carry on.", file=sys.stderr)
            return 130
        finally:
            job.close()
        printer.finish()
        print(f"indexed {summary.embedded} photos ({summary.failed} could not be read); "
              f"the library holds {library.count()}")
    return EXIT_OK


def _similar(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import PhotoError

    with _open_library(args) as library:
        known = library.photo_by_path(args.photo)
        if known is not None and library.has_embedding(known.id):
            hits = library.similar_to_photo(known.id, args.top_k)
        else:
            classifier, _ = _load_classifier(args)
            (result,) = classifier.identify_files([args.photo], keep_stage_maps=False)
            if isinstance(result, PhotoError):
                print(f"birdid: {result}", file=sys.stderr)
                return EXIT_SOME_FAILED
            hits = library.similar(result.embedding, args.top_k)
        _warn_if_not_identified_by(library)
    records = [{"path": str(photo.path), "score": score} for photo, score in hits]
    _print_records(records, args.json, lambda r: f"{r['score']:.4f}  {r['path']}")
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


def _find(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        names = {name.casefold(): name for name, _ in library.species_counts()}
        species = names.get(args.species.casefold(), args.species)
        hits = library.find_species(species, in_top=args.in_top)
        _warn_if_not_identified_by(library)
    records = [{"path": str(photo.path), "probability": probability} for photo, probability in hits]
    _print_records(records, args.json, lambda r: f"{r['probability'] * 100:6.2f}%  {r['path']}")
    return EXIT_OK


def _duplicates(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        groups = library.duplicate_groups(args.threshold)
        _warn_if_not_identified_by(library)
    if args.json:
        json.dump([[str(p.path) for p in group] for group in groups], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for number, group in enumerate(groups, start=1):
            print(f"group {number}: " + "  ".join(str(p.path) for p in group))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        rows = library.export_csv(args.out)
        _warn_if_not_identified_by(library)
    print(f"{args.out}: {rows} photos")
    return EXIT_OK


def _print_records(records: list[dict], as_json: bool, line) -> None:
    if as_json:
        json.dump(records, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for record in records:
            print(line(record))


def _model_download(args: argparse.Namespace) -> int:
    from birdid_app.core.download import DownloadError, download_published_model
    from birdid_app.core.model_store import ModelStore

    store = ModelStore()
    bar = ProgressPrinter(sys.stderr)
    try:
        model = download_published_model(store, cache_dir=args.cache_dir, progress=bar.update)
    except DownloadError as error:
        bar.finish()
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except KeyboardInterrupt:
        bar.finish()
        print("birdid: The download was interrupted; run `birdid model download` again to resume.", file=sys.stderr)
        return 130
    bar.finish()
    print(f"{model.name}: downloaded and verified ({model.path})")
    return EXIT_OK


def _model_import(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.model_store import ModelStore

    try:
        model = ModelStore().import_file(args.file)
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"{model.name}: imported ({model.trust_label}) to {model.path}")
    return EXIT_OK


def _model_list(args: argparse.Namespace) -> int:
    from birdid_app.core.model_store import ModelStore

    store = ModelStore()
    active = store.active()
    models = store.models()
    if not models:
        print("No model is installed: run `birdid model download` or `birdid model import FILE`.")
    for model in models:
        marker = "*" if active is not None and model.name == active.name else " "
        print(f"{marker} {model.name}  {model.size / 1e6:.1f} MB  {model.trust_label}  {model.path}")
    return EXIT_OK


def _model_verify(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.model_store import ModelStore

    store = ModelStore()
    try:
        models = [store.get(args.name)] if args.name else store.models()
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not models:
        print("birdid: No model is installed, so there is nothing to verify: run `birdid model download` "
              "or `birdid model import FILE`.", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    for model in models:
        if store.verify(model):
            state = "matches the published model" if model.verified else "unchanged since it was imported"
            print(f"{model.name}: OK, {state}")
        else:
            failed += 1
            print(f"{model.name}: FAILED, {model.path} is missing or changed; download or import it again")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _model_use(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.model_store import ModelStore

    try:
        model = ModelStore().set_active(args.name)
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{model.name} is now the active model ({model.trust_label})")
    return EXIT_OK


def _model_remove(args: argparse.Namespace) -> int:
    from birdid_app.core.errors import BirdidError
    from birdid_app.core.model_store import ModelStore

    store = ModelStore()
    try:
        model = store.remove(args.name)
    except BirdidError as error:
        print(f"birdid: {error}", file=sys.stderr)
        return EXIT_USAGE
    kept = "" if not model.path.exists() else f"; the file stays at {model.path} for other tools that use it"
    print(f"{model.name} removed{kept}")
    return EXIT_OK


class ProgressPrinter:
    """A progress bar redrawn in place on a terminal; a plain line every 10% elsewhere."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_tenth = -1
        self.drawn = False

    def update(self, progress) -> None:
        total = progress.total or 0
        fraction = progress.done / total if total else 0.0
        speed = progress.bytes_per_second / 1e6
        left = "" if progress.seconds_left is None else f", {_duration(progress.seconds_left)} left"
        text = f"{progress.done / 1e6:.1f} of {total / 1e6:.1f} MB, {speed:.1f} MB/s{left}"
        if self.tty:
            filled = int(fraction * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}  {text}   ")
            self.stream.flush()
            self.drawn = True
        elif int(fraction * 10) > self.last_tenth:
            self.last_tenth = int(fraction * 10)
            print(f"downloaded {fraction:.0%}: {text}", file=self.stream)

    def update_index(self, progress) -> None:
        """Indexing progress: photos done of total, photos per second, time left."""
        fraction = progress.done / progress.total if progress.total else 1.0
        left = "" if progress.seconds_left is None else f", {_duration(progress.seconds_left)} left"
        text = f"{progress.done} of {progress.total} photos, {progress.photos_per_second:.1f}/s{left}"
        if self.tty:
            self.stream.write(f"\r{fraction:4.0%}  {text}   ")
            self.stream.flush()
            self.drawn = True
        elif int(fraction * 10) > self.last_tenth:
            self.last_tenth = int(fraction * 10)
            print(f"indexed {fraction:.0%}: {text}", file=self.stream)

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


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
