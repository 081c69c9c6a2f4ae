"""The exact cosine index: search checked against a brute-force numpy computation, changes that
must keep every stored vector intact, and near-duplicate grouping on data built with known groups."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from birdid_app.core.library.vectors import VectorIndex


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute_force_top_k(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int, exclude=()):
    """Cosine of `query` with every row, in float64, best first and ties to the smaller id."""
    scores = unit_rows(vectors.astype(np.float64)) @ (query / np.linalg.norm(query))
    keep = ~np.isin(ids, list(exclude))
    ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].tolist(), scores[order]


@pytest.fixture
def random_library() -> tuple[np.ndarray, np.ndarray]:
    """300 photo ids (not contiguous, not sorted) with random 768-d embeddings."""
    rng = np.random.default_rng(7)
    ids = rng.permutation(np.arange(10, 10 + 3 * 300, 3))
    return ids, rng.standard_normal((300, 768)).astype(np.float32)


# --- search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 5, 20, 300, 1000])
def test_search_equals_brute_force(random_library, k):
    ids, vectors = random_library
    index = VectorIndex.from_arrays(ids, vectors)
    queries = np.random.default_rng(k).standard_normal((4, 768)).astype(np.float32)

    for query in queries:
        expected_ids, expected_scores = brute_force_top_k(ids, vectors, query, k)
        found = index.search(query, k)
        assert [id for id, _ in found] == expected_ids
        assert len(found) == min(k, len(ids))
        np.testing.assert_allclose([score for _, score in found], expected_scores, atol=1e-5)


def test_search_scale_of_query_and_vectors_does_not_matter(random_library):
    ids, vectors = random_library
    query = vectors[17] * 0.001 + 0.5 * vectors[3]
    plain = VectorIndex.from_arrays(ids, vectors).search(query, 10)
    scaled = VectorIndex.from_arrays(ids, vectors * 250.0).search(query * 1e4, 10)

    assert [id for id, _ in scaled] == [id for id, _ in plain]
    np.testing.assert_allclose([s for _, s in scaled], [s for _, s in plain], atol=1e-6)


def test_search_excludes_given_ids(random_library):
    ids, vectors = random_library
    index = VectorIndex.from_arrays(ids, vectors)
    query_id = int(ids[42])
    exclude = {query_id, int(ids[0]), 999_999}  # 999_999 is not held: ignored

    found = index.search(vectors[42], 10, exclude=exclude)

    expected_ids, _ = brute_force_top_k(ids, vectors, vectors[42], 10, exclude=exclude)
    assert [id for id, _ in found] == expected_ids
    assert query_id not in expected_ids
    # Without the exclusion the photo finds itself first, at cosine 1.
    assert index.search(vectors[42], 1)[0][0] == query_id
    assert index.search(vectors[42], 1)[0][1] == pytest.approx(1.0, abs=1e-6)


def test_search_with_everything_excluded_returns_what_is_left():
    index = VectorIndex.from_arrays([1, 2, 3], np.eye(3, 8, dtype=np.float32))

    assert [id for id, _ in index.search(np.ones(8), 10, exclude=[1, 3])] == [2]
    assert index.search(np.ones(8), 10, exclude=[3, 2, 1]) == []


def test_equal_scores_are_ordered_by_smaller_id():
    # Rows of four 1s among 16 dims: after normalising every component is 0 or 0.5, so each
    # cosine is an exact multiple of 0.25 whatever order the sums are taken in, and many tie.
    rng = np.random.default_rng(3)
    dim, count = 16, 200
    vectors = np.zeros((count, dim), dtype=np.float32)
    for row in vectors:
        row[rng.choice(dim, size=4, replace=False)] = 1.0
    ids = rng.permutation(count) * 5 + 1
    index = VectorIndex.from_arrays(ids, vectors)
    query = np.zeros(dim, dtype=np.float32)
    query[:4] = 1.0

    for k in (1, 3, 7, 50, 200):
        expected_ids, expected_scores = brute_force_top_k(ids, vectors, query, k)
        found = index.search(query, k)
        assert [id for id, _ in found] == expected_ids
        assert [score for _, score in found] == expected_scores.tolist()
    scores = [score for _, score in index.search(query, 50)]
    assert len(set(scores)) < len(scores), "the data must really have ties to test their order"


def test_search_many_equals_search_for_each_query(random_library):
    ids, vectors = random_library
    index = VectorIndex.from_arrays(ids, vectors)
    queries = np.random.default_rng(1).standard_normal((6, 768)).astype(np.float32)

    batched = index.search_many(queries, 8)
    one_by_one = [index.search(query, 8) for query in queries]

    # One matrix product sums in another order than one product per query: scores differ in the
    # last float32 bits only.
    assert [[id for id, _ in found] for found in batched] == [[id for id, _ in found] for found in one_by_one]
    np.testing.assert_allclose(
        [[score for _, score in found] for found in batched],
        [[score for _, score in found] for found in one_by_one],
        atol=1e-6,
    )
    assert index.search_many(queries, 0) == [[] for _ in queries]


def test_empty_index_finds_nothing():
    index = VectorIndex(dim=4)

    assert len(index) == 0
    assert index.search(np.ones(4), 5) == []
    assert index.search_many(np.ones((2, 4)), 5) == [[], []]
    assert index.near_duplicate_groups(0.9) == index.all_pairs_groups(0.9) == []
    assert index.ids().tolist() == []


def test_query_of_the_wrong_shape_is_rejected():
    index = VectorIndex.from_arrays([1], np.ones((1, 4)))

    with pytest.raises(ValueError, match=r"shape \[4\]"):
        index.search(np.ones(5), 1)
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        index.search(np.ones((2, 4)), 1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.ones(4), -1)


# --- changes ---------------------------------------------------------------------------------


def test_upsert_of_a_held_id_replaces_its_vector():
    index = VectorIndex(dim=3)
    index.upsert([7, 8], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    index.upsert([7], np.array([[0, 0, 5]], dtype=np.float32))

    assert len(index) == 2
    assert index.ids().tolist() == [7, 8]
    np.testing.assert_array_equal(index.vector(7), [0, 0, 1])
    assert index.search(np.array([0, 0, 1.0]), 1) == [(7, 1.0)]
    assert index.search(np.array([1.0, 0, 0]), 2)[0][1] == 0.0  # the old vector of 7 is gone

    # A new id between held ones: rows 2, 0, 1 are written out of order.
    index.upsert([9, 7, 8], np.array([[2, 0, 0], [0, 3, 0], [0, 0, 4]], dtype=np.float32))

    assert index.ids().tolist() == [7, 8, 9]
    for id, expected in [(7, [0, 1, 0]), (8, [0, 0, 1]), (9, [1, 0, 0])]:
        np.testing.assert_array_equal(index.vector(id), expected)


def test_upsert_with_one_id_twice_keeps_its_last_vector():
    index = VectorIndex(dim=2)
    index.upsert([4, 5, 4], np.array([[1, 0], [1, 1], [0, 2]], dtype=np.float32))

    assert len(index) == 2
    np.testing.assert_array_equal(index.vector(4), [0, 1])


def test_upsert_normalises_rows_and_vector_of_a_missing_id_raises():
    index = VectorIndex(dim=2)
    index.upsert(np.array([1]), np.array([[3.0, 4.0]]))

    np.testing.assert_allclose(index.vector(1), [0.6, 0.8], rtol=1e-6)
    assert index.vector(1).dtype == np.float32
    with pytest.raises(KeyError):
        index.vector(2)


def test_removed_ids_are_never_found_again(random_library):
    ids, vectors = random_library
    index = VectorIndex.from_arrays(ids, vectors)
    removed = set(ids[::3].tolist())
    kept = ~np.isin(ids, list(removed))

    index.remove(sorted(removed) + [123_456])  # an id never held is skipped

    assert len(index) == kept.sum()
    assert set(index.ids().tolist()) == set(ids[kept].tolist())
    for position in (0, 3, 5, 100):  # both removed and kept photos' own vectors as queries
        found = index.search(vectors[position], len(ids))
        assert not removed & {id for id, _ in found}
        expected_ids, _ = brute_force_top_k(ids[kept], vectors[kept], vectors[position], len(ids))
        assert [id for id, _ in found] == expected_ids
    # Rows moved into the freed slots still answer for their own ids.
    for position in np.flatnonzero(kept):
        expected = vectors[position] / np.linalg.norm(vectors[position])
        np.testing.assert_allclose(index.vector(ids[position]), expected, atol=1e-6)
    with pytest.raises(KeyError):
        index.vector(ids[0])


def test_remove_then_upsert_again():
    index = VectorIndex.from_arrays([1, 2, 3], np.eye(3, dtype=np.float32))
    index.remove([1, 1, 3])
    index.upsert([1], np.array([[0, 0, 1.0]]))

    assert index.ids().tolist() == [1, 2]
    assert index.search(np.array([0, 0, 1.0]), 3) == [(1, 1.0), (2, 0.0)]


def test_growth_past_capacity_keeps_every_vector_intact():
    rng = np.random.default_rng(11)
    index = VectorIndex(dim=32)
    all_vectors = {}
    next_id = 0
    for batch_size in [1, 3, 700, 1, 2000, 5, 3000]:  # crosses several doublings
        batch = rng.standard_normal((batch_size, 32)).astype(np.float32)
        batch_ids = np.arange(next_id, next_id + batch_size)
        next_id += batch_size
        index.upsert(batch_ids, batch)
        all_vectors.update(zip(batch_ids.tolist(), unit_rows(batch), strict=True))

    assert len(index) == len(all_vectors) == next_id
    capacity_rows = index.nbytes() // (32 * 4 + 8)
    assert len(index) <= capacity_rows < 2 * len(index)  # doubling: never more than twice the need
    stored = np.stack([index.vector(id) for id in range(next_id)])
    np.testing.assert_allclose(stored, np.stack([all_vectors[id] for id in range(next_id)]), atol=1e-6)
    assert index.search(all_vectors[4321], 1)[0][0] == 4321


def test_from_arrays_takes_exactly_the_memory_of_its_rows():
    index = VectorIndex.from_arrays(np.arange(1000), np.ones((1000, 768), dtype=np.float32))

    assert index.nbytes() == 1000 * 768 * 4 + 1000 * 8


def test_zero_vectors_are_rejected_and_change_nothing():
    index = VectorIndex.from_arrays([1], np.ones((1, 4)))
    vectors = np.ones((3, 4), dtype=np.float32)
    vectors[1] = 0.0

    with pytest.raises(ValueError, match=r"Cannot normalise the vectors of 1 id\(s\) \(21\).*not all zeros"):
        index.upsert([20, 21, 22], vectors)
    assert index.ids().tolist() == [1]
    with pytest.raises(ValueError, match="Cannot normalise query 1 of 1.*not all zeros"):
        index.search(np.zeros(4), 1)
    with pytest.raises(ValueError, match="Cannot normalise"):
        index.upsert([30], np.array([[np.nan, 1, 1, 1]]))


def test_mismatched_or_non_integer_ids_are_rejected():
    index = VectorIndex(dim=4)

    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        index.upsert([1, 2], np.ones((3, 4)))
    with pytest.raises(ValueError, match="integers"):
        index.upsert([1.5], np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"shape \[n, 4\]"):
        index.upsert([1], np.ones((1, 5)))


# --- near duplicates -------------------------------------------------------------------------


def clustered_library(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Four clusters of near-identical 768-d vectors among 50 random ones, shuffled together."""
    cluster_sizes = [2, 3, 5, 8]
    vectors, members = [], []
    for size in cluster_sizes:
        centre = rng.standard_normal(768)
        vectors.append(centre + 0.02 * rng.standard_normal((size, 768)))  # cosine ~0.9996 within
        members.append(size)
    vectors.append(rng.standard_normal((50, 768)))  # cosine ~0 with everything else
    vectors = np.concatenate(vectors).astype(np.float32)
    order = rng.permutation(len(vectors))
    ids = np.arange(1000, 1000 + 7 * len(vectors), 7)[order]
    clusters, start = [], 0
    for size in members:
        clusters.append(sorted(ids[start : start + size].tolist()))
        start += size
    return ids, vectors, sorted(clusters)


