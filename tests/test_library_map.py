"""The map of the library: layout, cache, colours, the picture, and `birdid map`, on real SQLite
library files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from birdid_app.cli import main
from birdid_app.core.library import Library
from birdid_app.core.library import map as maps

MODEL = "test-model"


def fill_library(path: Path, embeddings: np.ndarray, species: list[str], *, first_id: int = 1) -> None:
    """Photos with these embeddings [n, d] and top species, written into a real library file as
    the indexer leaves them: a photos row, an identification and a top prediction each."""
    with Library(path, model=MODEL) as library, library.db:
        for offset, (embedding, name) in enumerate(zip(embeddings, species, strict=True)):
            photo_id = first_id + offset
            library.db.execute(
                "INSERT INTO photos (id, path, size, mtime_ns, fingerprint) VALUES (?, ?, 1, 1, 'f')",
                (photo_id, f"/photos/p{photo_id:05}.jpg"),
            )
            library.db.execute("INSERT INTO identifications (photo_id, model, embedding) VALUES (?, ?, ?)",
                               (photo_id, MODEL, np.asarray(embedding, dtype=np.float32).tobytes()))
            library.db.execute(
                "INSERT INTO predictions (photo_id, model, rank, species, probability) VALUES (?, ?, 1, ?, 0.9)",
                (photo_id, MODEL, name),
            )


def two_groups(count: int, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Embeddings in two tight groups around two random directions, alternating."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim))
    which = np.arange(count) % 2
    vectors = centres[which] + 0.3 * rng.normal(size=(count, dim))
    return vectors.astype(np.float32), ["Great Tit" if w == 0 else "Grey Heron" for w in which]


@pytest.fixture
def library_path(tmp_path):
    path = tmp_path / "library.sqlite3"
    vectors, species = two_groups(300)
    fill_library(path, vectors, species)
    return path


def nearest_on_map(points: np.ndarray) -> np.ndarray:
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return distances.argmin(axis=1)


def test_alike_photos_land_together_and_the_points_fill_the_unit_square(library_path):
    with Library(library_path, model=MODEL) as library:
        laid_out = maps.library_map(library)
        species = maps.point_keys(library, laid_out, "species")
    assert laid_out.points.shape == (300, 2) and laid_out.points.dtype == np.float32
    assert laid_out.ids.tolist() == list(range(1, 301)) and laid_out.model == MODEL
    assert laid_out.points.min() >= 0 and laid_out.points.max() <= 1
    assert np.isclose(np.ptp(laid_out.points, axis=0).max(), 1.0)  # one scale, the longer axis spans it
    neighbours = nearest_on_map(laid_out.points)
    assert all(species[i] == species[j] for i, j in enumerate(neighbours))


def test_the_map_is_kept_and_a_changed_added_or_removed_photo_makes_it_stale(library_path, monkeypatch):
    with Library(library_path, model=MODEL) as library:
        assert maps.cached_map(library) is None
        first = maps.library_map(library)
    assert maps.map_cache_path(library_path, MODEL).is_file()

    def no_layout(*args, **kwargs):
        raise AssertionError("the kept map should have been used")

    with monkeypatch.context() as patched:
        patched.setattr(maps, "layout", no_layout)
        with Library(library_path, model=MODEL) as library:
            again = maps.library_map(library)
            kept = maps.cached_map(library)
    assert np.array_equal(again.points, first.points) and np.array_equal(kept.points, first.points)

    def stale_after(change) -> None:
        with Library(library_path, model=MODEL) as library:
            change(library)
        with Library(library_path, model=MODEL) as library:
            assert maps.cached_map(library) is None
            remade = maps.library_map(library)
            assert maps.cached_map(library) is not None
            assert len(remade.ids) == len(library.vectors())

    changed = np.ones(64, dtype=np.float32).tobytes()
    stale_after(lambda library: library.db.execute(
        "UPDATE identifications SET embedding = ? WHERE photo_id = 7", (changed,)) and library.db.commit())
    stale_after(lambda library: library.db.execute("DELETE FROM photos WHERE id = 8") and library.db.commit())
    vectors, species = two_groups(1, seed=5)
    fill_library(library_path, vectors, species, first_id=1000)
    with Library(library_path, model=MODEL) as library:
        assert maps.cached_map(library) is None


def test_a_few_new_photos_are_placed_beside_their_kind_without_moving_the_rest(library_path, monkeypatch):
    with Library(library_path, model=MODEL) as library:
        first = maps.library_map(library)
        species = maps.point_keys(library, first, "species")
    # Five new photos, near copies of kept ones (a re-saved JPEG, a crop): well under a tenth.
    with Library(library_path, model=MODEL) as library:
        twins = library.vectors().vectors_of([10, 11, 12, 13, 14]) * 3 + 0.01
    fill_library(library_path, twins, [species[i] for i in range(9, 14)], first_id=2000)

    def no_layout(*args, **kwargs):
        raise AssertionError("a few new photos should be placed, not the library laid out again")

    monkeypatch.setattr(maps, "layout", no_layout)
    stages = []
    with Library(library_path, model=MODEL) as library:
        placed = maps.library_map(library, on_stage=stages.append)
        assert maps.cached_map(library) is not None  # kept, with the new ones
    assert "Placing 5 new photos among 300" in stages
    assert np.array_equal(placed.points[:300], first.points)  # the rest of the map did not move
    # Each new photo's nearest kept point on the map is of its twin's species (photo id k is row k - 1).
    for point, twin_row in zip(placed.points[300:], range(9, 14), strict=True):
        nearest = int(np.argmin(np.linalg.norm(first.points - point, axis=1)))
        assert species[nearest] == species[twin_row]


def test_many_new_photos_lay_the_map_out_afresh(library_path):
    with Library(library_path, model=MODEL) as library:
        maps.library_map(library)
    vectors, species = two_groups(40, seed=9)  # more than a tenth of 300
    fill_library(library_path, vectors, species, first_id=5000)
    stages = []
    with Library(library_path, model=MODEL) as library:
        maps.library_map(library, on_stage=stages.append)
    assert "Laying out 340 photos" in stages and not any(s.startswith("Placing") for s in stages)


def test_a_damaged_kept_map_is_made_again_and_a_stop_stops_the_layout(library_path):
    cache = maps.map_cache_path(library_path, MODEL)
    cache.write_bytes(b"PK\x03\x04 not really a zip")
    with Library(library_path, model=MODEL) as library:
        assert maps.cached_map(library) is None
        assert maps.library_map(library).points.shape == (300, 2)
    cache.unlink()
    asked = []

    def stop_after_a_few_checks() -> bool:
        asked.append(1)
        return len(asked) > 3  # past reading and the PCA, inside the t-SNE's iterations

    with Library(library_path, model=MODEL) as library, pytest.raises(maps.MapStopped):
        maps.library_map(library, should_stop=stop_after_a_few_checks)
    assert not cache.exists()


def test_the_layout_so_far_is_reported_while_t_sne_runs_and_ends_where_the_layout_does():
    vectors, _ = two_groups(120, seed=2)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    shown = []
    final = maps.layout(unit, on_progress=shown.append)
    assert len(shown) >= 20  # every 25 of t-SNE's 750 iterations
    assert all(p.shape == (120, 2) and p.min() >= 0 and p.max() <= 1 for p in shown)
    assert not np.allclose(shown[0], final) and np.abs(shown[-1] - final).max() < 0.05
    before = len(shown)
    maps.layout(unit, on_progress=shown.append, sample=60)
    assert len(shown) == before  # a sampled layout places most rows at the end: nothing to show before


def test_a_large_library_is_laid_out_on_a_sample_and_the_rest_placed_near_their_kind():
    vectors, species = two_groups(600, seed=3)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    stages = []
    points = maps.layout(unit, sample=200, on_stage=stages.append)
    assert points.shape == (600, 2) and np.isfinite(points).all()
    assert stages == ["Reducing 600 embeddings to 50 dimensions", "Laying out 200 photos",
                      "Placing 400 more photos among them"]
    neighbours = nearest_on_map(points)
    agree = np.mean([species[i] == species[j] for i, j in enumerate(neighbours)])
    assert agree > 0.95


def test_keys_by_species_and_by_label_and_a_stable_distinct_palette(library_path):
    with Library(library_path, model=MODEL) as library:
        library.set_label(3, "Eurasian Wren")
        laid_out = maps.library_map(library)
        by_species = maps.point_keys(library, laid_out, "species")
        by_label = maps.point_keys(library, laid_out, "label")
        with pytest.raises(ValueError, match="colour by"):
            maps.point_keys(library, laid_out, "date")
    assert by_species[:2] == ["Great Tit", "Grey Heron"]
    assert by_label[2] == "Eurasian Wren" and by_label.count(None) == 299
    keys = ["a"] * 5 + ["b"] * 3 + [f"k{i}" for i in range(30)] + [None]
    colours = maps.palette(keys)
    assert colours == maps.palette(list(reversed(keys)))  # by count and name, not by order met
    assert set(colours) == set(keys) - {None} and len(set(colours.values())) == len(colours)
    assert colours["a"] == maps._DISTINCT[0] and colours["b"] == maps._DISTINCT[1]


def test_birdid_map_draws_the_picture_in_the_palettes_colours(library_path, tmp_path, capsys):
    out = tmp_path / "map.png"
    assert main(["map", "--library", str(library_path), "--out", str(out), "--size", "800x600"]) == 0
    message = capsys.readouterr()
    assert "Wrote the map of 300 photos" in message.out and "Laying out 300 photos" in message.err
    picture = Image.open(out).convert("RGB")
    assert picture.size == (800, 600)
    colours = {colour for _, colour in picture.getcolors(800 * 600)}
    assert maps._DISTINCT[0] in colours and maps._DISTINCT[1] in colours  # the two species' points
    # By label: one labelled photo, the rest grey.
    with Library(library_path, model=MODEL) as library:
        library.set_label(1, "Great Tit")
    assert main(["map", "--library", str(library_path), "--out", str(out), "--colour-by", "label"]) == 0
    capsys.readouterr()
    colours = {colour for _, colour in Image.open(out).convert("RGB").getcolors(1600 * 1200)}
    assert maps.NO_KEY_COLOUR in colours and maps._DISTINCT[0] in colours and maps._DISTINCT[1] not in colours


def test_birdid_map_of_an_empty_or_missing_library_is_one_sentence(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite3"
    Library(empty, model=MODEL).close()
    assert main(["map", "--library", str(empty), "--out", str(tmp_path / "m.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no identified photos to map" in err and str(empty) in err
    assert not (tmp_path / "m.png").exists()
    assert main(["map", "--library", str(tmp_path / "none.sqlite3"), "--out", str(tmp_path / "m.png")]) == 2
    assert "none.sqlite3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["map", "--library", str(empty), "--out", str(tmp_path / "m.png"), "--size", "10x10"])
    assert usage.value.code == 2 and "200 to 20000" in capsys.readouterr().err
