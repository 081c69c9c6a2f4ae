"""Near-duplicate and burst groups of photo embeddings, exact, without an all-pairs scan.

Both take float32 unit rows (as VectorIndex stores them) and return groups of ids: connected
components of a graph whose edges are the pairs that are "alike". A pair's cosine is decided in
float64 from the float32 rows (`pair_cosines`), so the answer does not depend on how a BLAS
ordered its sums, and a pair is linked when that cosine is at least threshold - LINK_TOLERANCE.

The tolerance is the deterministic rule for pairs at the threshold itself: a row normalised in
float32 has a squared length of 1 give or take ~5e-7 (measured over 200k rows), so two copies
of one photo have a cosine just under 1, which a plain `>= 1.00` would split by chance; with
LINK_TOLERANCE = 1e-6 copies are always linked at 1.00. An exact float32 scan
(VectorIndex.near_duplicate_groups) can only disagree on a pair whose cosine lies within ~1e-6
of the threshold (float32 rounding of its sums); the spin box and the command line take two
decimals, so no one means a threshold that fine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

# A pair is linked when its float64 cosine is >= threshold - LINK_TOLERANCE (see the module's docstring).
LINK_TOLERANCE = 1e-6
# Default gap between two frames of a burst, in seconds, and how alike they must be (cosine).
BURST_SECONDS = 2.0
BURST_THRESHOLD = 0.85
# Below this many rows the clustering costs more than it saves: one blocked scan.
_CLUSTER_MIN_ROWS = 4096
_BLOCK = 2048  # rows per side of one tile of an exact product: 16 MB of float32 scores
_MAX_CLUSTERS = 1024
_ROWS_PER_CLUSTER = 64  # K = N / 64 centres, at most _MAX_CLUSTERS
_CORE_ANGLE = math.acos(0.5)  # rows farther from their centre are given centres of their own
_ROWS_PER_LOOSE_CLUSTER = 16
_SAMPLE_ROWS = 16_384  # rows the k-means iterations run on
_KMEANS_ITERATIONS = 4
_CHUNK_ROWS = 8192  # rows scored against every centre at once (8192 x 1024 x 4 bytes: 32 MB)
_VISITOR_CHUNK = 256  # visitors of one cluster compared at once with the members they can reach
_RESCORE_PAIRS = 4096  # candidate pairs scored again in float64 per step: 24 MB a side, reused (larger steps page-fault fresh memory)


def dot_error_bound(dim: int) -> float:
    """A bound on |float32 dot - exact dot| for two rows of length <= 1 + 1e-6 in `dim` dimensions,
    whatever the order of the sums: gamma_dim = dim * 2**-24 / (1 - dim * 2**-24) (Higham, Accuracy
    and Stability of Numerical Algorithms, 3.1), taken twice, plus 1e-5 for the rows' lengths."""
    unit = 2.0**-24
    return 2 * dim * unit / (1 - dim * unit) + 1e-5


def bfloat16_error_bound(dim: int) -> float:
    """A bound on |bfloat16 product - exact dot| for two rows of length <= 1 + 1e-6: each input
    rounded to bfloat16 (8 significant bits, u = 2**-8) moves x_i y_i by at most (2u + u^2)|x_i y_i|,
    so the sum by (2u + u^2)|x||y|; the float32 accumulation adds dot_error_bound; rounding the
    result (|s| <= (1 + u)^2) to bfloat16 adds u (1 + u)^2. About 0.012 at 768 dimensions."""
    unit = 2.0**-8
    return (2 * unit + unit**2) * 1.00001 + dot_error_bound(dim) * (1 + unit) ** 2 + unit * (1 + unit) ** 2


