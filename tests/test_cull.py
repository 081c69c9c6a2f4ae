"""Culling (core/photos/sharpness.py, core/library/cull.py, core/insight/bird_box.py, `birdid cull`):
sharpness on the bird, the best frame of each burst, the person's cull in the library and in XMP
read back by the real exiftool."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from test_sidecar import DARKTABLE_SIDECAR, as_list, exiftool, others, tags

from birdid_app.cli import main
from birdid_app.core.library import MIGRATIONS, SCHEMA_VERSION, Library
from birdid_app.core.library.cull import (
    REJECTED,
    Cull,
    best_frame,
    bursts_for_culling,
    cull_after_key,
    culls,
    set_cull,
    set_sharpness,
    sharpness_of,
    write_cull,
)
from birdid_app.core.photos.sharpness import WORKING_SIDE, centre_box, laplacian_variance, scaled_box, sharpness
from birdid_app.core.photos.sidecar import PICK_LABEL, SidecarError, read_rating
from birdid_app.core.photos.sidecar import write_cull as write_sidecar_cull
from conftest import make_photo

# --- sharpness --------------------------------------------------------------------------------


def detailed(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Fine random detail (feathers, say) in RGB."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def test_laplacian_variance_is_zero_on_flat_and_grows_with_detail():
    assert laplacian_variance(np.full((50, 50), 128)) == 0.0
    ramp = np.tile(np.arange(50, dtype=np.float32), (50, 1))  # a linear ramp: no second difference
    assert laplacian_variance(ramp) == pytest.approx(0.0, abs=1e-6)
    checker = (np.indices((50, 50)).sum(axis=0) % 2) * 255
    assert laplacian_variance(checker) > 10_000
    assert laplacian_variance(np.zeros((2, 9))) == 0.0


def test_sharpness_is_read_inside_the_box():
    """A sharp patch in a blurred frame: the box on it scores far higher than the box beside it,
    and a blurred copy of the frame scores lower on the same box."""
    image = detailed((800, 600)).filter(ImageFilter.GaussianBlur(4))
    image.paste(detailed((200, 200), seed=1), (500, 100))
    on_patch, beside = (500, 100, 200, 200), (100, 350, 200, 200)
    assert sharpness(image, on_patch) > 20 * sharpness(image, beside)
    soft = image.filter(ImageFilter.GaussianBlur(1.5))
    assert sharpness(soft, on_patch) < sharpness(image, on_patch) / 3


def test_sharpness_compares_at_one_working_size():
    """The same patch of detail, decoded at two sizes, scores alike: each box is resampled to
    WORKING_SIDE a side first (without it the score would differ by the scale)."""
    small = detailed((WORKING_SIDE, WORKING_SIDE), seed=3).filter(ImageFilter.GaussianBlur(2))
    large = small.resize((WORKING_SIDE * 3, WORKING_SIDE * 3), Image.Resampling.BICUBIC)
    a = sharpness(small, (0, 0, WORKING_SIDE, WORKING_SIDE))
    b = sharpness(large, (0, 0, WORKING_SIDE * 3, WORKING_SIDE * 3))
    assert b == pytest.approx(a, rel=0.5)


def test_centre_box_and_scaled_box():
    assert centre_box((1500, 1000)) == (500, 250, 500, 500)
    assert scaled_box((100, 50, 40, 40), (400, 200), (1600, 800)) == (400, 200, 160, 160)
    image = detailed((300, 200))
    assert sharpness(image) == sharpness(image, centre_box(image.size))


def test_the_class_activation_map_finds_the_cells_the_answer_reads():
    """Cells whose channels point along the answer's weights light up; `evidence_box` turns them
    into the box culling scores; a flat map gives no box (the centre is scored)."""
    from birdid_app.core.insight.bird_box import class_activation_map

    rng = np.random.default_rng(0)
    weights = rng.normal(size=16).astype(np.float32)
    stage = rng.normal(scale=0.1, size=(16, 12, 12)).astype(np.float32)
    stage[:, 2, 9] += 3 * weights  # the bird, upper right
    cam = class_activation_map(stage, weights)
    assert cam.shape == (12, 12) and np.unravel_index(int(cam.argmax()), cam.shape) == (2, 9)
    assert cam.min() == 0.0 and cam.max() == 1.0
    assert not class_activation_map(np.ones((16, 12, 12), np.float32), weights).any()


# --- the cull ---------------------------------------------------------------------------------


def test_keys_as_lightroom_and_darktable_use_them():
    three = Cull(3, False)
    assert cull_after_key(three, "p") == Cull(3, True)  # a pick keeps the stars
    assert cull_after_key(Cull(REJECTED), "P") == Cull(0, True)  # and takes a reject back
    assert cull_after_key(Cull(4, True), "X") == Cull(REJECTED, False)
    assert cull_after_key(Cull(REJECTED), "5") == Cull(5, False)
    assert cull_after_key(Cull(2, True), "4") == Cull(4, True)
    assert cull_after_key(Cull(5, True), "0") == Cull()
    assert Cull(3, True).describe() == "Pick ★★★" and Cull(REJECTED).describe() == "Reject" and Cull().describe() == ""
    with pytest.raises(ValueError, match="not a culling key"):
        cull_after_key(three, "7")


def test_best_frame_is_the_sharpest_and_ties_go_to_the_surer_answer(tmp_path):
    from birdid_app.core.library.cull import Frame
    from birdid_app.core.library.schema import LibraryPhoto

    def frame(pid: int, score: float | None, probability: float) -> Frame:
        photo = LibraryPhoto(pid, Path(f"/p{pid}.jpg"), None, None, None, (("Robin", probability),), "m", None)
        return Frame(photo, score, None)

    assert best_frame([frame(1, 10.0, 0.9), frame(2, 30.0, 0.2), frame(3, None, 1.0)]) == 2
    assert best_frame([frame(1, 30.0, 0.5), frame(2, 30.0, 0.7)]) == 2
    assert best_frame([frame(1, None, 0.5), frame(2, None, 0.7)]) == 2
    assert best_frame([]) is None


def test_an_old_library_is_migrated_with_no_sharpness(tmp_path):
    path = tmp_path / "v5.sqlite3"
    db = sqlite3.connect(path)
    for version in range(1, 6):
        for statement in MIGRATIONS[version]:
            db.execute(statement)
    db.execute("INSERT INTO photos (path, size, mtime_ns, fingerprint) VALUES ('/a.jpg', 1, 1, 'f')")
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    with Library(path) as library:
        assert library.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        (pid,) = library.db.execute("SELECT id FROM photos").fetchone()
        assert sharpness_of(library, [pid]) == {pid: None}
        set_sharpness(library, {pid: 12.5})
        set_cull(library, [pid], Cull(4, True))
        assert sharpness_of(library, [pid]) == {pid: 12.5} and culls(library) == {pid: Cull(4, True)}
        set_cull(library, [pid], Cull())
        assert culls(library) == {}


# --- the cull in XMP, read back by exiftool -----------------------------------------------------


def test_the_cull_is_merged_into_a_darktable_sidecar(tmp_path):
    photo = tmp_path / "IMG_0001.CR3"
    photo.write_bytes(b"raw")
    sidecar = tmp_path / "IMG_0001.CR3.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    before = tags(sidecar)

    assert write_sidecar_cull(photo, 4, True, style="darktable") == sidecar
    after = tags(sidecar)
    assert after["XMP-xmp:Rating"] == 4 and after["XMP-xmp:Label"] == PICK_LABEL
    changed = {k for k in others(before) if others(before)[k] != others(after).get(k)}
    assert changed == {"XMP-xmp:Rating"}  # darktable's history, keywords, dates: all kept
    assert as_list(after["XMP-dc:Subject"]) == as_list(before["XMP-dc:Subject"])

    write_sidecar_cull(photo, REJECTED, False, style="darktable")
    assert exiftool("-s3", "-XMP-xmp:Rating", sidecar).strip() == "-1"
    assert "XMP-xmp:Label" not in tags(sidecar)  # the pick's label went with the pick
    assert read_rating(photo) == -1


def test_a_label_the_person_chose_stays_and_no_sidecar_is_made_for_nothing(tmp_path):
    photo = make_photo(tmp_path / "a.jpg", size=(160, 120))
    assert write_sidecar_cull(photo, 0, False) == tmp_path / "a.xmp"
    assert not (tmp_path / "a.xmp").exists()
    assert read_rating(photo) is None
    write_sidecar_cull(photo, 2, False)
    assert read_rating(photo) == 2
    exiftool("-overwrite_original", "-XMP-xmp:Label=Red", tmp_path / "a.xmp")
    write_sidecar_cull(photo, 5, False)
    assert tags(tmp_path / "a.xmp")["XMP-xmp:Label"] == "Red"
    write_sidecar_cull(photo, 5, True)  # a pick does not paint over the person's own colour
    assert tags(tmp_path / "a.xmp")["XMP-xmp:Label"] == "Red"
    write_sidecar_cull(photo, 5, False)
    assert tags(tmp_path / "a.xmp")["XMP-xmp:Label"] == "Red" and read_rating(photo) == 5


def test_read_only_sidecars_and_photos_outside_the_folders_are_refused(tmp_path):
    photo = make_photo(tmp_path / "lib" / "b.jpg", size=(160, 120))
    sidecar = tmp_path / "lib" / "b.xmp"
    write_sidecar_cull(photo, 3, False)
    sidecar.chmod(0o444)
    text = sidecar.read_bytes()
    with pytest.raises(SidecarError, match="read-only"):
        write_sidecar_cull(photo, REJECTED, False)
    assert sidecar.read_bytes() == text
    sidecar.chmod(0o644)

    outside = make_photo(tmp_path / "elsewhere" / "c.jpg", size=(160, 120))
    with Library(tmp_path / "lib.sqlite3") as library:
        library.add_folder(tmp_path / "lib")
        ids = []
        for path in (photo, outside):
            library.db.execute("INSERT INTO photos (path, size, mtime_ns, fingerprint) VALUES (?, 1, 1, 'f')", (str(path),))
            ids.append(library.db.execute("SELECT id FROM photos WHERE path = ?", (str(path),)).fetchone()[0])
        library.db.commit()
        done = write_cull(library, dict(zip(ids, (photo, outside), strict=True)), Cull(REJECTED), style="lightroom")
        assert done.written == [ids[0]]
        assert len(done.problems) == 1 and done.problems[0].startswith(f"{outside}: This photo is not inside a folder")
        assert culls(library) == {ids[0]: Cull(REJECTED)}
    assert not (tmp_path / "elsewhere" / "c.xmp").exists()
    assert exiftool("-s3", "-XMP-xmp:Rating", sidecar).strip() == "-1"


# --- indexing and `birdid cull` ---------------------------------------------------------------


def burst_frame(path: Path, taken: str, blur: float) -> Path:
    """One frame of a burst: the same scene, softened by `blur` (0: sharp)."""
    base = make_photo(path.with_suffix(".png"), size=(1200, 900), seed=7)
    image = Image.open(base).convert("RGB")
    base.unlink()
    image.paste(detailed((300, 300), seed=5), (450, 300))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = taken
    image.save(path, exif=exif, quality=95)
    return path


@pytest.fixture
def card(tmp_path) -> Path:
    root = tmp_path / "card"
    burst_frame(root / "f1.jpg", "2026:05:17 06:41:09", 2.0)
    burst_frame(root / "f2.jpg", "2026:05:17 06:41:10", 0)  # the sharp one
    burst_frame(root / "f3.jpg", "2026:05:17 06:41:10", 1.0)
    burst_frame(root / "f4.jpg", "2026:05:17 06:41:11", 3.0)
    return root


def test_cull_scores_suggests_and_rejects_the_rest(tmp_path, card, small_model_file, capsys):
    library_file = tmp_path / "lib.sqlite3"
    common = ["--library", str(library_file), "--model", str(small_model_file)]
    assert main(["index", str(card), *common]) == 0
    with Library(library_file) as library:
        scores = {p.path.name: s for p, s in ((p, sharpness_of(library, [p.id])[p.id]) for p in library.all_photos())}
        assert all(s is not None for s in scores.values())
        assert max(scores, key=lambda name: scores[name] or 0) == "f2.jpg"
        (burst,) = bursts_for_culling(library, 2, 0.5)
        ids = {frame.photo.path.name: frame.photo.id for frame in burst.frames}
        assert burst.best == ids["f2.jpg"]
        set_cull(library, [ids["f3.jpg"]], Cull(0, True))  # the person picked f3 already
    # f4 was rated in the editor: its sidecar holds darktable's history and three stars.
    (card / "f4.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    capsys.readouterr()

    assert main(["cull", "--threshold", "0.5", *common]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "burst 1: 4 frames; best: f2.jpg"
    assert [line.split()[0] for line in out[1:5]] == [str(card / "f1.jpg"), "*", str(card / "f3.jpg"), str(card / "f4.jpg")]
    assert "[Pick]" in out[3] and all("sharpness" in line for line in out[1:5])
    assert sorted(p.name for p in card.glob("*.xmp")) == ["f4.xmp"]  # printing alone writes nothing

    assert main(["cull", "--threshold", "0.5", "--write", *common]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary == ("rejected 1 frames in lightroom sidecars and the library; 2 already culled or rated were "
                       "left as they are")
    assert exiftool("-s3", "-XMP-xmp:Rating", card / "f1.xmp").strip() == "-1"
    assert not (card / "f2.xmp").exists() and not (card / "f3.xmp").exists()
    assert tags(card / "f4.xmp")["XMP-xmp:Rating"] == 3
    with Library(library_file) as library:
        by_name = {library.photo(pid).path.name: cull for pid, cull in culls(library).items()}
        assert by_name == {"f1.jpg": Cull(REJECTED), "f3.jpg": Cull(0, True)}
        source = library.db.execute("SELECT source FROM culls WHERE rating = -1").fetchone()[0]
        assert source == "birdid"
        # Had the person rejected the sharpest frame, the next sharpest would be suggested.
        set_cull(library, [ids["f2.jpg"]], Cull(REJECTED))
        (burst,) = bursts_for_culling(library, 2, 0.5)
        assert burst.best == ids["f3.jpg"]
        set_cull(library, list(ids.values()), Cull(REJECTED))
        assert bursts_for_culling(library, 2, 0.5)[0].best is None


def test_photos_indexed_before_culling_are_scored_by_cull(tmp_path, card, small_model_file, capsys):
    library_file = tmp_path / "lib.sqlite3"
    common = ["--library", str(library_file), "--model", str(small_model_file)]
    assert main(["index", "--no-cull", str(card), *common]) == 0
    with Library(library_file) as library:
        assert set(sharpness_of(library, [p.id for p in library.all_photos()]).values()) == {None}
    capsys.readouterr()
    assert main(["cull", "--threshold", "0.5", *common]) == 0
    captured = capsys.readouterr()
    assert "Scoring the sharpness of 4 frames indexed before culling" in captured.err
    assert captured.out.splitlines()[0] == "burst 1: 4 frames; best: f2.jpg"
    assert "not scored" not in captured.out
    with Library(library_file) as library:
        assert None not in sharpness_of(library, [p.id for p in library.all_photos()]).values()


def test_cull_with_no_bursts_says_so(tmp_path, small_model_file, capsys):
    folder = tmp_path / "one"
    burst_frame(folder / "only.jpg", "2026:05:17 06:41:09", 0)
    common = ["--library", str(tmp_path / "lib.sqlite3"), "--model", str(small_model_file)]
    assert main(["index", str(folder), *common]) == 0
    capsys.readouterr()
    assert main(["cull", "--write", *common]) == 0
    assert capsys.readouterr().out == "No bursts: no photos taken within 2 s of each other are 0.85 alike or more.\n"


def test_without_a_model_the_bursts_are_still_printed_unscored(tmp_path, card, small_model_file, capsys):
    library_file = tmp_path / "lib.sqlite3"
    assert main(["index", "--no-cull", str(card), "--library", str(library_file), "--model", str(small_model_file)]) == 0
    capsys.readouterr()
    assert main(["cull", "--threshold", "0.5", "--library", str(library_file)]) == 1  # no model installed
    captured = capsys.readouterr()
    assert "No model is installed" in captured.err and "So 4 frames are not scored." in captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("burst 1: 4 frames; best: ") and sum("not scored" in line for line in lines) == 4


# Left, top, right, bottom: inside 3x3 of the last stage's 12x12 cells (85.3x64 pixels at 1024x768),
# 12 pixels in from their edges, so a blurred bird's red stays in the same cells.
BIRD = (695, 76, 927, 244)


def bird_on_background(path: Path, *, bird_sharp: bool) -> Path:
    """A 1024x768 PNG (no JPEG colour bleed: the red model reads any red at all) with a textured
    red "bird" at BIRD on a background of as much texture and no red; one of the two blurred."""
    rng = np.random.default_rng(11)
    pixels = np.zeros((768, 1024, 3), dtype=np.uint8)
    pixels[..., 1] = rng.integers(0, 128, (768, 1024), dtype=np.uint8)  # in grey, as much as the bird's
    background = Image.fromarray(pixels, "RGB")
    left, top, right, bottom = BIRD
    bird = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)
    bird[..., 0] = rng.integers(1, 256, bird.shape[:2], dtype=np.uint8)
    bird_image = Image.fromarray(bird, "RGB")
    if bird_sharp:
        background = background.filter(ImageFilter.GaussianBlur(3))
    else:
        bird_image = bird_image.filter(ImageFilter.GaussianBlur(3))
    background.paste(bird_image, (left, top))
    background.save(path)
    return path


def test_sharpness_is_scored_on_the_bird_not_the_frame(tmp_path, capsys):
    """The red model's evidence is exactly its red "bird": indexing scores the frame whose bird is
    sharp above the frame whose background is sharp, though the centre of the photo (the
    background) says the opposite."""
    from birdid_app.core.model.checkpoint import write_checkpoint
    from conftest import OTHER_SPECIES, RED_SPECIES, red_evidence_model

    model_file = tmp_path / "red-384.pt"  # 12x12 cells of the last stage at 384 (4x4 at 128: too coarse)
    write_checkpoint(model_file, red_evidence_model((384, 384), other_bias=2.0), [RED_SPECIES, OTHER_SPECIES],
                     (0.0,) * 3, (1.0,) * 3)
    folder = tmp_path / "photos"
    folder.mkdir()
    sharp_bird = bird_on_background(folder / "sharp-bird.png", bird_sharp=True)
    soft_bird = bird_on_background(folder / "soft-bird.png", bird_sharp=False)
    library_file = tmp_path / "lib.sqlite3"
    common = ["--library", str(library_file), "--model", str(model_file), "--device", "cpu", "--precision", "fp32"]
    assert main(["index", str(folder), *common]) == 0
    with Library(library_file) as library:
        ids = {p.path.name: p.id for p in library.all_photos()}
        scores = sharpness_of(library, ids.values())
    on_bird = {name: scores[pid] for name, pid in ids.items()}
    # The box is the bird's cells made square, so some background is in it: the ranking is what counts.
    assert on_bird["sharp-bird.png"] > 1.3 * on_bird["soft-bird.png"]  # type: ignore[operator]
    centre = {path.name: sharpness(Image.open(path).convert("RGB")) for path in (sharp_bird, soft_bird)}
    assert centre["soft-bird.png"] > 3 * centre["sharp-bird.png"]
