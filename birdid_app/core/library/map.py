"""A map of the whole library: every photo's embedding placed on a plane, alike photos together.

Coloured by the model's top species or by the person's own label, it shows mislabelled photos
(a point of one colour inside another's cluster) and look-alike species (clusters that touch) at
a glance. The layout is t-SNE (openTSNE: FFT-accelerated gradients and approximate nearest
neighbours, so 10,000 photos take seconds, not minutes) on the embeddings reduced to 50
principal components, seeded, so the same library gives the same map.

A layout is computed once and kept beside the library (`<library>.map-<model>.npz`) with the ids
and a digest of each embedding it was made from. Photos added or changed since are placed among
the kept points (each at the median of its nearest kept neighbours); removed ones leave; only
when more than a tenth of the library is new is it laid out afresh. A large library is laid out
on a fixed sample and the rest placed among it, so a million photos still get a map.

No Qt here: the window computes the map on a worker, and `birdid map` draws it to a PNG.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import FileProblem
from birdid_app.core.files import read_regular_file

if TYPE_CHECKING:
    from birdid_app.core.library import Library

log = logging.getLogger(__name__)

COLOUR_BY = ("species", "label")
PCA_COMPONENTS = 50  # t-SNE on 50 principal components: the usual reduction, and 20x less work on 1024-d
LAYOUT_SAMPLE = 50_000  # more photos than this: lay out a sample, place the rest among it
SEED = 0
# Fewer photos than this are laid out on one thread. An iteration on a few hundred is too short
# to share: the OpenMP threads mostly wait for each other, and beside any other busy process (the
# indexer, a test run) one thread not scheduled holds up the rest. 300 photos with torch loaded
# and one other busy process on 2 cores: 0.5 s on one thread, 2 to 20 s on two.
ONE_THREAD_BELOW = 1_000
CACHE_FORMAT = 1  # bumped when what is cached, or how it is computed, changes
# A kept map is 24 bytes a photo (id, digest, x and y): 1 GiB is some 40 million photos.
CACHE_LIMIT = 1 << 30
# The arrays of a kept map: name -> (dtype kinds allowed, dimensions).
_CACHE_ARRAYS = {"key": ("U", 0), "ids": ("iu", 1), "rows": ("iu", 1), "points": ("f", 2)}
_READ_ROWS = 20_000  # embeddings read from the library per step


class MapStopped(Exception):
    """The map was asked to stop (`should_stop()` said so) before it was done."""


@dataclass(frozen=True)
class LibraryMap:
    ids: np.ndarray  # [N] int64 photo ids, ascending
    points: np.ndarray  # [N, 2] float32 in 0..1, one scale for both axes, centred
    model: str | None  # the model whose embeddings these are


def map_cache_path(library_path: Path, model: str | None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model or "none")
    return Path(f"{library_path}.map-{safe}.npz")


# --- reading the library, and what was kept -------------------------------------------------

# Photos added or changed since the kept map, up to this share of the library (and this many), are
# placed among the kept points (each at the median of its nearest kept neighbours, by cosine)
# instead of laying the whole library out again: a new folder appears on the map in seconds, and
# the rest of the map does not move. More than that, and the map is laid out afresh.
PLACE_AT_MOST_SHARE = 0.1
PLACE_AT_MOST = 20_000
PLACE_NEIGHBOURS = 10
PLACE_ANCHORS = 50_000  # kept points new ones are compared with (a seeded sample beyond this)


def _cache_key(model: str | None) -> str:
    return f"{CACHE_FORMAT}:{model}:{PCA_COMPONENTS}:{LAYOUT_SAMPLE}"


def _library_embeddings(library: Library, should_stop: Callable[[], bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids [N] ascending, unit embeddings [N, d] float32, row digests [N] uint64) of the reading
    model's photos; a row's digest changes with any byte of its embedding."""
    index = library.vectors()
    ids = index.ids()
    vectors = np.empty((len(ids), index.dim), dtype=np.float32)
    for start in range(0, len(ids), _READ_ROWS):
        if should_stop():
            raise MapStopped
        chunk = index.vectors_of(ids[start : start + _READ_ROWS])
        vectors[start : start + len(chunk)] = chunk
    rows = np.fromiter(
        (int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") for row in vectors),
        dtype=np.uint64, count=len(ids),
    )
    return ids, vectors, rows


@dataclass(frozen=True)
class _Kept:
    ids: np.ndarray  # [K] int64 ascending
    rows: np.ndarray  # [K] uint64, the digests of the embeddings they were laid out from
    points: np.ndarray  # [K, 2] float32


class _CacheProblem(FileProblem):
    """A kept map that cannot be used; never shown, only logged."""


def _read_cache(path: Path, key: str) -> _Kept | None:
    """What `path` keeps for `key`; None for anything else, a missing or damaged file included
    (the map is made again, never an error).

    The file sits in the person's folder, where anything may have replaced it: it is read only
    as a regular file of at most CACHE_LIMIT bytes, and its arrays only where their headers agree
    with the bytes that are there (a header claiming 10^12 rows would otherwise be allocated).
    A file that fails is deleted, with one log line, so the next map replaces it."""
    if not os.path.lexists(path):
        return None
    try:
        arrays = _cache_arrays(read_regular_file(path, CACHE_LIMIT, "a kept map", _CacheProblem))
    except _CacheProblem as problem:
        _discard(path, problem.problem)
        return None
    except (ValueError, KeyError, EOFError, OSError, zipfile.BadZipFile) as error:
        _discard(path, str(error) or type(error).__name__)
        return None
    if str(arrays["key"]) != key:
        return None  # another format's or another layout's: replaced when this map is kept
    kept = _Kept(arrays["ids"].astype(np.int64), arrays["rows"].astype(np.uint64), arrays["points"].astype(np.float32))
    fits = kept.points.shape[1] == 2 and len(kept.ids) == len(kept.rows) == len(kept.points)
    if not fits or not bool(np.all(np.diff(kept.ids) > 0)) or not bool(np.isfinite(kept.points).all()):
        _discard(path, "its ids, digests and points do not fit together")
        return None
    return kept


def _cache_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a kept map (an uncompressed .npz), each checked against the bytes it has;
    raises ValueError (or zipfile's and numpy's own errors) saying what is wrong."""
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name, (kinds, dimensions) in _CACHE_ARRAYS.items():
            entry = archive.getinfo(f"{name}.npy")
            if entry.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"its {name} array is compressed, which birdid never writes")
            arrays[name] = _npy_array(archive.read(entry), name, kinds, dimensions)
    return arrays


def _npy_array(member: bytes, name: str, kinds: str, dimensions: int) -> np.ndarray:
    stream = io.BytesIO(member)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"its {name} array is in .npy format {version}")
    if dtype.hasobject or dtype.kind not in kinds or len(shape) != dimensions or any(side < 0 for side in shape):
        raise ValueError(f"its {name} array is {dtype} of shape {shape}")
    count, start = math.prod(shape), stream.tell()
    if count * dtype.itemsize != len(member) - start:
        raise ValueError(f"its {name} array claims shape {shape} but holds {len(member) - start} bytes")
    return np.frombuffer(member, dtype, count, start).reshape(shape, order="F" if fortran_order else "C")


def _discard(path: Path, problem: str) -> None:
    problem = problem[:1].lower() + problem[1:].rstrip(".")
    log.warning("The kept map %s cannot be used (%s); it is deleted and the map made again.", path, problem)
    try:
        path.unlink()
    except OSError:
        pass  # a read-only folder: the map is made again each time


def _write_cache(path: Path, key: str, ids: np.ndarray, rows: np.ndarray, points: np.ndarray) -> None:
    try:
        with atomic_write(path, "wb") as out:
            np.savez(out, key=np.array(key), ids=ids, rows=rows, points=points)
    except OSError:
        pass  # a read-only folder: the map is shown, and made again next time


def _still_kept(kept: _Kept, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found [N] bool: photo kept with the same embedding, where [N]: its row in `kept`)."""
    where = np.clip(np.searchsorted(kept.ids, ids), 0, max(len(kept.ids) - 1, 0))
    if not len(kept.ids):
        return np.zeros(len(ids), dtype=bool), where
    return (kept.ids[where] == ids) & (kept.rows[where] == rows), where


def cached_map(library: Library) -> LibraryMap | None:
    """The kept map, if it was made from exactly the library's current embeddings; never computes."""
    model = library.reading_model()
    ids, _, rows = _library_embeddings(library, lambda: False)
    kept = _read_cache(map_cache_path(library.path, model), _cache_key(model))
    if kept is None or len(kept.ids) != len(ids):
        return None
    found, where = _still_kept(kept, ids, rows)
    return LibraryMap(ids, kept.points[where], model) if found.all() else None


def library_map(library: Library, *, should_stop: Callable[[], bool] = lambda: False,
                on_stage: Callable[[str], None] | None = None, on_progress: Callable[[np.ndarray], None] | None = None,
                sample: int = LAYOUT_SAMPLE) -> LibraryMap:
    """The map of the library's photos by its reading model: kept; or the kept one with a few new
    photos placed among its points; or laid out afresh (`on_progress`: see `layout`; its points
    are in the order of the library's ids, ascending). Kept for next time."""
    say = on_stage or (lambda _text: None)
    model = library.reading_model()
    say(f"Reading {len(library.vectors()):,} embeddings")
    ids, vectors, rows = _library_embeddings(library, should_stop)
    path, key = map_cache_path(library.path, model), _cache_key(model)
    kept = _read_cache(path, key)
    points = None
    if kept is not None:
        found, where = _still_kept(kept, ids, rows)
        if found.all() and len(kept.ids) == len(ids):
            return LibraryMap(ids, kept.points[where], model)
        points = place_among(vectors, found, kept.points[where], should_stop=should_stop, on_stage=say)
    if points is None:
        points = layout(vectors, should_stop=should_stop, on_stage=say, on_progress=on_progress, sample=sample)
    _write_cache(path, key, ids, rows, points)
    return LibraryMap(ids, points, model)


def place_among(vectors: np.ndarray, found: np.ndarray, found_points: np.ndarray, *,
                should_stop: Callable[[], bool] = lambda: False,
                on_stage: Callable[[str], None] | None = None) -> np.ndarray | None:
    """Points [N, 2] for unit vectors [N, d] of which `found` [N] already have a place (`found_points`
    [N, 2], read where `found`): each other one at the median of its PLACE_NEIGHBOURS most alike
    placed ones. None when too many are new for that to keep the map truthful."""
    new = np.flatnonzero(~found)
    placed = np.flatnonzero(found)
    if len(new) > min(PLACE_AT_MOST_SHARE * len(found), PLACE_AT_MOST) or len(placed) < 2 * PLACE_NEIGHBOURS:
        return None
    (on_stage or (lambda _text: None))(f"Placing {len(new):,} new photos among {len(placed):,}")
    points = np.where(found[:, None], found_points, 0).astype(np.float32)
    anchors = placed
    if len(anchors) > PLACE_ANCHORS:
        anchors = np.sort(np.random.default_rng(SEED).choice(placed, size=PLACE_ANCHORS, replace=False))
    anchor_vectors, anchor_points = vectors[anchors], points[anchors]
    step = max(1, (1 << 24) // len(anchors))  # new rows per product: at most 16M similarities (64 MB)
    for start in range(0, len(new), step):
        if should_stop():
            raise MapStopped
        rows = new[start : start + step]
        similarity = vectors[rows] @ anchor_vectors.T  # [r, A]
        nearest = np.argpartition(-similarity, PLACE_NEIGHBOURS - 1, axis=1)[:, :PLACE_NEIGHBOURS]  # [r, k]
        points[rows] = np.median(anchor_points[nearest], axis=1)
    return points


# --- the layout ------------------------------------------------------------------------------


def principal_components(vectors: np.ndarray, components: int = PCA_COMPONENTS) -> np.ndarray:
    """[N, d] -> [N, min(components, d, N)] float32: the rows projected on their top principal
    axes (eigenvectors of the d x d covariance, in float64: faster than an SVD of the rows)."""
    centred = vectors - vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    covariance = centred.T.astype(np.float64) @ centred.astype(np.float64)  # [d, d]
    values, axes = np.linalg.eigh(covariance)  # ascending
    keep = min(components, vectors.shape[1], max(vectors.shape[0] - 1, 1))
    top = axes[:, ::-1][:, :keep]
    # Fix each axis's sign (eigh leaves it arbitrary) so the same rows always give the same map.
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(keep)])
    return (centred @ top.astype(np.float32)).astype(np.float32)


