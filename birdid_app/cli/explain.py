"""`birdid explain`: what the model sees in a photo, drawn over it as a PNG, pixel for pixel what
the window's "Export blended" writes (both go through core.explain)."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdid_app.cli.common import EXIT_OK, Failure, fraction, load_classifier, model_option, region, running_options
from birdid_app.core import options

MODE_USAGE = "choose mean, pca, channel:K, cam or cam:SPECIES"


def add_commands(commands) -> None:
    explain = commands.add_parser(
        "explain", parents=[model_option(), running_options()], help="draw what the model sees in a photo, as a PNG"
    )
    explain.add_argument("photo", type=Path, metavar="PHOTO")
    explain.add_argument("--stage", type=int, choices=options.STAGES, default=options.DEFAULT_STAGE,
                         help="1 (fine) to 4 (coarse)")
    explain.add_argument(
        "--mode", default=options.DEFAULT_OVERLAY_MODE, metavar="MODE",
        help="mean, pca, channel:K (channel number K), cam (the top species) or cam:SPECIES "
        f"(default {options.DEFAULT_OVERLAY_MODE})",
    )
    explain.add_argument("--out", type=Path, required=True, metavar="FILE.png")
    explain.add_argument("--region", type=region, metavar="X,Y,W,H", help="a region of the photo, in its pixels")
    explain.add_argument("--opacity", type=fraction, default=options.DEFAULT_OPACITY,
                         help=f"of the overlay, 0 to 1 (default {options.DEFAULT_OPACITY})")
    explain.add_argument("--colormap", choices=options.COLORMAPS, default=options.DEFAULT_COLORMAP)
    explain.add_argument("--max-size", type=int, default=1600, metavar="PIXELS",
                         help="longest side of the picture written (default 1600; 0: the photo's own size)")
    explain.set_defaults(run=explain_photo)


def explain_photo(args: argparse.Namespace) -> int:
    from birdid_app.core.insight import explain
    from birdid_app.core.photos.photo import crop_region, decode_photo

    view, colon, argument = args.mode.partition(":")
    known = view in options.OVERLAY_MODES and (
        (view == "channel" and argument.isdigit()) or (view == "cam") or (view in ("mean", "pca") and not colon)
    )
    if not known:
        raise Failure(f"--mode {args.mode!r}: {MODE_USAGE}")
    classifier, _ = load_classifier(args)
    try:
        # What the model looks at, decoded as the window decodes it, so both draw the same maps;
        # decoded (and reduced) before the full-size photo, so two full-size copies never meet.
        reduced = None if args.region else decode_photo(args.photo, draft_size=classifier.image_size)
        photo = decode_photo(args.photo, draft_size=None)  # upright, full size: what a person sees
        subject = crop_region(photo, args.region) if reduced is None else reduced
    except ValueError as error:
        raise Failure(f"--region: {error}") from None

    # Grad-CAM makes its own pass; the first is then only for the best match's name.
    (identification,) = classifier.identify_images([subject], [str(args.photo)], keep_stage_maps=view != "cam")
    best = identification.ranked(1)[0]
    what = f"stage {args.stage}, {view}"
    try:
        if view == "cam":
            class_index = explain.species_index(classifier.class_names, argument or best.name)
            values = explain.cam_for(classifier, subject, class_index, args.stage)
            what += f" for {classifier.class_names[class_index]}"
        else:
            channel = int(argument) if view == "channel" else None
            values = explain.overlay_values(identification.stage_maps, args.stage, view, channel=channel).values
    except ValueError as error:
        raise Failure(f"--mode {args.mode}: {error}") from None

    picture = explain.render_picture(photo, values, args.opacity, args.colormap, args.region, args.max_size)
    del photo  # the full-size photo is not needed while the picture is written
    explain.save_png(picture, args.out)
    print(f"{args.out}: {what} over {args.photo} (best match: {best.name}, {best.probability:.0%})")
    return EXIT_OK
