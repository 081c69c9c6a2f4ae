"""The one thumbnail cache (core/photos/thumbnails.py): what the Library tab, the map and the Identify
strip show, kept whole, and made again when what is kept cannot be read."""

from __future__ import annotations

import os
import threading

from PIL import Image

from birdid_app.core.photos import thumbnails
from birdid_app.core.photos.thumbnails import THUMBNAIL_SIDE, cache_path, prune, thumbnail, thumbnail_file
from conftest import make_photo


def test_a_thumbnail_is_kept_and_read_back_fitted_in_its_square(tmp_path):
    photo = make_photo(tmp_path / "p.jpg", size=(1200, 800), seed=3)
    first = thumbnail(photo)
    assert first.size == (THUMBNAIL_SIDE, round(THUMBNAIL_SIDE * 2 / 3)) and first.mode == "RGB"
    kept = cache_path(photo)
    assert kept.is_file()
    os.utime(kept, ns=(1, 1))
    inode = os.stat(kept).st_ino
    again = thumbnail(photo)
    assert again.size == first.size and os.stat(kept).st_ino == inode  # read, not made again
    assert os.stat(kept).st_mtime_ns > 1  # and marked used, so the cache keeps it longest
    assert thumbnail_file(photo, skip_decoding=lambda: True) == kept  # kept: nothing to skip


def test_a_changed_photo_gets_a_new_thumbnail_and_a_missing_one_may_be_skipped(tmp_path):
    photo = make_photo(tmp_path / "p.jpg", size=(640, 480), seed=1)
    old = cache_path(photo)
    make_photo(photo, size=(480, 640), seed=2)
    os.utime(photo, ns=(10**18, 10**18))
    assert cache_path(photo) != old
    assert thumbnail_file(photo, skip_decoding=lambda: True) is None and not cache_path(photo).exists()


def test_a_damaged_or_replaced_thumbnail_is_made_again(tmp_path):
    photo = make_photo(tmp_path / "p.jpg", size=(640, 480), seed=4)
    kept = cache_path(photo)
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"\xff\xd8 not a jpeg")
    assert thumbnail(photo).size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE * 3 // 4)
    with Image.open(kept) as image:
        assert image.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE * 3 // 4)  # the damaged file replaced whole
    kept.unlink()
    os.mkfifo(kept)  # a named pipe in its place must not hang the reader
    done = []
    reader = threading.Thread(target=lambda: done.append(thumbnail(photo)), daemon=True)
    reader.start()
    reader.join(20)
    assert done and done[0].size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE * 3 // 4)


def test_two_windows_asking_at_once_each_get_a_whole_thumbnail(tmp_path):
    photo = make_photo(tmp_path / "p.jpg", size=(3000, 2000), seed=5)
    results: list[Image.Image] = []
    threads = [threading.Thread(target=lambda: results.append(thumbnail(photo))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(image.size == results[0].size for image in results)
    with Image.open(cache_path(photo)) as kept:
        kept.load()  # complete: a half-written JPEG raises here
    assert [p.name for p in cache_path(photo).parent.iterdir()] == [cache_path(photo).name]  # no temporaries left


def test_the_cache_forgets_the_least_recently_used_thumbnails_past_its_limit(tmp_path):
    photos = [make_photo(tmp_path / f"p{i}.jpg", size=(640, 480), seed=i) for i in range(6)]
    kept = [thumbnail_file(photo) for photo in photos]
    for age, path in enumerate(kept):
        os.utime(path, ns=(10**18 + age, 10**18 + age))  # p0 used longest ago, p5 last
    thumbnail_file(photos[0])  # looked at again now: the newest use of all
    folder = kept[0].parent
    total = sum(os.stat(p).st_size for p in kept)
    assert prune(folder, limit_bytes=total) == 0  # at the limit: nothing goes
    deleted = prune(folder, limit_bytes=total - 1)
    left = [p for p in kept if p.exists()]
    assert deleted >= 1 and sum(os.stat(p).st_size for p in left) <= (total - 1) * 9 // 10
    assert kept[0] in left and kept[5] in left and not kept[1].exists()  # oldest use went first
    assert len(left) == len(kept) - deleted


def test_making_thumbnails_prunes_the_cache_every_few_hundred(tmp_path, monkeypatch):
    monkeypatch.setattr(thumbnails, "_PRUNE_EVERY", 3)
    monkeypatch.setattr(thumbnails, "_made_since_prune", 0)
    monkeypatch.setattr(thumbnails, "CACHE_LIMIT_BYTES", 1)
    photos = [make_photo(tmp_path / f"p{i}.jpg", size=(320, 240), seed=i) for i in range(3)]
    thumbnail_file(photos[0]), thumbnail_file(photos[1])
    assert cache_path(photos[0]).exists() and cache_path(photos[1]).exists()
    thumbnail_file(photos[2])  # the third one made: the cache is looked at, all over a 1-byte limit
    assert not any(cache_path(p).exists() for p in photos)