def layout(vectors: np.ndarray, *, should_stop: Callable[[], bool] = lambda: False,
           on_stage: Callable[[str], None] | None = None, on_progress: Callable[[np.ndarray], None] | None = None,
           sample: int = LAYOUT_SAMPLE, seed: int = SEED) -> np.ndarray:
    """Unit embeddings [N, d] -> points [N, 2] in 0..1 (see `fit_square`). t-SNE on the 50
    principal components; beyond `sample` rows, t-SNE on a seeded sample and the others placed
    among it. Fewer than 4 rows need no t-SNE: they are put on a line.

    `on_progress` gets the layout so far, [N, 2] in 0..1, every 25 iterations, so a window can
    show the map taking shape (not for a sampled layout, which places most rows at the end)."""
    say = on_stage or (lambda _text: None)
    count = vectors.shape[0]
    if count < 4:
        return fit_square(np.stack([np.arange(count, dtype=np.float32), np.zeros(count, np.float32)], axis=1))
    say(f"Reducing {count:,} embeddings to {PCA_COMPONENTS} dimensions")
    open_tsne = _open_tsne()
    reduced = principal_components(vectors)
    if should_stop():
        raise MapStopped
    fitted_rows = np.arange(count)
    if count > sample:
        fitted_rows = np.sort(np.random.default_rng(seed).choice(count, size=sample, replace=False))
    say(f"Laying out {len(fitted_rows):,} photos")

    show_progress = on_progress is not None and len(fitted_rows) == count

    def stop_check(iteration, error, embedding) -> bool:  # openTSNE stops when a callback returns True
        if show_progress and on_progress is not None and not should_stop():
            on_progress(fit_square(np.asarray(embedding)))
        return should_stop()

    tsne = open_tsne.TSNE(
        n_components=2,
        perplexity=min(30.0, (len(fitted_rows) - 1) / 3),
        # Euclidean distance between unit vectors is a function of their cosine (|a - b|^2 = 2 - 2 cos),
        # the similarity the app searches by; the principal components keep nearly all of it.
        metric="euclidean",
        random_state=seed,
        n_jobs=1 if len(fitted_rows) < ONE_THREAD_BELOW else -1,
        callbacks=stop_check,
        callbacks_every_iters=25,
        verbose=False,
    )
    try:
        embedding = tsne.fit(reduced[fitted_rows])
    except open_tsne.OptimizationInterrupt:
        raise MapStopped from None
    if should_stop():
        raise MapStopped
    points = np.empty((count, 2), dtype=np.float32)
    points[fitted_rows] = np.asarray(embedding)
    if len(fitted_rows) < count:
        rest = np.setdiff1d(np.arange(count), fitted_rows)
        say(f"Placing {len(rest):,} more photos among them")
        for start in range(0, len(rest), 100_000):
            if should_stop():
                raise MapStopped
            chunk = rest[start : start + 100_000]
            # Each at the median of its 10 nearest laid-out neighbours: no optimisation, seconds a million.
            points[chunk] = np.asarray(embedding.prepare_partial(reduced[chunk], initialization="median", k=10))
    return fit_square(points)


