"""Near-duplicate and burst groups (core/library/groups.py): every fast path checked against an exact scan.

Near duplicates: the clustered method against VectorIndex.all_pairs_groups (the exact
float32 scan, tile by tile) on seeded sets, with the clustering forced on small sets, in
bfloat16 and in float32. Each set is first checked to have no pair within 1e-4 of the
threshold, where the two may differ by float32 rounding (the rule there is tested on its own).
Bursts: burst_groups against a brute-force scan of every pair; then the library, the command
line and the window's button on real photos with EXIF dates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from birdid_app.cli import main
from birdid_app.core.library import Library, default_library_path, groups
from birdid_app.core.library.groups import LINK_TOLERANCE, burst_groups, capture_seconds, near_duplicate_groups
from birdid_app.core.library.vectors import VectorIndex
from birdid_app.core.model.model_store import ModelStore
from conftest import make_photo, open_ready_window

WAIT_MS = 60_000


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def library_like(count: int, seed: int, dim: int = 768, species: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Photos around species centres (cosine ~0.6-0.85 to theirs), a third in bursts of 2-6
    frames (cosine ~0.9-0.99 to each other), a few random loners; ids shuffled, not contiguous."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((species, dim)))
    rows = []
    while len(rows) < count:
        a = rng.uniform(0.6, 0.85)
        base = a * centres[rng.integers(species)] + math.sqrt(1 - a * a) * unit(rng.standard_normal(dim))
        frames = int(rng.integers(2, 7)) if rng.random() < 0.1 else 1
        if rng.random() < 0.03:
            base = rng.standard_normal(dim)  # far from every species: the "loose" rows
        rows.extend(unit(base + rng.uniform(0.05, 0.35) * unit(rng.standard_normal((frames, dim)))))
    vectors = np.stack(rows[:count])
    ids = rng.permutation(count).astype(np.int64) * 3 + 5
    return ids, vectors


def away_from(threshold: float, ids: np.ndarray, vectors: np.ndarray, margin: float = 2e-5):
    """(ids, vectors) without the rows of pairs whose cosine is within `margin` of `threshold`,
    where float32 rounding may decide either way (LINK_TOLERANCE decides there)."""
    cosines = vectors.astype(np.float64) @ vectors.astype(np.float64).T
    near = np.abs(cosines - threshold) < margin
    np.fill_diagonal(near, False)
    keep = ~near.any(axis=1)
    return ids[keep], vectors[keep]


def exact(ids, vectors, threshold) -> list[list[int]]:
    return VectorIndex.from_arrays(ids, vectors).all_pairs_groups(threshold)


@pytest.fixture(params=["bfloat16", "float32"])
def clustered(request, monkeypatch):
    """Every set of 32 rows or more goes through the clustering, in the products named."""
    monkeypatch.setattr(groups, "_CLUSTER_MIN_ROWS", 32)
    monkeypatch.setattr(groups, "_ROWS_PER_CLUSTER", 16)
    monkeypatch.setattr(groups, "_BFLOAT16_FASTER", request.param == "bfloat16")
    return request.param


@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clustered_groups_equal_the_exact_scan(clustered, seed, threshold):
    ids, vectors = away_from(threshold, *library_like(1500, seed))
    expected = exact(ids, vectors, threshold)
    assert near_duplicate_groups(ids, vectors, threshold) == expected
    assert expected  # the sets do have near duplicates at every threshold


def test_the_unclustered_path_equals_the_exact_scan_too():
    for threshold in (0.8, 0.95):
        ids, vectors = away_from(threshold, *library_like(600, 4))
        assert near_duplicate_groups(ids, vectors, threshold) == exact(ids, vectors, threshold)


def test_a_large_set_uses_the_default_clustering_and_equals_the_exact_scan():
    ids, vectors = away_from(0.95, *library_like(5000, 5, dim=256, species=40))
    assert near_duplicate_groups(ids, vectors, 0.95) == exact(ids, vectors, 0.95)


def test_groups_link_through_a_chain(clustered):
    """a~b and b~c at 25 degrees each, a and c 50 degrees apart: one group at cos 30 degrees."""
    ids, vectors = library_like(300, 6, dim=64)
    angles = np.radians([0, 25, 50])
    chain = np.zeros((3, 64), dtype=np.float32)
    chain[:, 0], chain[:, 1] = np.cos(angles), np.sin(angles)
    ids = np.r_[ids, [1, 2, 3]]
    vectors = np.r_[vectors, chain]
    threshold = float(np.cos(np.radians(30)))
    ids, vectors = away_from(threshold, ids, vectors)
    found = near_duplicate_groups(ids, vectors, threshold)
    assert [1, 2, 3] in found
    assert found == exact(ids, vectors, threshold)


@pytest.mark.parametrize("threshold", [0.8, 0.95, 0.99])
def test_copies_of_identical_vectors(clustered, threshold):
    ids, vectors = away_from(threshold, *library_like(400, 7, dim=128))
    vectors = np.r_[vectors, vectors[:50], vectors[:10]]  # 50 rows twice, 10 of them three times
    ids = np.r_[ids, np.arange(10_000, 10_060)]
    expected = exact(ids, vectors, threshold)
    assert near_duplicate_groups(ids, vectors, threshold) == expected
    for row in range(10):
        assert any({int(ids[row]), 10_000 + row, 10_050 + row} <= set(group) for group in expected)


def test_every_vector_the_same(clustered):
    vector = unit(np.random.default_rng(8).standard_normal(96))
    ids = np.arange(200, 0, -1)
    vectors = np.tile(vector, (200, 1))
    for threshold in (0.8, 0.95, 0.99):
        assert near_duplicate_groups(ids, vectors, threshold) == exact(ids, vectors, threshold) == [list(range(1, 201))]
    # At 1.00 the rule decides, not float32 luck: copies are linked (cosine >= 1 - LINK_TOLERANCE).
    assert near_duplicate_groups(ids, vectors, 1.0) == [list(range(1, 201))]


def test_the_rule_at_the_threshold_itself():
    """A pair just inside the tolerance is linked, one just outside is not, whatever float32 says."""
    for offset, linked in ((-0.5 * LINK_TOLERANCE, True), (-3 * LINK_TOLERANCE, False), (2e-7, True)):
        angle = math.acos(0.95 + offset)
        pair = np.array([[1.0, 0.0], [math.cos(angle), math.sin(angle)]], dtype=np.float64)
        assert (near_duplicate_groups([4, 9], pair.astype(np.float32), 0.95) == [[4, 9]]) is linked


@pytest.mark.parametrize("count", [0, 1, 2])
def test_tiny_sets(clustered, count):
    vectors = unit(np.random.default_rng(9).standard_normal((count, 16))) if count else np.empty((0, 16), np.float32)
    if count == 2:
        vectors[1] = vectors[0]
    ids = np.arange(count) + 7
    assert near_duplicate_groups(ids, vectors, 0.95) == exact(ids, vectors, 0.95) == ([[7, 8]] if count == 2 else [])


def test_random_directions_are_the_worst_case_and_still_exact(clustered):
    rng = np.random.default_rng(10)
    for threshold in (0.8, 0.9):
        ids, vectors = away_from(threshold, np.arange(800), unit(rng.standard_normal((800, 6))))
        expected = exact(ids, vectors, threshold)
        assert near_duplicate_groups(ids, vectors, threshold) == expected and expected


def test_mismatched_ids_and_vectors_are_refused():
    with pytest.raises(ValueError, match="pair up"):
        near_duplicate_groups([1, 2, 3], np.zeros((2, 8), np.float32), 0.9)


# --- bursts -----------------------------------------------------------------------------------


def brute_force_bursts(ids, times, vectors, seconds, threshold) -> list[list[int]]:
    """Every pair checked: linked when both have a time, the times are within `seconds` and the
    cosine (float64) is >= threshold - LINK_TOLERANCE; components in time order."""
    ids = list(ids)
    known = [i for i in range(len(ids)) if times[i] is not None and np.isfinite(times[i])]
    parent = {i: i for i in known}

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for x in known:
        for y in known:
            if x < y and abs(times[x] - times[y]) <= seconds:
                if float(vectors[x].astype(np.float64) @ vectors[y].astype(np.float64)) >= threshold - LINK_TOLERANCE:
                    parent[max(root(x), root(y))] = min(root(x), root(y))
    members: dict[int, list[int]] = {}
    for i in known:
        members.setdefault(root(i), []).append(i)
    found = [sorted(group, key=lambda i: (times[i], ids[i])) for group in members.values() if len(group) > 1]
    found.sort(key=lambda group: (times[group[0]], ids[group[0]]))
    return [[ids[i] for i in group] for group in found]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize(("seconds", "threshold"), [(2.0, 0.85), (0.0, 0.85), (5.0, 0.95), (1.0, 0.6)])
def test_bursts_equal_a_scan_of_every_pair(seed, seconds, threshold):
    rng = np.random.default_rng(seed)
    ids, vectors = away_from(threshold, *library_like(400, seed, dim=64))
    count = ids.shape[0]
    times = np.cumsum(rng.choice([0, 0, 1, 1, 2, 3, 30], size=count)).astype(np.float64)  # whole seconds, as EXIF
    times[rng.random(count) < 0.1] = np.nan  # no date
    expected = brute_force_bursts(ids, times, vectors, seconds, threshold)
    assert burst_groups(ids, times, vectors, seconds=seconds, threshold=threshold) == expected
    assert expected


def test_bursts_gap_look_order_and_undated_photos():
    """Frames 1 s apart chain into one burst even when the ends are 4 s apart; a gap of 3 s
    splits; a photo that does not look alike, or has no date, is left out; time order within a
    group, whatever the ids; groups by their first frame."""
    rng = np.random.default_rng(11)
    scene, other, third = unit(rng.standard_normal((3, 32)))
    frames = unit(scene + 0.05 * unit(rng.standard_normal((7, 32))))
    ids = [50, 40, 30, 20, 10, 60, 70, 80, 90, 95]
    times = [100.0, 101.0, 102.0, 103.0, 104.0, 101.5, 107.0, None, 90.0, 89.0]
    vectors = np.stack([*frames[:5], other, frames[5], frames[6], third, unit(third + 0.01 * unit(rng.standard_normal(32)))])
    found = burst_groups(ids, times, vectors)
    assert found == [[95, 90], [50, 40, 30, 20, 10]]
    assert burst_groups(ids, times, vectors, seconds=3.0) == [[95, 90], [50, 40, 30, 20, 10, 70]]
    assert burst_groups(ids, times, vectors, seconds=0.5) == []
    assert burst_groups([], [], np.empty((0, 32), np.float32)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-17T06:41:09", "2026-05-17 06:41:09"),
        ("2026:05:17 06:41:09", "2026-05-17 06:41:09"),
        ("2026-05-17 06:41:09.250", "2026-05-17 06:41:09.250"),
        ("2026-05-17T06:41:09+02:00", "2026-05-17 06:41:09"),
        ("2026-05-17T06:41:09Z", "2026-05-17 06:41:09"),
        ("0000-00-00T00:00:00", None),
        ("0000:00:00 00:00:00", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_capture_dates_are_read_in_their_usual_forms(text, expected):
    from datetime import datetime

    seconds = capture_seconds(text)
    if expected is None:
        assert seconds is None
    else:
        assert seconds == (datetime.fromisoformat(expected) - datetime(1970, 1, 1)).total_seconds()


# --- the library, the command line, the window -------------------------------------------------


def dated_photo(path: Path, seed: int, taken: str | None) -> Path:
    """The picture of `seed` (the same pixels for the same seed), with `taken` as its EXIF date."""
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    return make_photo(path, size=(256, 192), seed=seed, exif=exif, quality=95)


@pytest.fixture
def burst_folder(tmp_path) -> Path:
    root = tmp_path / "bursts"
    dated_photo(root / "p1.jpg", 1, "2026:05:17 06:41:09")
    dated_photo(root / "p2.jpg", 1, "2026:05:17 06:41:10")
    dated_photo(root / "p3.jpg", 1, "2026:05:17 06:41:12")
    dated_photo(root / "p4-later.jpg", 1, "2026:05:17 06:41:20")  # the same look, 8 s on: alone
    dated_photo(root / "p5-undated.jpg", 1, None)
    dated_photo(root / "q1.jpg", 2, "2026:05:17 06:41:11")  # in the time window, another look
    dated_photo(root / "q2.jpg", 2, "2026:05:17 06:45:00")
    dated_photo(root / "q3.jpg", 2, "2026:05:17 06:45:00")
    return root


def names(groups) -> list[list[str]]:
    return [[Path(p).name for p in group] for group in groups]


def test_library_and_command_line_bursts(tmp_path, burst_folder, small_model_file, capsys):
    library_file = tmp_path / "bursts.sqlite3"
    common = ["--library", str(library_file), "--model", str(small_model_file)]
    assert main(["index", str(burst_folder), *common]) == 0
    capsys.readouterr()
    with Library(library_file) as library:
        got = library.burst_groups(2, 0.999)
        assert names([[p.path for p in g] for g in got]) == [["p1.jpg", "p2.jpg", "p3.jpg"], ["q2.jpg", "q3.jpg"]]
        assert names([[p.path for p in g] for g in library.burst_groups(1, 0.999)]) == [
            ["p1.jpg", "p2.jpg"], ["q2.jpg", "q3.jpg"]]

    assert main(["bursts", "--seconds", "2", "--threshold", "0.999", "--json", *common]) == 0
    assert names(json.loads(capsys.readouterr().out)) == [["p1.jpg", "p2.jpg", "p3.jpg"], ["q2.jpg", "q3.jpg"]]
    assert main(["bursts", "--threshold", "0.999", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("group 1: ") and lines[0].endswith("p3.jpg") and lines[1].startswith("group 2: ")
    # Nothing found is said, in words; --json stays an empty list. Two photos of other looks, 9 s apart:
    apart = tmp_path / "apart"
    apart.mkdir()
    for name in ("p4-later.jpg", "q1.jpg"):
        (apart / name).write_bytes((burst_folder / name).read_bytes())
    other = ["--library", str(tmp_path / "apart.sqlite3"), "--model", str(small_model_file)]
    assert main(["index", str(apart), *other]) == 0
    capsys.readouterr()
    assert main(["bursts", *other]) == 0
    assert capsys.readouterr().out == "No bursts: no photos taken within 2 s of each other are 0.85 alike or more.\n"
    assert main(["duplicates", *other]) == 0
    assert capsys.readouterr().out == "No near-duplicates: no two photos are 0.95 alike or more.\n"
    assert main(["bursts", "--json", *other]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(SystemExit):
        main(["bursts", "--seconds", "-1", *common])


@pytest.fixture
def window(qtbot, small_model_file, burst_folder, monkeypatch):
    ModelStore().import_file(small_model_file)
    window = open_ready_window(qtbot)
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getExistingDirectory", lambda *a, **k: str(burst_folder))
    window.library_view.choose_folder()
    return window


def test_the_bursts_button_shows_the_librarys_bursts(window, qtbot):
    view = window.library_view
    qtbot.waitUntil(lambda: view.folders.count() == 1, timeout=WAIT_MS)
    with qtbot.waitSignal(window.engine.index_finished, timeout=WAIT_MS):
        view.index_button.click()
    with Library(default_library_path()) as library:
        bursts = library.burst_groups(groups.BURST_SECONDS, groups.BURST_THRESHOLD)
    expected = [(str(photo.path), number) for number, group in enumerate(bursts, 1) for photo in group]
    view.bursts_button.click()
    qtbot.waitUntil(lambda: view.results_label.text().startswith("Bursts"), timeout=WAIT_MS)
    captions = [view.results.item(i).text().split("\n") for i in range(view.results.count())]
    shown = [(str(view.results.item(i).data(0x0100)), int(captions[i][2].split(" · ")[0].removeprefix("burst ")))
             for i in range(view.results.count())]
    assert shown == expected
    # Each frame says the second it was taken, which tells a burst's frames apart.
    times = {photo.path: photo.taken_at[11:19] for group in bursts for photo in group}
    assert [caption[2].split(" · ")[1] for caption in captions] == [times[view.results.item(i).data(0x0100)]
                                                                  for i in range(view.results.count())]
    assert captions[0][2].split(" · ")[1].startswith("06:41:")
    in_one = next(group for group in bursts if any(p.path.name == "p1.jpg" for p in group))
    assert {"p1.jpg", "p2.jpg", "p3.jpg"} <= {p.path.name for p in in_one}
