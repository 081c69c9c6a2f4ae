"""Where a photo was taken, for the range prior: the place a person set for it or its folder,
else its own GPS, else the home place (core/places/place.py decides among them)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from birdid_app.core.places.place import Where


def place_set_for(places: dict[str, tuple[float, float, str | None]], path: Path
                  ) -> tuple[float, float, str | None, str] | None:
    """(latitude, longitude, name, "person" for the photo's own or "folder") of the place set for
    `path` or its nearest folder that has one, among `places` (Library.assigned_places()); None."""
    if not places:
        return None
    path = Path(path)
    for candidate in (path, *path.parents):
        found = places.get(str(candidate))
        if found is not None:
            return (*found, "person" if candidate == path else "folder")
    return None


def photo_where(places: dict[str, tuple[float, float, str | None]], path: Path, taken_at: str | None,
                latitude: float | None, longitude: float | None, *,
                home_place: tuple[float, float] | None, option_place: tuple[float, float] | None = None,
                option_date: datetime.date | None = None) -> tuple[Where | None, list[str]]:
    """core.place.resolve_where for a photo at `path`, with the place a person set for it or its
    folder among `places` (Library.assigned_places()): (Where or None, notes)."""
    from birdid_app.core.places.place import resolve_where

    assigned = place_set_for(places, path)
    return resolve_where(
        option_place=option_place, option_date=option_date, photo_taken_at=taken_at, photo_latitude=latitude,
        photo_longitude=longitude, assigned_place=assigned[:2] if assigned else None,
        assigned_source=assigned[3] if assigned else "person", settings_place=home_place,
    )