def _open_tsne():
    """openTSNE's module of TSNE and OptimizationInterrupt, imported when a map is first made
    (scikit-learn and scipy come with it: about a second), its OpenMP threads set to sleep while
    they wait.

    By default they spin, and beside any other busy process (the indexer, a test run) spinning
    threads take the cores from the ones with work: 10,000 photos took 42 to 46 s instead of 30 to
    34 s with other work on the 2 cores. openTSNE brings its own OpenMP runtime, which reads the
    setting once, as it loads; the variable is put back at once, so a runtime loaded after keeps
    its own way. Where torch is loaded first (the window), openTSNE's calls go to torch's runtime,
    which this cannot change: there, ONE_THREAD_BELOW keeps small maps quick."""
    unset = "OMP_WAIT_POLICY" not in os.environ  # a setting of the person's own is kept
    if unset:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from openTSNE import tsne
    finally:
        if unset:
            os.environ.pop("OMP_WAIT_POLICY", None)
    return tsne


def fit_square(points: np.ndarray) -> np.ndarray:
    """[N, 2] -> the same shape scaled by one factor into 0..1 and centred on (0.5, 0.5)."""
    if len(points) == 0:
        return points.astype(np.float32)
    low, high = points.min(axis=0), points.max(axis=0)
    span = float((high - low).max())
    scaled = (points - (low + high) / 2) / (span if span > 0 else 1.0) + 0.5
    return scaled.astype(np.float32)


