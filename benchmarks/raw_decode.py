"""Decoding a camera RAW file: by its embedded JPEG preview, beside half-size and full demosaics.

One 6000 x 4000 DNG (24 megapixels, 16-bit uncompressed Bayer data, written by pidng as in
tests/test_raw.py) with a 1600 x 1067 JPEG preview, and the same DNG without one. Each path is
decode_photo as the app calls it: the preview for the model's 384 x 384 input, a half-size
demosaic when there is no preview, a full demosaic for full resolution (draft_size=None).
Milliseconds per file are the median of --repeats runs, the file in the page cache.

Run: `.venv/bin/python benchmarks/raw_decode.py [--repeats 5]` (needs the test extra: pidng)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from birdid_app.core.photos.photo import decode_photo, decode_thumbnail
from machine import cpu_flags, machine_description  # benchmarks/machine.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_raw import write_dng  # noqa: E402  (tests/ holds the DNG writer the tests use)

SENSOR = (6000, 4000)
PREVIEW = (1600, 1067)


def median_ms(call, repeats: int) -> tuple[float, object]:
    result = call()  # once untimed: the file into the page cache, the libraries warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine_description())
    print(cpu_flags())
    with tempfile.TemporaryDirectory() as folder:
        previewed = write_dng(Path(folder) / "previewed.dng", preview=PREVIEW, sensor=SENSOR)
        plain = write_dng(Path(folder) / "plain.dng", sensor=SENSOR)
        print(f"DNG {SENSOR[0]}x{SENSOR[1]}, {previewed.stat().st_size / 1e6:.0f} MB, preview {PREVIEW[0]}x{PREVIEW[1]} JPEG")
        rows = [
            ("preview (model input, 384 px)", lambda: decode_photo(previewed)),
            ("preview (thumbnail, 256 px)", lambda: decode_thumbnail(previewed, 256)),
            ("half-size demosaic (no preview)", lambda: decode_photo(plain)),
            ("full demosaic (draft_size=None)", lambda: decode_photo(previewed, draft_size=None)),
        ]
        for name, call in rows:
            ms, image = median_ms(call, args.repeats)
            print(f"{name:34s} {ms:8.1f} ms/file   -> {image.width}x{image.height}")


if __name__ == "__main__":
    main()
