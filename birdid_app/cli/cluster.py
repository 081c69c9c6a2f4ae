"""Archives beyond one machine: `birdid index --engine ray` and `birdid library import`.

Both need the `cluster` extra (`pip install "birdid[cluster]"`: Ray Data and pyarrow); without it
they say so in one sentence. Nothing else in birdid imports Ray or pyarrow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdid_app.cli.common import EXIT_OK, EXIT_SOME_FAILED, Failure, choose_model, model_option

CLUSTER_EXTRA = 'This needs the cluster extra: pip install "birdid[cluster]"'


def add_engine_options(index: argparse.ArgumentParser) -> None:
    """`birdid index`'s options for running on Ray."""
    ray = index.add_argument_group("on a Ray cluster (the cluster extra)")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: this computer, into the library (default); ray: a Ray cluster, into --shards")
    ray.add_argument("--shards", type=Path, metavar="DIR", help="where --engine ray writes its Parquet shards")
    ray.add_argument("--address", metavar="ADDRESS",
                     help="the Ray cluster to join (default: the one in RAY_ADDRESS, else a new local one)")
    ray.add_argument("--num-gpus-per-worker", type=float, default=0.0, metavar="G",
                     help="GPUs each model worker takes (default 0: the model runs on CPUs)")
    ray.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                     help="CPUs (torch threads) each model worker takes (default 1)")
    ray.add_argument("--workers", type=int, metavar="N",
                     help="at most N model workers (default: as many as the cluster's GPUs, or CPUs, hold)")


def add_commands(commands) -> None:
    library = commands.add_parser("library", help="the library file itself: import shards indexed on a cluster")
    actions = library.add_subparsers(dest="action", metavar="ACTION", required=True)
    imported = actions.add_parser(
        "import", parents=[model_option()], help="merge Parquet shards from `birdid index --engine ray` into the library"
    )
    imported.add_argument("--library", type=Path, metavar="PATH", help="the library file (default: yours)")
    imported.add_argument("--folder", dest="folders", action="append", type=Path, default=[], metavar="FOLDER",
                          help="a folder the shards' photos may be in, added to the library when they are "
                               "(repeat for more); rows outside the library's folders and these are refused")
    imported.add_argument("shards", nargs="+", type=Path, metavar="SHARDS", help="shard files, or folders of them")
    imported.set_defaults(run=import_shards)


def _cluster_modules():
    try:
        from birdid_app import cluster
        from birdid_app.core.library import shards
    except ImportError as error:
        raise Failure(f"{CLUSTER_EXTRA} ({error}).") from None
    return cluster, shards


def index_on_ray(args: argparse.Namespace) -> int:
    """`birdid index --engine ray --shards DIR FOLDER...`."""
    if args.shards is None:
        raise Failure("--engine ray writes shards: name their folder with --shards DIR.")
    if not args.folders:
        raise Failure("--engine ray indexes the folders named: name at least one.")
    cluster, _ = _cluster_modules()
    from birdid_app.core.library import Library, default_library_path
    from birdid_app.core.model.checkpoint import read_checkpoint

    chosen = choose_model(args.model)
    model_name = chosen.info["name"]
    checkpoint = read_checkpoint(chosen.path, check_crc=not chosen.crc_checked)  # checked once, here
    library_path = args.library or default_library_path()
    known = {}
    if library_path.exists():  # what the library holds needs no work either
        with Library(library_path, model=model_name, create=False) as library:
            known = library.known(model_name)

    def on_plan(scanned: int, done: int, todo: int) -> None:
        print(f"{scanned} photos found: {done} already in the shards or the library, {todo} to identify",
              file=sys.stderr, flush=True)

    summary = cluster.run_ray_index(
        [folder.resolve() for folder in args.folders], args.shards, chosen.path, model_name, checkpoint.image_size,
        address=args.address, num_gpus_per_worker=args.num_gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
        workers=args.workers,
        device="cpu" if args.device == "auto" else args.device,
        precision="fp32" if args.precision == "auto" else args.precision,
        library_known=known, on_plan=on_plan,
    )
    for why in summary.skipped_shards:
        print(f"birdid: {why}", file=sys.stderr)
    print(f"wrote {summary.written} photos to shards in {args.shards}; import them with "
          f"`birdid library import {args.shards}`")
    return EXIT_OK


def import_shards(args: argparse.Namespace) -> int:
    _, shards = _cluster_modules()
    from birdid_app.core.library import Library

    files = shards.shard_files(args.shards)
    if not files:
        raise Failure(f"No shards (.parquet files) in {', '.join(str(p) for p in args.shards)}.")
    from birdid_app.core.model.checkpoint import read_checkpoint

    chosen = choose_model(args.model)
    model_name = chosen.info["name"]
    checkpoint = read_checkpoint(chosen.path, check_crc=not chosen.crc_checked)
    with Library(args.library, model=model_name) as library:
        summary = shards.import_shards(library, files, model_name, species_names=checkpoint.class_names,
                                       folders=args.folders, embedding_dim=checkpoint.config.embedding_dim)
        for why in summary.sentences():
            print(f"birdid: {why}", file=sys.stderr)
        print(f"imported {summary.imported} photos ({summary.stored.failed} could not be read), "
              f"{summary.unchanged} unchanged; the library holds {library.count()}")
    return EXIT_SOME_FAILED if summary.refused_anything else EXIT_OK