@pytest.mark.parametrize("block", [4096, 64, 7, 1])
def test_near_duplicate_groups_are_exactly_the_clusters(block):
    ids, vectors, clusters = clustered_library(np.random.default_rng(5))
    index = VectorIndex.from_arrays(ids, vectors)

    assert index.all_pairs_groups(0.99, block=block) == clusters == index.near_duplicate_groups(0.99)


def test_near_duplicate_groups_link_through_a_chain():
    # Three unit vectors 20 degrees apart: a~b and b~c at cos 20deg, a and c at cos 40deg only.
    angles = np.radians([0.0, 20.0, 40.0, 120.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    index = VectorIndex.from_arrays([30, 10, 20, 40], vectors)

    assert index.all_pairs_groups(np.cos(np.radians(25)), block=2) == [[10, 20, 30]]
    assert index.all_pairs_groups(np.cos(np.radians(15))) == []
    assert index.near_duplicate_groups(np.cos(np.radians(25))) == [[10, 20, 30]]
    assert index.near_duplicate_groups(np.cos(np.radians(15))) == []


def test_module_loads_without_torch():
    code = "import sys, birdid_app.core.library.vectors; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_two_pass_search_is_exact(monkeypatch):
    from birdid_app.core.library import vectors as vectors_module

    monkeypatch.setattr(vectors_module, "TWO_PASS_MIN_ROWS", 0)  # use it even for a small index
    rng = np.random.default_rng(11)
    base = rng.standard_normal((4000, 64)).astype(np.float32)
    base[100:140] = base[7] + 1e-4 * rng.standard_normal((40, 64))  # a crowd of near-ties
    index = VectorIndex.from_arrays(np.arange(4000) * 3, base)
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    for query_row in (7, 123, 2500):
        scores = unit @ unit[query_row]
        for k in (1, 20, 50):
            order = np.lexsort((np.arange(4000), -scores))
            expected = [(int(i) * 3, float(scores[i])) for i in order[:k]]
            got = index.search(unit[query_row], k)
            # The same scores, and each returned id truly has its score: exact up to float32
            # rounding, which may order rows whose scores agree to 1e-7 either way.
            assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6)
            assert all(abs(scores[i // 3] - s) < 1e-6 for i, s in got)
            assert len({i for i, _ in got}) == k
    got = index.search(unit[7], 5, exclude=[21])
    assert 21 not in [i for i, _ in got]
    index.remove([21 * 0 + 3 * 100])  # a change drops the float16 copy; results stay exact
    assert 300 not in [i for i, _ in index.search(unit[100], 10)]


def test_float16_scores_stay_well_inside_the_bound_the_two_pass_search_relies_on():
    import torch

    from birdid_app.core.library.vectors import FLOAT16_SCORE_ERROR

    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((20000, 768)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix[:10] = matrix[10]  # identical rows: scores near 1, where float16 steps are widest
    query = matrix[10]
    exact = matrix @ query
    approx = torch.mv(torch.from_numpy(matrix).half(), torch.from_numpy(query).half()).float().numpy()
    assert np.abs(approx - exact).max() < FLOAT16_SCORE_ERROR / 2


def assert_same_hits(found, expected):
    """The same ids in the same order, scores equal but for float32 rounding (the matrix-vector
    product's summation order depends on the number of rows)."""
    assert [id for id, _ in found] == [id for id, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], atol=1e-6)


def test_an_index_that_reads_back_float32_holds_float16_only_and_answers_the_same(monkeypatch):
    from birdid_app.core.library import vectors as vectors_module

    monkeypatch.setattr(vectors_module, "TWO_PASS_MIN_ROWS", 1000)
    rng = np.random.default_rng(12)
    base = rng.standard_normal((4000, 64)).astype(np.float32)
    base[100:140] = base[7] + 1e-4 * rng.standard_normal((40, 64))  # a crowd of near-ties
    ids = np.arange(4000) * 5 + 2
    on_disk = dict(zip(ids.tolist(), base, strict=True))  # the owner's float32 store, raw lengths
    asked_for = []

    def exact_rows(wanted: np.ndarray) -> np.ndarray:
        asked_for.append(len(wanted))
        return np.stack([on_disk.get(id, np.full(64, np.nan, dtype=np.float32)) for id in wanted.tolist()])

    compact = VectorIndex.from_arrays(ids, base, exact_rows=exact_rows)
    full = VectorIndex.from_arrays(ids, base)

    assert not compact.holds_float32 and full.holds_float32
    assert compact.nbytes() == 4000 * 64 * 2 + 4000 * 8  # float16 rows and the ids, nothing else
    for query_row in (7, 123, 2500):
        for k in (1, 20, 50):
            assert_same_hits(compact.search(base[query_row], k), full.search(base[query_row], k))
        excluded = [ids[query_row]]
        assert_same_hits(compact.search(base[query_row], 5, exclude=excluded), full.search(base[query_row], 5, exclude=excluded))
    assert max(asked_for) < 200  # the candidates only, never the whole matrix
    np.testing.assert_array_equal(compact.vector(ids[9]), full.vector(ids[9]))

    # Changes keep both in step: new rows (float16 from the start), a removal, a replaced vector.
    extra = rng.standard_normal((50, 64)).astype(np.float32)
    extra_ids = np.arange(50) * 5 + 30_000
    on_disk.update(zip(extra_ids.tolist(), extra, strict=True))
    on_disk[int(ids[3])] = base[7] * 2
    for index in (compact, full):
        index.upsert(extra_ids, extra)
        index.upsert([ids[3]], base[7:8] * 2)
        index.remove(ids[100:120])
    for query in (base[7], extra[4], base[3000]):
        assert_same_hits(compact.search(query, 30), full.search(query, 30))
    for compact_hits, full_hits in zip(compact.search_many(extra[:3], 4), full.search_many(extra[:3], 4), strict=True):
        assert_same_hits(compact_hits, full_hits)
    assert compact.near_duplicate_groups(0.999) == full.all_pairs_groups(0.999)

    # Photos the owner no longer has (deleted by another process) are forgotten, and the answer is
    # still the exact one over those left, the excluded id still excluded.
    for gone in (extra_ids[4], extra_ids[5], ids[200]):
        del on_disk[int(gone)]
    full.remove([extra_ids[4], extra_ids[5], ids[200]])
    query = extra[4] + extra[5]
    assert_same_hits(compact.search(query, 10, exclude=[ids[300]]), full.search(query, 10, exclude=[ids[300]]))
    assert extra_ids[4] not in compact and extra_ids[5] not in compact  # candidates, found gone
    with pytest.raises(KeyError):
        compact.vector(ids[200])


def test_ids_are_found_however_they_are_ordered_and_spread():
    ids = np.array([2**40, -7, 0, 5, 2**62, 3])
    index = VectorIndex.from_arrays(ids, np.eye(6, dtype=np.float32))

    for position, id in enumerate(ids.tolist()):
        assert id in index
        assert index.search(np.eye(6)[position], 1) == [(id, 1.0)]
    assert 4 not in index and "5" not in index and 2**63 + 1 not in index
    index.remove([0, 2**62])
    assert index.ids().tolist() == sorted([2**40, -7, 5, 3])


def test_vectors_of_gives_the_normalised_rows_in_the_order_asked(random_library):
    ids, vectors = random_library
    index = VectorIndex.from_arrays(ids, vectors)

    wanted = [ids[5], ids[0], ids[299]]
    np.testing.assert_allclose(index.vectors_of(wanted), unit_rows(vectors[[5, 0, 299]]), atol=1e-6)
    with pytest.raises(KeyError, match="12345"):
        index.vectors_of([ids[1], 12345])
