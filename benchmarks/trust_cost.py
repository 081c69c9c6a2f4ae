"""What zooming on the bird and the how-far-to-trust signals cost, beside one identification.

The base model's architecture (Hiera AbsWin base, 707 species, 384x384) with random weights: the
cost is the architecture's, not the weights'. A 6000x4000 JPEG, decoded at the model's size for a
plain identification and at full resolution for the zoom, as the window and the CLI do.

    .venv/bin/python benchmarks/trust_cost.py [--precision fp32|bf16] [--repeats 5] [--library 10000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from birdid_app.core.insight import trust
from birdid_app.core.model.checkpoint import write_checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from machine import cpu_flags, machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))


def timed(call, repeats: int) -> float:
    """The median wall time of `call()` over `repeats` runs, after one warm-up run."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--library", type=int, default=10_000, help="library photos for the reference scores")
    args = parser.parse_args()
    print(machine_description())
    print(cpu_flags())

    from birdid_app.core.model.inference import Classifier
    from birdid_app.core.photos.photo import decode_photo

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_checkpoint(root / "base.pt", Hiera(BASE).eval(), [f"species {i}" for i in range(707)],
                         (0.5,) * 3, (0.5,) * 3)
        classifier = Classifier.from_file(root / "base.pt", device="cpu", precision=args.precision)
        rng = np.random.default_rng(0)
        photo = root / "big.jpg"
        Image.fromarray(rng.integers(0, 255, (4000, 6000, 3), dtype=np.uint8)).save(photo, quality=90)

        def identify():
            image = decode_photo(photo, draft_size=classifier.image_size)
            return classifier.identify_images([image], keep_stage_maps=False)

        (whole,) = identify()
        best = int(np.argmax(whole.probabilities))
        full = decode_photo(photo, draft_size=None)
        small = decode_photo(photo, draft_size=classifier.image_size)
        crop = full.crop((2000, 1000, 3000, 2000))
        rows = [
            ("identify (decode at model size + forward)", timed(identify, args.repeats)),
            ("decode at full resolution", timed(lambda: decode_photo(photo, draft_size=None), args.repeats)),
            ("Grad-CAM, stage 3 (forward + backward)", timed(
                lambda: trust.zoom_box_for(classifier, full, best), args.repeats)),
            ("identify the 1000x1000 crop", timed(
                lambda: classifier.identify_images([crop], keep_stage_maps=False), args.repeats)),
            ("zoom, all of it (decode, Grad-CAM, crop)", timed(
                lambda: trust.zoom_identify(classifier, [decode_photo(photo, draft_size=None)], ["p"]), args.repeats)),
            ("mirror and crops (3 views, one forward)", timed(
                lambda: trust.tta_agreement(classifier, small, best), args.repeats)),
        ]
        weight, bias = classifier.head_weights()
        reference = rng.normal(size=(min(args.library, trust.REFERENCE_SAMPLE), BASE.embedding_dim)).astype(np.float32)
        rows.append((f"energy of {len(reference):,} library photos", timed(
            lambda: trust.energy_scores(reference, weight, bias), args.repeats)))
        labelled = rng.normal(size=(2000, BASE.embedding_dim)).astype(np.float32)
        rows.append(("vote over 2,000 labelled photos", timed(
            lambda: trust.neighbour_vote("species 0", whole.embedding, np.arange(2000), labelled,
                                         ["species 0"] * 2000), args.repeats)))

        base = rows[0][1]
        print(f"\nbase model, {args.precision}, CPU, medians of {args.repeats}")
        print(f"{'':44} {'seconds':>8} {'x identify':>11}")
        for name, seconds in rows:
            print(f"{name:44} {seconds:8.3f} {seconds / base:10.2f}x")


if __name__ == "__main__":
    main()
