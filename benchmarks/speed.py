"""Identification speed: birdid's forward in each precision mode beside Birder's reference, and the
end-to-end path from a camera-size JPEG to ranked species, all in one run, same weights, same photos.

For every mode faster than fp32 it checks agreement with fp32 on the test photos: the embedding's
cosine similarity must be at least 0.999 and the top-5 species the same (the classifier is scaled
so random weights give confident, separated logits, as a trained model's are).

Run: `.venv/bin/python benchmarks/speed.py [--repeats 7]`
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from birdid_app.core.model.checkpoint import Checkpoint
from birdid_app.core.model.hiera import Hiera, HieraConfig
from birdid_app.core.model.inference import Classifier
from birdid_app.core.model.preprocess import to_model_input
from machine import machine_description  # benchmarks/machine.py

BASE = HieraConfig(embed_dim=96, depths=(2, 3, 16, 3), num_heads=1, num_classes=707, image_size=(384, 384))
RGB = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
MIN_COSINE = 0.999


def reference_model(state: dict) -> torch.nn.Module:
    from birder.net.hiera import Hiera as ReferenceHiera

    config = {"depths": [2, 3, 16, 3], "embed_dim": 96, "num_heads": 1, "abs_win_pos_embed": True, "drop_path_rate": 0.0}
    model = ReferenceHiera(3, 707, config=config, size=(384, 384)).eval()
    model.load_state_dict(state)
    return model


def camera_jpeg(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    image = small.resize((4000, 3000), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, 3500, 2))
        draw.ellipse([x, y % 2600, x + 500, y % 2600 + 400], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    image.save(path, quality=90)
    return path


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = Hiera(BASE).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(400)  # confident, separated logits from random weights
    state = model.state_dict()
    checkpoint = Checkpoint(BASE, state, [f"species {i}" for i in range(707)], *RGB)
    reference = reference_model(state)

    with tempfile.TemporaryDirectory() as scratch:
        photos = [camera_jpeg(Path(scratch) / f"IMG_{i}.jpg", i) for i in range(4)]
        with Image.open(photos[0]) as first:
            image = first.convert("RGB")
        one = to_model_input(image, (384, 384), *RGB)[None]  # [1, 3, 384, 384]

        rows: list[tuple[str, float]] = []
        with torch.inference_mode():
            rows.append(("birder reference, fp32", median_seconds(lambda: reference(one), args.repeats)))
        classifiers = {p: Classifier(checkpoint, device="cpu", precision=p) for p in ("fp32", "bf16", "fp16")}
        for precision, classifier in classifiers.items():
            batch = one.to(classifier.dtype)
            with torch.inference_mode():
                rows.append((f"birdid forward, {precision}", median_seconds(lambda c=classifier, b=batch: c.model(b), args.repeats)))

        # End to end: JPEG file -> ranked species. Birder's path: open with PIL, its transform, its forward.
        import birder
        from birder.inference.classification import infer_image

        transform = birder.classification_transform((384, 384), {"mean": list(RGB[0]), "std": list(RGB[1])})

        def birder_end_to_end():
            # As Birder's own inference scripts run it: under inference_mode, from a PIL image.
            with torch.inference_mode(), Image.open(photos[0]) as opened:
                return infer_image(reference, opened.convert("RGB"), transform)

        rows.append(("birder infer_image, JPEG to probabilities", median_seconds(birder_end_to_end, args.repeats)))
        for precision in ("fp32", "bf16"):
            classifier = classifiers[precision]
            rows.append((
                f"birdid identify_files, JPEG to ranked species, {precision}",
                median_seconds(lambda c=classifier: c.identify_files([photos[0]])[0].ranked(5), args.repeats),
            ))

        # Agreement of the faster modes with fp32, on every test photo.
        exact = classifiers["fp32"].identify_files(photos)
        agreement = {}
        for precision in ("bf16", "fp16"):
            results = classifiers[precision].identify_files(photos)
            cosines = [
                float(a.embedding @ b.embedding / np.linalg.norm(a.embedding) / np.linalg.norm(b.embedding))
                for a, b in zip(exact, results, strict=True)
            ]
            same_top5 = all(
                [s.name for s in a.ranked(5)] == [s.name for s in b.ranked(5)] for a, b in zip(exact, results, strict=True)
            )
            agreement[precision] = (min(cosines), same_top5)

    reference_seconds = rows[0][1]
    print(f"machine: {machine_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"{'what':<52} {'median s':>9} {'vs reference':>13}")
    for name, seconds in rows:
        print(f"{name:<52} {seconds:>9.3f} {seconds / reference_seconds:>12.2f}x")
    for precision, (cosine, same_top5) in agreement.items():
        verdict = "passes" if cosine >= MIN_COSINE and same_top5 else "FAILS"
        print(f"agreement with fp32, {precision}: min embedding cosine {cosine:.5f}, "
              f"top-5 {'identical' if same_top5 else 'different'} on 4 photos: {verdict}")


if __name__ == "__main__":
    main()
