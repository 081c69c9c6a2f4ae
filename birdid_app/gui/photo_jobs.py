"""The Identify tab's work on photos, off the GUI thread: finding the photos in what was opened,
decoding for display and for the strip's thumbnails, and exporting the overlay. Each job is a
`work(report, should_cancel)` for gui/jobs.py's Job."""

from __future__ import annotations

import os
from pathlib import Path

from birdid_app.core.photos.photo import IMAGE_SUFFIXES
from birdid_app.gui.images import qimage_from_pil
from birdid_app.gui.overlay_panel import OverlayChoice
from birdid_app.gui.session import PhotoEntry

THUMBNAIL_SIZE = 96


def photos_in(paths: list[Path]) -> list[Path]:
    """The files among `paths`, and the photos inside any folder among them (sorted, recursive)."""
    found: list[Path] = []
    for path in paths:
        if os.path.isdir(path):  # not Path.is_dir: it raises for a name too long for the system
            found += sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        else:
            found.append(path)
    return found


def read_place_names(report, should_cancel) -> None:
    """Read the list of towns the engine names places from (a second or so), ahead of the first answer."""
    from birdid_app.core.places.place import place_name

    place_name(52.37, 4.89)


def opening_words(path: Path) -> str:
    from birdid_app.core.photos.raw import RAW_SUFFIXES

    return f"Decoding the RAW {path.name}…" if path.suffix.lower() in RAW_SUFFIXES else f"Opening {path.name}…"


def thumbnail_image(image):
    copy = image.copy()
    copy.thumbnail((THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))  # 2x: sharp on high-DPI screens
    return qimage_from_pil(copy)


def decode_for_display(path: Path):
    def work(report, should_cancel):
        from birdid_app.core.photos.photo import decode_photo

        return qimage_from_pil(decode_photo(path, draft_size=None))

    return work


def decode_thumbnail(path: Path):
    def work(report, should_cancel):
        from birdid_app.core.photos.thumbnails import thumbnail

        return qimage_from_pil(thumbnail(path))  # the Library tab's cache: 256 px, sharp at 96 on high-DPI screens

    return work


def export_overlay_png(entry: PhotoEntry, values, choice: OverlayChoice, path: Path, blended: bool, photo_size):
    """A job: the overlay alone (at the size of the photo or region it covers) or over the photo,
    drawn as `birdid explain` draws it."""

    def work(report, should_cancel):
        from birdid_app.core.insight import explain
        from birdid_app.core.photos.photo import decode_photo

        if blended:
            photo = entry.image if entry.image is not None else decode_photo(entry.file(), draft_size=None)
        else:
            photo = photo_size
        picture = explain.render_picture(photo, values, choice.opacity, choice.colormap, entry.region, blended=blended)
        explain.save_png(picture, path)  # never a half-written PNG under the name the person chose
        return path

    return work
