"""Where birdid keeps its files. Each folder comes from platformdirs and can be moved with an
environment variable, so tests and portable installs never touch the user's real folders."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

from birdid_app import APP_NAME

DATA_DIR_VARIABLE = "BIRDID_DATA_DIR"
CONFIG_DIR_VARIABLE = "BIRDID_CONFIG_DIR"


def data_dir() -> Path:
    """Models and the photo library live here."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_VARIABLE)
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Imported models and the index of installed ones (downloads go to the hub cache)."""
    return data_dir() / "models"


def sample_picture() -> Path:
    """The bundled sample picture (resources/samples/robin.jpg, a drawing of a robin) that the
    precision trial and `birdid selftest` identify. The package is always unpacked on disk, as a
    wheel or in the frozen bundle, so this is a real file."""
    return Path(str(resources.files("birdid_app.resources") / "samples" / "robin.jpg"))


def file_key(path: Path) -> str | None:
    """"path|size|mtime" of a file, for what is kept per model file (the precision trial, the
    int8 conversion) and found again without reading it; None when the file is gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
