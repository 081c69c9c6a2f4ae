"""An exact cosine-similarity index over photo embeddings, held in memory as one float32 matrix.

Each photo's embedding is stored L2-normalised, so cosine similarity is a plain dot product and a
search is one matrix-vector product over the live rows, `matrix[:n] @ query`, followed by a top-k
selection (`np.partition`) and a sort of those k only. That product reads the whole matrix once,
so its cost is set by memory bandwidth: 1M x 768 float32 is 3 GB, ~0.13 s at ~25 GB/s.
Rows are addressed by integer ids (the SQLite row ids of the photos).

Large indexes search in two passes, still exactly: a first pass over a float16 copy (half the
bytes to read) finds every row that could be in the top k, given a proven bound on the float16
error, and only those rows are scored again in float32. torch is imported for that first pass
only when an index is that large (float16 matrix products in numpy are far slower), so the
window can load this module while it starts.

An index given `exact_rows` (a function returning the float32 vectors of some ids, read from
disk: the library's SQLite file) holds no float32 matrix once it is large: its rows are kept in
float16 only, and the few candidates of the first pass are read back in float32 to be scored
exactly. At 1M x 768 that is 1.5 GB held instead of 4.5 GB (float32 and its float16 copy), with
the same answers. Ids are looked up through sorted numpy arrays (16 bytes per id; a dict of
Python ints takes ~100).
The index is not synchronised: a caller that upserts on one thread and searches on another must
hold a lock around both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_DIM = 768
_MIN_CAPACITY = 1024
# Rows normalised per step in upsert, so adding 1M rows never makes a second 1M-row temporary.
_UPSERT_CHUNK_ROWS = 65_536
# Scores held at once by search_many: queries x live rows x 4 bytes stays under ~256 MB.
_SEARCH_MANY_SCORE_BYTES = 256 * 2**20
# From this many rows, search reads a float16 copy first (below it the float32 product is quick).
TWO_PASS_MIN_ROWS = 50_000
# How far a float16 score can be from the float32 one, for unit vectors: rounding the inputs to
# float16 (relative error 2**-11 each) moves a dot product by at most 2 * 2**-11 * |m||q| ~ 0.001;
# torch accumulates in float32 (768 terms: ~5e-5) and rounds the result to float16 (~5e-4).
# Taken with a margin of more than 2; tests/test_vectors.py checks the observed error stays well under.
FLOAT16_SCORE_ERROR = 0.004


# Given ids [n], their float32 vectors [n, dim] (any length, not necessarily normalised), read
# from where the index's owner keeps them; a row of NaN for an id the owner no longer has.
ExactRows = Callable[[np.ndarray], np.ndarray]


class VectorIndex:
    """Exact cosine top-k search over L2-normalised vectors, addressed by int64 ids.

    Without `exact_rows` the rows are held in float32. With it, an index of TWO_PASS_MIN_ROWS rows
    or more holds them in float16 only and reads candidates back through `exact_rows` to score
    them in float32, so the answers are the same either way.
    """

    def __init__(self, dim: int = DEFAULT_DIM, *, exact_rows: ExactRows | None = None) -> None:
        if int(dim) < 1:
            raise ValueError(f"A vector index needs a dimension of at least 1, not {dim}.")
        self.dim = int(dim)
        self._exact_rows = exact_rows
        self._count = 0
        # Rows [0, _count) are live; the rest is spare capacity, so appending is amortised O(1).
        self._matrix = np.empty((0, self.dim), dtype=np.float32)  # [capacity, dim], float32 or float16
        self._row_ids = np.empty(0, dtype=np.int64)  # [capacity], the id stored in each row
        # Lookup from id to row: the live ids sorted [N] and the row of each [N]; None after changes
        # to the rows, and built again (one argsort) at the next lookup.
        self._sorted_ids: np.ndarray | None = np.empty(0, dtype=np.int64)
        self._rows_by_sorted_id: np.ndarray | None = np.empty(0, dtype=np.int64)
        self._half: torch.Tensor | None = None  # torch float16 copy of float32 rows for the first pass; None after changes

    @classmethod
    def from_arrays(
        cls, ids: np.ndarray | Sequence[int], vectors: np.ndarray, *, exact_rows: ExactRows | None = None
    ) -> VectorIndex:
        """An index holding `vectors` [n, dim] under `ids` [n]; its capacity is exactly n rows."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"Vectors must be a 2-D array [n, dim], not shape {vectors.shape}.")
        index = cls(dim=vectors.shape[1], exact_rows=exact_rows)
        index.reserve(vectors.shape[0])
        index.upsert(ids, vectors)
        return index

    def __len__(self) -> int:
        return self._count

    def __contains__(self, id: object) -> bool:
        try:
            ids = _as_id_array(np.asarray([id]))
        except (ValueError, TypeError):
            return False
        return bool(self._rows_of(ids)[0] >= 0)

    @property
    def holds_float32(self) -> bool:
        """False once a large index with `exact_rows` keeps its rows in float16 only."""
        return self._matrix.dtype == np.float32

    def ids(self) -> np.ndarray:
        """The ids held, ascending (int64 [N]); a copy, so later changes do not show through."""
        return np.sort(self._row_ids[: self._count])

    def nbytes(self) -> int:
        """Bytes of the arrays behind the index (matrix and row ids, spare capacity included,
        and the float16 copy a large index searches first, once made).

        The id lookup (16 bytes per id) is counted once built; it is built again after changes.
        """
        half = 0 if self._half is None else self._half.numel() * self._half.element_size()
        if self._sorted_ids is None or self._rows_by_sorted_id is None:
            lookup = 0
        else:
            lookup = self._sorted_ids.nbytes + self._rows_by_sorted_id.nbytes
        return self._matrix.nbytes + self._row_ids.nbytes + lookup + half

    def vector(self, id: int) -> np.ndarray:
        """The normalised float32 vector [dim] of `id` (a copy); KeyError when `id` is not held."""
        return self.vectors_of([id])[0]

    def vectors_of(self, ids: Iterable[int]) -> np.ndarray:
        """The normalised float32 vectors [n, dim] of `ids` [n], in that order; KeyError naming the
        first id not held."""
        ids = _as_id_array(ids)
        rows = self._rows_of(ids)
        if (rows < 0).any():
            raise KeyError(int(ids[rows < 0][0]))
        vectors = self._float32_rows(rows)
        if not np.isfinite(vectors).all():
            raise KeyError(int(ids[~np.isfinite(vectors).all(axis=1)][0]))
        return vectors

    # --- changes ----------------------------------------------------------------------------

    def upsert(self, ids: Iterable[int], vectors: np.ndarray) -> None:
        """Store `vectors` [n, dim] under `ids` [n], normalised, replacing any vector an id had.

        When an id appears more than once, its last vector is kept, as if each row were upserted in
        turn. Every row is checked before anything changes, so a bad row leaves the index as it was.
        """
        id_array = _as_id_array(ids)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"Vectors must have shape [n, {self.dim}], not {vectors.shape}.")
        if vectors.shape[0] != id_array.shape[0]:
            raise ValueError(f"Got {id_array.shape[0]} ids for {vectors.shape[0]} vectors; they must pair up.")
        if id_array.shape[0] == 0:
            return
        unique_ids, first_from_end = np.unique(id_array[::-1], return_index=True)
        if unique_ids.shape[0] < id_array.shape[0]:
            keep = np.sort(id_array.shape[0] - 1 - first_from_end)  # each id's last occurrence, in order
            id_array, vectors = id_array[keep], vectors[keep]

        norms = np.empty(id_array.shape[0], dtype=np.float32)  # [n]
        for start in range(0, id_array.shape[0], _UPSERT_CHUNK_ROWS):
            stop = start + _UPSERT_CHUNK_ROWS
            norms[start:stop] = _row_norms(vectors[start:stop].astype(np.float32, copy=False))
        unusable = ~(np.isfinite(norms) & (norms > 0))
        if unusable.any():
            bad_ids = id_array[unusable]
            shown = ", ".join(str(i) for i in bad_ids[:5]) + (", ..." if bad_ids.shape[0] > 5 else "")
            raise ValueError(
                f"Cannot normalise the vectors of {bad_ids.shape[0]} id(s) ({shown}): each must be "
                "finite and not all zeros."
            )

        rows = self._rows_of(id_array)
        is_new = rows < 0
        new_count = int(is_new.sum())
        self.reserve(self._count + new_count)
        self._half = None
        rows[is_new] = np.arange(self._count, self._count + new_count)
        for start in range(0, id_array.shape[0], _UPSERT_CHUNK_ROWS):
            stop = start + _UPSERT_CHUNK_ROWS
            chunk = vectors[start:stop].astype(np.float32, copy=False)
            chunk_rows = rows[start:stop]
            if (np.diff(chunk_rows) == 1).all():  # appended in order, as from_arrays does: no scatter
                first = int(chunk_rows[0])
                target = self._matrix[first : first + chunk_rows.shape[0]]
                np.divide(chunk, norms[start:stop, None], out=target)
            else:
                self._matrix[chunk_rows] = chunk / norms[start:stop, None]
        self._row_ids[rows[is_new]] = id_array[is_new]
        self._count += new_count
        if new_count:
            self._sorted_ids = self._rows_by_sorted_id = None

    def remove(self, ids: Iterable[int]) -> None:
        """Drop `ids`, moving the last live row into each freed one; ids not held are skipped,
        since a photo deleted before it was ever embedded has no row to remove."""
        ids = _as_id_array(ids)
        # The row of each id to remove, kept up to date as rows move below. [n] -> {id: row}
        row_of = dict(zip(ids.tolist(), self._rows_of(ids).tolist(), strict=True))
        for id in ids.tolist():
            row = row_of[id]
            if row < 0:
                continue
            row_of[id] = -1
            last = self._count - 1
            if row != last:
                moved_id = int(self._row_ids[last])
                self._matrix[row] = self._matrix[last]
                self._row_ids[row] = moved_id
                if moved_id in row_of:
                    row_of[moved_id] = row
            self._count = last
            self._half = None
            self._sorted_ids = self._rows_by_sorted_id = None

    def reserve(self, rows_needed: int) -> None:
        """Grow capacity to at least `rows_needed`, doubling, so n appends copy O(n) rows in all.

        This is also where a large index with `exact_rows` turns its rows into float16.
        """
        capacity = self._matrix.shape[0]
        if rows_needed <= capacity:
            return
        # An empty index takes exactly what it is asked for: from_arrays wants no slack at 1M rows.
        new_capacity = rows_needed if capacity == 0 else max(rows_needed, 2 * capacity, _MIN_CAPACITY)
        compact = self._exact_rows is not None and rows_needed >= TWO_PASS_MIN_ROWS
        dtype = np.float16 if compact or not self.holds_float32 else np.float32
        matrix = np.empty((new_capacity, self.dim), dtype=dtype)
        matrix[: self._count] = self._matrix[: self._count]
        row_ids = np.empty(new_capacity, dtype=np.int64)
        row_ids[: self._count] = self._row_ids[: self._count]
        self._matrix, self._row_ids = matrix, row_ids
        self._half = None

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The row holding each of `ids` [n], or -1 for an id not held. int64 [n]."""
        if self._sorted_ids is None or self._rows_by_sorted_id is None:
            live_ids = self._row_ids[: self._count]
            order = np.argsort(live_ids, kind="stable")
            self._sorted_ids, self._rows_by_sorted_id = live_ids[order], order.astype(np.int64)
        if self._sorted_ids.shape[0] == 0:
            return np.full(ids.shape[0], -1, dtype=np.int64)
        positions = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.shape[0] - 1)
        return np.where(self._sorted_ids[positions] == ids, self._rows_by_sorted_id[positions], -1)

    def _live_float32(self) -> np.ndarray:
        """Every live row as float32 [N, dim]; float16 rows are read back through `exact_rows`
        first (at 1M x 768 that is 3 GB for the while)."""
        return self._matrix[: self._count] if self.holds_float32 else self._float32_rows(np.arange(self._count))

    def _float32_rows(self, rows: np.ndarray) -> np.ndarray:
        """The normalised float32 vectors [n, dim] of `rows` [n]: held ones, or read through
        `exact_rows` (NaN rows stay NaN: their ids are gone from the owner's store)."""
        if self.holds_float32 or self._exact_rows is None:  # float16 rows come only with exact_rows
            return self._matrix[rows].copy()
        vectors = np.asarray(self._exact_rows(self._row_ids[rows]), dtype=np.float32).reshape(len(rows), self.dim)
        return vectors / _row_norms(vectors)[:, None]

    # --- search -----------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, *, exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The `k` ids most cosine-similar to `query` [dim], as (id, score), best first.

        Equal scores are ordered by smaller id. Ids in `exclude` (the query photo itself, say) are
        never returned; fewer than `k` pairs come back when fewer ids are left.
        """
        query = np.asarray(query)
        if query.shape != (self.dim,):
            raise ValueError(f"A query must have shape [{self.dim}], not {query.shape}.")
        query = self._normalised_queries(query[None, :])[0]
        k = _checked_k(k)
        if k == 0 or self._count == 0:
            return []
        excluded_rows = set(self._rows_of(_as_id_array(exclude)).tolist()) - {-1}
        k = min(k, self._count - len(excluded_rows))
        if (self._count >= TWO_PASS_MIN_ROWS or not self.holds_float32) and k > 0:
            return self._two_pass_search(query, k, excluded_rows)
        scores = self._matrix[: self._count] @ query  # [N] float32, one BLAS gemv
        if excluded_rows:
            scores[list(excluded_rows)] = -np.inf
        return self._top_k(scores, k)

    def _two_pass_search(self, query: np.ndarray, k: int, excluded_rows: set[int]) -> list[tuple[int, float]]:
        """Exact top k, reading float16 first. If t is the true k-th best score and a the k-th
        best float16 score, then a <= t + e (else k rows would truly beat t), and every true
        top-k row has a float16 score >= t - e >= a - 2e: so the rows at or above a - 2e hold
        the whole answer, and scoring just those in float32 gives it exactly.
        A candidate that `exact_rows` no longer has (NaN) is removed, and the search runs again."""
        import torch

        if not self.holds_float32:
            half = torch.from_numpy(self._matrix[: self._count])  # [N, dim] float16, no copy
        else:
            if self._half is None:
                self._half = torch.from_numpy(self._matrix[: self._count]).to(torch.float16)  # [N, dim]
            half = self._half
        approx = torch.mv(half, torch.from_numpy(query).to(torch.float16)).float().numpy()  # [N]
        if excluded_rows:
            approx[list(excluded_rows)] = -np.inf
        kth_approx = np.partition(approx, approx.shape[0] - k)[approx.shape[0] - k]
        candidate_rows = np.flatnonzero(approx >= kth_approx - 2 * FLOAT16_SCORE_ERROR)
        exact = self._float32_rows(candidate_rows) @ query  # [candidates] float32
        candidate_ids = self._row_ids[candidate_rows]
        gone = np.isnan(exact)
        if gone.any():  # the owner no longer has them: forget them and search again, still exact
            excluded_ids = self._row_ids[sorted(excluded_rows)]  # by id: the rows move in remove
            self.remove(candidate_ids[gone])
            return self.search(query, k, exclude=excluded_ids)
        order = np.lexsort((candidate_ids, -exact))[:k]
        return list(zip(candidate_ids[order].tolist(), exact[order].tolist(), strict=True))

    def search_many(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """`search` for each row of `queries` [m, dim], as one matrix product per batch of queries."""
        queries = self._normalised_queries(np.asarray(queries))
        k = _checked_k(k)
        if k == 0 or self._count == 0:
            return [[] for _ in range(queries.shape[0])]
        if not self.holds_float32:  # float16 rows: each query's two passes (exact, one at a time)
            return [self.search(query, k) for query in queries]
        live = self._matrix[: self._count]
        batch = max(1, _SEARCH_MANY_SCORE_BYTES // (4 * self._count))
        results: list[list[tuple[int, float]]] = []
        for start in range(0, queries.shape[0], batch):
            scores = queries[start : start + batch] @ live.T  # [batch, N] float32
            results.extend(self._top_k(row_scores, min(k, self._count)) for row_scores in scores)
        return results

    def _top_k(self, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k best of `scores` [N] (one per live row), ties to the smaller id, as (id, score).

        `np.partition` finds the k-th best score; every row scoring at least that is a candidate,
        so rows tied with it are all seen and the smaller ids win, which argpartition alone would
        leave to chance.
        """
        if k <= 0:
            return []
        kth_best = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
        candidate_rows = np.flatnonzero(scores >= kth_best)
        candidate_ids = self._row_ids[candidate_rows]
        candidate_scores = scores[candidate_rows]
        order = np.lexsort((candidate_ids, -candidate_scores))[:k]
        return list(zip(candidate_ids[order].tolist(), candidate_scores[order].tolist(), strict=True))

    def _normalised_queries(self, queries: np.ndarray) -> np.ndarray:
        """`queries` [m, dim] as float32 unit rows; ValueError for a row that cannot be normalised."""
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"Queries must have shape [m, {self.dim}], not {queries.shape}.")
        queries = queries.astype(np.float32, copy=False)
        norms = _row_norms(queries)
        unusable = np.flatnonzero(~(np.isfinite(norms) & (norms > 0)))
        if unusable.shape[0]:
            raise ValueError(
                f"Cannot normalise query {int(unusable[0]) + 1} of {queries.shape[0]}: "
                "it must be finite and not all zeros."
            )
        return queries / norms[:, None]

    # --- near duplicates --------------------------------------------------------------------

    def near_duplicate_groups(self, threshold: float) -> list[list[int]]:
        """Groups of ids linked by cosine >= `threshold`, each sorted, groups sorted by first id:
        connected components, ids with no near duplicate left out. Exact, without comparing every
        pair (core/library/groups.py: clusters and the triangle inequality; 100k photos in seconds)."""
        from birdid_app.core.library.groups import near_duplicate_groups

        return near_duplicate_groups(self._row_ids[: self._count], self._live_float32(), threshold)

    def all_pairs_groups(self, threshold: float, *, block: int = 4096) -> list[list[int]]:
        """`near_duplicate_groups` by comparing every pair: the plain exact method, which the
        clustered one is tested against. Groups of ids linked by cosine >= `threshold`.

        A group is a connected component: a and c share a group when a~b and b~c, even if a and c
        are further apart than `threshold`. Ids with no near duplicate are left out.
        Pairs are found tile by tile, `block` x `block` rows of the upper triangle at a time, so
        memory stays O(block^2) (64 MB at 4096) however many rows there are; the time is still
        O(N^2 * dim): 4 s at 20k rows on 2 cores, so ~100 s at 100k. `threshold` is meant to be
        high (0.95 and up): a low one links most pairs and the union-find over them runs in Python.
        """
        if block < 1:
            raise ValueError(f"block must be at least 1, not {block}.")
        count = self._count
        live = self._live_float32()
        parent = list(range(count))  # union-find over rows; parent[r] == r marks a root

        def root(row: int) -> int:
            while parent[row] != row:
                parent[row] = parent[parent[row]]  # path halving keeps the trees shallow
                row = parent[row]
            return row

        for top in range(0, count, block):
            top_rows = live[top : top + block]
            for left in range(top, count, block):
                similarity = top_rows @ live[left : left + block].T  # [block, block] float32
                linked = similarity >= threshold
                if left == top:
                    linked = np.triu(linked, k=1)  # each pair once, and no row with itself
                top_hits, left_hits = np.nonzero(linked)
                for a, b in zip((top_hits + top).tolist(), (left_hits + left).tolist(), strict=True):
                    root_a, root_b = root(a), root(b)
                    if root_a != root_b:
                        parent[max(root_a, root_b)] = min(root_a, root_b)

        groups: dict[int, list[int]] = {}
        for row, id in enumerate(self._row_ids[:count].tolist()):
            groups.setdefault(root(row), []).append(id)
        linked_groups = [sorted(members) for members in groups.values() if len(members) > 1]
        return sorted(linked_groups, key=lambda group: group[0])


def _as_id_array(ids: np.ndarray | Iterable[int]) -> np.ndarray:
    """`ids` as int64 [n]; floats are refused rather than silently truncated into other ids."""
    array = np.asarray(ids if isinstance(ids, np.ndarray | Sequence) else list(ids))
    if array.ndim != 1:
        raise ValueError(f"Ids must be a 1-D sequence of integers, not shape {array.shape}.")
    if array.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"Ids must be integers, not {array.dtype}.")
    return array.astype(np.int64, copy=False)


def _row_norms(rows: np.ndarray) -> np.ndarray:
    """L2 norm of each row of `rows` [n, dim], float32 [n], without an [n, dim] temporary."""
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def _checked_k(k: int) -> int:
    if int(k) != k or k < 0:
        raise ValueError(f"k must be a whole number of results, 0 or more, not {k}.")
    return int(k)