def pair_cosines(vectors: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """The dot product of rows_a[i] and rows_b[i] of `vectors` [N, d], in float64 [n]: the
    rounding of 768 products of float32 numbers is ~1e-13, so this is the cosine as the rows have it."""
    out = np.empty(rows_a.shape[0], dtype=np.float64)
    for start in range(0, rows_a.shape[0], _RESCORE_PAIRS):
        stop = start + _RESCORE_PAIRS
        a = vectors[rows_a[start:stop]].astype(np.float64)
        b = vectors[rows_b[start:stop]].astype(np.float64)
        out[start:stop] = np.einsum("ij,ij->i", a, b)
    return out


def near_duplicate_groups(ids: np.ndarray | Sequence[int], vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of ids linked by cosine >= `threshold` (within LINK_TOLERANCE), each sorted, groups
    sorted by first id; ids with no near duplicate left out. A group is a connected component:
    a and c share one when a~b and b~c. `vectors` [N, d] are float32 unit rows, `ids` [N] distinct.

    How, and why nothing is missed. The rows are clustered (a few spherical k-means steps on a
    sample: K unit centres c); each row belongs to the centre it is most alike, and rho_B is the
    largest angle between a member of cluster B and c_B. Angles between directions obey the
    triangle inequality, so if x (of cluster A < B) and y (of B) are linked, at an angle
    <= theta = arccos(threshold - tolerance), then angle(x, c_B) <= angle(x, y) + angle(y, c_B)
    <= theta + rho_B, and angle(y, c_B) >= angle(x, c_B) - theta. So cluster B is compared, by
    blocked products, with its own members and with the rows of lower clusters within
    theta + rho_B of c_B (each only with the members of B at least angle(x, c_B) - theta from
    c_B); every other pair is proven apart. Products run in bfloat16 where this CPU does that
    faster than float32 (avx512_bf16, AMX), else in float32; every angle is taken from such a
    product widened by its proven error bound (`bfloat16_error_bound`, `dot_error_bound`), and
    every pair whose product passes threshold - tolerance - that bound is scored again in
    float64, which decides. Which centres k-means finds changes the time taken, never the answer;
    on rows with no clusters at all (random directions) every cluster is compared with every row:
    the all-pairs scan plus the clustering.
    """
    ids = np.asarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count = ids.shape[0]
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise ValueError(f"Got {count} ids for vectors of shape {vectors.shape}; they must pair up.")
    if count < 2:
        return []
    link = float(threshold) - LINK_TOLERANCE
    if count < _CLUSTER_MIN_ROWS:
        products = _Products(vectors, low_precision=False)
        pairs = [products.pairs(np.arange(count), np.arange(count), link - products.error, same=True)]
    else:
        pairs = list(_clustered_pairs(_Products(vectors), link))
    rows_a = np.concatenate([a for a, _ in pairs]) if pairs else np.empty(0, np.int64)
    rows_b = np.concatenate([b for _, b in pairs]) if pairs else np.empty(0, np.int64)
    linked = pair_cosines(vectors, rows_a, rows_b) >= link
    return _groups(ids, rows_a[linked], rows_b[linked])


_BFLOAT16_FASTER: bool | None = None  # decided once per process: see _bfloat16_is_faster


def _bfloat16_is_faster() -> bool:
    """Whether to multiply in bfloat16: where the CPU does it in hardware (avx512_bf16 or
    amx_bf16; elsewhere torch emulates it, slower than float32), and torch's products are
    accumulated in float32 (4096 ones sum to 4096, where a bfloat16 sum stops at 256)."""
    global _BFLOAT16_FASTER
    if _BFLOAT16_FASTER is None:
        _BFLOAT16_FASTER = False
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
                flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
        except OSError:
            flags = []
        if "avx512_bf16" in flags or "amx_bf16" in flags:
            try:
                import torch
            except ImportError:
                return False
            ones = torch.ones(1, 4096, dtype=torch.bfloat16)
            _BFLOAT16_FASTER = float((ones @ ones.T).item()) == 4096.0
    return _BFLOAT16_FASTER


class _Products:
    """Matrix products of rows of `vectors`, in bfloat16 (torch) or float32 (numpy), and `error`,
    a proven bound on how far each product is from the exact dot product."""

    def __init__(self, vectors: np.ndarray, low_precision: bool | None = None) -> None:
        self.vectors = vectors
        self.low = _bfloat16_is_faster() if low_precision is None else low_precision
        if self.low:
            import torch

            self.torch = torch
            self.half = torch.from_numpy(vectors).to(torch.bfloat16)
            self.half_bits = self.half.view(torch.int16).numpy()  # the same memory, for numpy
            self.error = bfloat16_error_bound(vectors.shape[1])
        else:
            self.error = dot_error_bound(vectors.shape[1])

    def scores(self, start: int, stop: int, centres: np.ndarray) -> np.ndarray:
        """float32 [stop - start, K]: rows start..stop against `centres` [K, d] (unit rows)."""
        if not self.low:
            return self.vectors[start:stop] @ centres.T
        centres_half = self.torch.from_numpy(centres).to(self.torch.bfloat16)
        return (self.half[start:stop] @ centres_half.T).float().numpy()

    def sample_scores(self, rows: np.ndarray, centres: np.ndarray) -> np.ndarray:
        if not self.low:
            return self.vectors[rows] @ centres.T
        centres_half = self.torch.from_numpy(centres).to(self.torch.bfloat16)
        return (self._rows(rows) @ centres_half.T).float().numpy()

    def pairs(self, rows_a: np.ndarray, rows_b: np.ndarray, cut: float, *, same: bool) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (rows_a[i], rows_b[j]) whose product is >= `cut`, tile by tile; with `same`
        (rows_a is rows_b) each pair once and no row with itself."""
        found_a, found_b = [], []
        for top in range(0, rows_a.shape[0], _BLOCK):
            block_a = rows_a[top : top + _BLOCK]
            side_a = self._rows(block_a)
            for left in range(top if same else 0, rows_b.shape[0], _BLOCK):
                block_b = rows_b[left : left + _BLOCK]
                hits_a, hits_b = self._hits(side_a, self._rows(block_b), cut)
                if same and left == top:
                    keep = hits_a < hits_b
                    hits_a, hits_b = hits_a[keep], hits_b[keep]
                found_a.append(block_a[hits_a])
                found_b.append(block_b[hits_b])
        if not found_a:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)

    def _rows(self, rows: np.ndarray):
        if not self.low:
            return self.vectors[rows]
        # Gathered by numpy: torch's own indexing hands small jobs to its threads, slowly.
        return self.torch.from_numpy(self.half_bits[rows]).view(self.torch.bfloat16)

    def _hits(self, side_a, side_b, cut: float) -> tuple[np.ndarray, np.ndarray]:
        hits = side_a @ side_b.T >= cut
        hits_a, hits_b = np.nonzero(hits if not self.low else hits.numpy())
        return hits_a, hits_b


def _centres(products: _Products, rows: np.ndarray, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """`clusters` unit centres [K, d] float32 from a few spherical k-means steps on a sample of `rows`."""
    vectors = products.vectors
    sample_rows = np.sort(rng.choice(rows, size=min(rows.shape[0], _SAMPLE_ROWS), replace=False))
    sample = vectors[sample_rows]
    centres = sample[rng.choice(sample.shape[0], size=clusters, replace=False)].copy()
    for _ in range(_KMEANS_ITERATIONS):
        labels = np.argmax(products.sample_scores(sample_rows, centres), axis=1)
        order = np.argsort(labels, kind="stable")
        present, starts = np.unique(labels[order], return_index=True)
        sums = np.add.reduceat(sample[order], starts, axis=0).astype(np.float64)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        usable = norms[:, 0] > 0
        centres[present[usable]] = (sums[usable] / norms[usable]).astype(np.float32)
    return centres


def _clustered_pairs(products: _Products, link: float):
    """Yield (rows_a, rows_b) candidate pairs: every pair whose float64 cosine can be >= `link`
    is among them (the proof is near_duplicate_groups's docstring)."""
    vectors, slack = products.vectors, products.error
    count = vectors.shape[0]
    rng = np.random.default_rng(0)  # the same centres on every run: the same time taken
    clusters = int(min(_MAX_CLUSTERS, max(2, count // _ROWS_PER_CLUSTER)))
    centres = _centres(products, np.arange(count), clusters, rng)
    theta = math.acos(max(-1.0, link - slack))

    # Pass 1: each row's cluster, and the largest angle rho_hi[B] any member may have to c_B.
    labels = np.empty(count, dtype=np.int64)
    own_angle = np.empty(count, dtype=np.float64)  # an upper bound on angle(row, its centre)
    for start in range(0, count, _CHUNK_ROWS):
        scores = products.scores(start, start + _CHUNK_ROWS, centres)  # [chunk, K] float32
        best = np.argmax(scores, axis=1)
        labels[start : start + _CHUNK_ROWS] = best
        own = scores[np.arange(best.shape[0]), best].astype(np.float64)
        own_angle[start : start + _CHUNK_ROWS] = np.arccos(np.clip(own - slack, -1.0, 1.0))
    # Rows far from every centre (rare species the sample missed) would widen their cluster's
    # reach to everything: they get centres of their own, and those still far from any centre
    # (`loose`, in no cluster) are compared with every row.
    far = np.flatnonzero(own_angle > _CORE_ANGLE)
    if far.shape[0] >= 2 * _ROWS_PER_LOOSE_CLUSTER:
        extra = _centres(products, far, min(_MAX_CLUSTERS, far.shape[0] // _ROWS_PER_LOOSE_CLUSTER), rng)
        scores = products.sample_scores(far, extra)
        best = np.argmax(scores, axis=1)
        angle = np.arccos(np.clip(scores[np.arange(far.shape[0]), best].astype(np.float64) - slack, -1.0, 1.0))
        closer = angle < own_angle[far]
        labels[far[closer]] = clusters + best[closer]
        own_angle[far[closer]] = angle[closer]
        centres = np.concatenate([centres, extra])
        clusters = centres.shape[0]
    loose = np.flatnonzero(own_angle > _CORE_ANGLE)
    labels[loose] = -1
    core = np.flatnonzero(labels >= 0)
    if loose.shape[0]:
        yield products.pairs(loose, loose, link - slack, same=True)
        yield products.pairs(loose, core, link - slack, same=False)
    rho_hi = np.zeros(clusters, dtype=np.float64)
    np.maximum.at(rho_hi, labels[core], own_angle[core])
    reach = rho_hi + theta  # a visitor x of B has angle(x, c_B) <= reach[B]
    # x visits B when its score s with c_B has arccos(s + slack) <= reach[B].
    visit_cut = np.where(reach >= math.pi, -np.inf, np.cos(np.minimum(reach, math.pi)) - slack)

    # Pass 2: the visitors of each cluster, from lower clusters only (each pair of clusters once).
    row_parts: list[np.ndarray] = []
    cluster_parts: list[np.ndarray] = []
    angle_parts: list[np.ndarray] = []
    cluster_numbers = np.arange(clusters)
    for start in range(0, count, _CHUNK_ROWS):
        scores = products.scores(start, start + _CHUNK_ROWS, centres)
        chunk_labels = labels[start : start + _CHUNK_ROWS]
        lower = (chunk_labels[:, None] < cluster_numbers) & (chunk_labels[:, None] >= 0)
        hits_row, hits_cluster = np.nonzero((scores >= visit_cut) & lower)
        row_parts.append(hits_row + start)
        cluster_parts.append(hits_cluster)
        angle = np.arccos(np.clip(scores[hits_row, hits_cluster].astype(np.float64) + slack, -1.0, 1.0))
        angle_parts.append(angle)
    visit_rows = np.concatenate(row_parts)
    visit_clusters = np.concatenate(cluster_parts)
    visit_angles = np.concatenate(angle_parts)

    # Work in packs of whole consecutive clusters of up to _BLOCK rows, so that each product is
    # large (small ones cost more in thread hand-offs than in arithmetic): a pack is compared with
    # itself and with the union of its clusters' visitors. Extra pairs are only extra candidates.
    by_cluster = core[np.argsort(labels[core], kind="stable")]
    sizes = np.bincount(labels[core], minlength=clusters)
    visit_order = np.argsort(visit_clusters, kind="stable")
    visit_starts = np.searchsorted(visit_clusters[visit_order], cluster_numbers)
    visit_stops = np.searchsorted(visit_clusters[visit_order], cluster_numbers, side="right")
    member_starts = np.r_[0, np.cumsum(sizes)]
    cut = link - slack

    def _visitor_pairs(products, cluster, first, cut, theta):
        # The visitors of `cluster` from packs below `first`, each compared only with the members
        # that can lie within theta of it: angle(y, c_B) >= angle(x, c_B) - theta.
        entries = visit_order[visit_starts[cluster] : visit_stops[cluster]]
        rows_x, lowest = visit_rows[entries], visit_angles[entries]  # lower bounds on angle(x, c_B)
        keep = labels[rows_x] < first
        rows_x, lowest = rows_x[keep], lowest[keep]
        members = by_cluster[member_starts[cluster] : member_starts[cluster + 1]]
        if not rows_x.shape[0] or not members.shape[0]:
            return
        order = np.argsort(-own_angle[members], kind="stable")
        members, farthest = members[order], own_angle[members[order]]  # upper bounds, descending
        reachable = np.searchsorted(-farthest, -(lowest - theta), side="right")  # members each visitor needs
        order = np.argsort(-reachable, kind="stable")
        rows_x, reachable = rows_x[order], reachable[order]
        side_b = products._rows(members[: int(reachable[0])])  # gathered once for every chunk
        for top in range(0, rows_x.shape[0], _VISITOR_CHUNK):
            needed = int(reachable[top])  # the chunk's largest need: its visitors are in descending need
            if needed == 0:
                break
            chunk = rows_x[top : top + _VISITOR_CHUNK]
            hits_a, hits_b = products._hits(products._rows(chunk), side_b[:needed], cut)
            yield chunk[hits_a], members[hits_b]
    first = 0
    while first < clusters:
        last = first + 1  # the pack is clusters first..last-1
        while last < clusters and member_starts[last + 1] - member_starts[first] <= _BLOCK:
            last += 1
        members = by_cluster[member_starts[first] : member_starts[last]]
        if members.shape[0] > 1:
            yield products.pairs(members, members, cut, same=True)
        for cluster in range(first, last):
            yield from _visitor_pairs(products, cluster, first, cut, theta)
        first = last


def _groups(ids: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> list[list[int]]:
    """Connected components of the rows linked by the pairs (rows_a[i], rows_b[i]), as sorted
    lists of ids, sorted by first id, singletons left out."""
    if rows_a.shape[0] == 0:
        return []
    root = _components(ids.shape[0], rows_a, rows_b)
    linked = np.unique(np.concatenate([rows_a, rows_b]))
    roots = root[linked]
    order = np.lexsort((ids[linked], roots))
    roots, member_ids = roots[order], ids[linked][order]
    starts = np.flatnonzero(np.r_[True, roots[1:] != roots[:-1]])
    groups = [group.tolist() for group in np.split(member_ids, starts[1:])]
    return sorted((group for group in groups if len(group) > 1), key=lambda group: group[0])


def _components(count: int, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """The root of each of `count` rows [count] under the links (rows_a[i], rows_b[i]): the
    smallest row of its component. Union by hooking each link's larger root onto the smaller,
    then full path compression, repeated until every link lies inside one tree; numpy all along,
    so a million links take well under a second."""
    parent = np.arange(count, dtype=np.int64)
    a, b = rows_a.astype(np.int64), rows_b.astype(np.int64)
    while a.shape[0]:
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        if not a.shape[0]:
            break
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


# --- bursts ---------------------------------------------------------------------------------

_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})([ T].*)$")


def capture_seconds(taken_at: str | None) -> float | None:
    """A capture date as seconds on the camera's own clock (wall time; an offset, when given,
    is ignored: DateTimeOriginal is local time and most cameras write none), or None when it
    cannot be read. Takes what the library stores ("2024-05-01T07:12:03", from EXIF
    DateTimeOriginal) and the other forms such a date comes in: fractions of a second, an offset
    or Z, a space for the T, EXIF's colons in the date. A zero date ("0000:00:00") is None."""
    if not isinstance(taken_at, str):
        return None
    text = taken_at.strip()
    exif = _EXIF_DATE.match(text)
    if exif:
        text = f"{exif[1]}-{exif[2]}-{exif[3]}{exif[4]}"
    if text.endswith(("Z", "z")):
        text = text[:-1]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds()


def burst_groups(
    ids: np.ndarray | Sequence[int],
    seconds_taken: np.ndarray | Iterable[float | None],
    vectors: np.ndarray,
    *,
    seconds: float = BURST_SECONDS,
    threshold: float = BURST_THRESHOLD,
) -> list[list[int]]:
    """Bursts: groups of photos taken one after another, each within `seconds` of another frame
    of the group and alike to it (cosine >= `threshold`, within LINK_TOLERANCE), chained in time.
    `seconds_taken` [N] is each photo's capture time in seconds (`capture_seconds`; None or NaN:
    unknown, and the photo is left out), `vectors` [N, d] float32 unit rows. Each group is in time
    order (ties by id), groups by their first frame's time; photos in no burst are left out.

    Two photos are linked when their times differ by at most `seconds` and they look alike; a
    burst is a connected component. After one sort by time, each photo is compared with the
    photos in the `seconds` before it only: O(N log N + N w d) for w photos per window.

    The defaults: cameras shoot bursts at 5 to 30 frames a second, but EXIF DateTimeOriginal
    (what the library keeps) has whole seconds, so two frames of one burst differ by 0 or 1 s
    there; 2 s also bridges a short stall when the camera's buffer fills. Frames of one burst
    differ more than copies of one photo (the bird turns its head, opens its wings), hence 0.85,
    under the 0.95 of near-duplicates; the time window already keeps other scenes out.
    """
    ids = np.asarray(ids, dtype=np.int64)
    times = np.array([np.nan if t is None else t for t in seconds_taken], dtype=np.float64) \
        if not isinstance(seconds_taken, np.ndarray) else seconds_taken.astype(np.float64)
    vectors = np.asarray(vectors, dtype=np.float32)
    if not (ids.shape[0] == times.shape[0] == vectors.shape[0]):
        raise ValueError(f"Got {ids.shape[0]} ids, {times.shape[0]} times and {vectors.shape[0]} vectors.")
    if not seconds >= 0:
        raise ValueError(f"A burst's gap must be 0 seconds or more, not {seconds}.")
    known = np.flatnonzero(np.isfinite(times))
    order = known[np.lexsort((ids[known], times[known]))]  # rows in time order, ties by id
    times_sorted = times[order]
    # The earliest frame in each photo's window: photos first[i]..i-1 are within `seconds` of i.
    first = np.searchsorted(times_sorted, times_sorted - seconds, side="left")
    link = float(threshold) - LINK_TOLERANCE
    rows_a, rows_b = [], []
    back = np.arange(order.shape[0]) - first  # how many earlier photos each one is compared with
    for step in range(1, int(back.max(initial=0)) + 1):
        later = np.flatnonzero(back >= step)
        earlier = later - step
        alike = pair_cosines(vectors, order[earlier], order[later]) >= link
        rows_a.append(earlier[alike])
        rows_b.append(later[alike])
    if not rows_a:
        return []
    # Components over positions in time order: its smallest position is each group's first frame.
    position_a, position_b = np.concatenate(rows_a), np.concatenate(rows_b)
    if position_a.shape[0] == 0:
        return []
    root = _components(order.shape[0], position_a, position_b)
    linked = np.unique(np.concatenate([position_a, position_b]))
    grouped = np.lexsort((linked, root[linked]))  # by group, then time order within it
    roots, positions = root[linked][grouped], linked[grouped]
    starts = np.flatnonzero(np.r_[True, roots[1:] != roots[:-1]])
    groups = [ids[order[chunk]].tolist() for chunk in np.split(positions, starts[1:])]
    first_positions = [int(p[0]) for p in np.split(positions, starts[1:])]
    return [group for _, group in sorted(zip(first_positions, groups, strict=True))]