# --- colours and the picture -----------------------------------------------------------------


def point_keys(library: Library, library_map: LibraryMap, by: str) -> list[str | None]:
    """Per point, what colours it: the reading model's top species ("species") or the person's
    label ("label", None where there is none)."""
    if by not in COLOUR_BY:
        raise ValueError(f"colour by one of {', '.join(COLOUR_BY)}, not {by!r}")
    if by == "label":
        labels = library.labels()
        return [labels[pid][0] if pid in labels else None for pid in library_map.ids.tolist()]
    top = library.top_species(library_map.model)
    return [top.get(pid) for pid in library_map.ids.tolist()]


# Twenty colours far apart for the most common keys (Kelly's colours of maximum contrast, less
# white, black and the greys); the rest get golden-angle hues, darker, so they still differ.
_DISTINCT = [
    (230, 159, 0), (0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
    (240, 228, 66), (128, 62, 117), (255, 104, 0), (166, 189, 215), (193, 0, 32), (206, 162, 98),
    (0, 125, 52), (246, 118, 142), (0, 83, 138), (255, 122, 92), (83, 55, 122), (255, 142, 0),
    (179, 40, 81), (147, 170, 0),
]
NO_KEY_COLOUR = (150, 150, 150)


def palette(keys: Sequence[str | None]) -> dict[str, tuple[int, int, int]]:
    """A colour per key: the most common keys (ties by name) first get the most distinct colours.
    The same keys give the same colours."""
    counts = Counter(key for key in keys if key is not None)
    ordered = sorted(counts, key=lambda key: (-counts[key], key))
    colours: dict[str, tuple[int, int, int]] = {}
    for rank, key in enumerate(ordered):
        if rank < len(_DISTINCT):
            colours[key] = _DISTINCT[rank]
        else:
            import colorsys

            hue = (rank * 0.618033988749895) % 1.0
            r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.55 + 0.3 * ((rank // 7) % 2))
            colours[key] = (round(r * 255), round(g * 255), round(b * 255))
    return colours


def draw_map(library_map: LibraryMap, keys: Sequence[str | None], *, size: tuple[int, int] = (1600, 1200),
             legend: int = 12, title: str | None = None) -> Image.Image:
    """The map as a picture: a point per photo in its key's colour (grey without one), the
    `legend` most common keys with their counts, and a title line."""
    width, height = size
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    # The size kept apart: a Pillow without FreeType gives a bitmap font that has no .size.
    font_size = max(12, height // 60)
    font = ImageFont.load_default(size=font_size)
    counts = Counter(key for key in keys if key is not None)
    colours = palette(keys)
    line = int(font_size * 1.4)
    legend_width = min(width // 3, int(font_size * 18))
    top = line * 2
    area = (font_size, top, width - legend_width - font_size, height - font_size)  # l, t, r, b
    side = min(area[2] - area[0], area[3] - area[1])
    radius = max(1.5, min(6.0, side / 250 * (1000 / max(len(keys), 1)) ** 0.25))
    # Points without a key first, so the coloured ones are drawn over them.
    def drawn_before(i: int) -> tuple[bool, int]:
        key = keys[i]
        return (False, 0) if key is None else (True, -counts[key])

    order = sorted(range(len(keys)), key=drawn_before)
    for i in order:
        x = area[0] + float(library_map.points[i, 0]) * side
        y = area[1] + float(library_map.points[i, 1]) * side
        key = keys[i]
        colour = colours.get(key, NO_KEY_COLOUR) if key is not None else NO_KEY_COLOUR
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    draw.text((font_size, int(font_size * 0.5)), title or f"{len(keys):,} photos · {library_map.model}",
              fill=(20, 20, 20), font=font)
    x0, y = width - legend_width, top
    shown = sorted(counts, key=lambda key: (-counts[key], key))[:legend]
    for key in shown:
        draw.rectangle([x0, y + line * 0.2, x0 + line * 0.6, y + line * 0.8], fill=colours[key])
        draw.text((x0 + line, y), f"{key} ({counts[key]:,})", fill=(20, 20, 20), font=font)
        y += line
    others = sum(counts.values()) - sum(counts[key] for key in shown)
    unkeyed = sum(1 for key in keys if key is None)
    if others:
        draw.text((x0 + line, y), f"{len(counts) - len(shown)} more ({others:,})", fill=(90, 90, 90), font=font)
        y += line
    if unkeyed:
        draw.rectangle([x0, y + line * 0.2, x0 + line * 0.6, y + line * 0.8], fill=NO_KEY_COLOUR)
        draw.text((x0 + line, y), f"none ({unkeyed:,})", fill=(90, 90, 90), font=font)
    return image
