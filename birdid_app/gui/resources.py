"""Icons and other plain files from resources/, found through the installed package."""

from __future__ import annotations

from functools import cache
from importlib import resources

from PySide6.QtGui import QIcon


@cache
def icon(name: str) -> QIcon:
    """An icon from resources/icons by file stem, e.g. icon("birdid")."""
    path = resources.files("birdid_app.resources") / "icons" / f"{name}.svg"
    return QIcon(str(path))
