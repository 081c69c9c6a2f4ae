"""The person's settings, kept as a small JSON file in the config folder.

Loading never fails: a settings file that is missing, half-written by another program, edited by
hand or left by another version of birdid must not stop the app from starting, so each field that
cannot be used falls back to its default on its own and the good ones are kept. Saving replaces the
file in one step, so a crash leaves the old settings or the new ones, never half of each.

Which devices actually exist is only known once torch has loaded, and this module is read before
the window appears (torch is not), so a device is checked here for its form only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdid_app.core import options
from birdid_app.core.atomic import atomic_write
from birdid_app.core.errors import FileProblem
from birdid_app.core.options import PRECISIONS, STAGES
from birdid_app.core.paths import config_dir

if TYPE_CHECKING:
    from birdid_app.core.photos.sidecar import SidecarStyle

SETTINGS_FILE_NAME = "settings.json"
DEVICE_NAMES = options.DEVICES  # plus "cuda:N", one GPU by its index
TOP_K_MIN = 1
TOP_K_MAX = 50
AUTOMATIC_CPU_THREADS = 0  # leave the thread count to torch
MAX_RECENT = 10
OVERLAY_MODES = options.OVERLAY_MODES
OVERLAY_COLORMAPS = options.COLORMAPS
SIDECAR_STYLES = options.SIDECAR_STYLES

_CUDA_INDEXED = re.compile(r"cuda:[0-9]+")  # [0-9], not \d: \d also matches non-ASCII digits

logger = logging.getLogger(__name__)


class SettingsError(FileProblem):
    """The settings file cannot be written."""


@dataclass
class Settings:
    device: str = options.DEFAULT_DEVICE  # one of DEVICE_NAMES, or "cuda:N"
    precision: str = options.DEFAULT_PRECISION  # one of PRECISIONS
    top_k: int = 5  # species shown per photo, TOP_K_MIN..TOP_K_MAX
    cpu_threads: int = AUTOMATIC_CPU_THREADS  # or 1..max_cpu_threads()
    recent_files: list[str] = field(default_factory=list)  # most recent first, at most MAX_RECENT
    # What the overlay view showed last: a stage of STAGES, a mode of OVERLAY_MODES, a colour map
    # of OVERLAY_COLORMAPS; the command line's `explain` starts from the same defaults.
    overlay_stage: int = options.DEFAULT_STAGE
    overlay_mode: str = options.DEFAULT_OVERLAY_MODE
    overlay_colormap: str = options.DEFAULT_COLORMAP
    overlay_opacity: float = options.DEFAULT_OPACITY
    # The main window's size and place when it was last closed: Qt's saveGeometry, in base64.
    window_geometry: str = ""
    # Keywords for photo editors (core/photos/sidecar.py): the sidecar naming of the editor used
    # ("lightroom": photo.xmp, also Capture One; "darktable": photo.ext.xmp, also digiKam), the
    # root of the hierarchical keyword, and whether to write into JPEGs themselves.
    sidecar_style: SidecarStyle = "lightroom"
    keyword_root: str = "Birds"
    embed_in_jpeg: bool = False
    # Zoom on the bird (core/insight/trust.py) for every photo the window identifies and every photo the
    # window's indexer adds; off, the window offers it per photo.
    zoom_every_photo: bool = False
    # Where the person usually photographs, [latitude, longitude] or [] for nowhere set: the
    # range prior's place for a photo with no GPS and no place of its own (core/places/place.py), and
    # the name they typed or picked for it.
    home_place: list[float] = field(default_factory=list)
    home_place_name: str = ""
    # The window's answer: ranked with the range prior (where and when) or by the picture alone.
    rank_by_place: bool = True


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


def max_cpu_threads() -> int:
    # os.cpu_count() is None where the platform cannot tell.
    return os.cpu_count() or 1


def is_valid_device(device: str) -> bool:
    """Whether `device` has the form of a device name; not whether this computer has it."""
    return device in DEVICE_NAMES or _CUDA_INDEXED.fullmatch(device) is not None


def add_recent_file(settings: Settings, path: str) -> None:
    """Put `path` first in the recent files, once, dropping the oldest beyond MAX_RECENT."""
    others = [recent for recent in settings.recent_files if recent != path]
    settings.recent_files = [path, *others][:MAX_RECENT]


def load_settings(path: Path | None = None) -> Settings:
    """The settings in `path` (by default settings_path()); defaults for whatever is missing or
    unusable. Never raises for anything about the file."""
    path = settings_path() if path is None else path
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    # ValueError covers bad JSON and bad UTF-8; RecursionError, arrays nested thousands deep.
    except (OSError, ValueError, RecursionError) as error:
        logger.warning("Ignoring the settings file %s, which cannot be read (%s); using the defaults.", path, error)
        return Settings()
    if not isinstance(stored, dict):
        logger.warning("Ignoring the settings file %s, which holds no settings; using the defaults.", path)
        return Settings()

    values: dict[str, Any] = {}
    reset: list[str] = []
    for setting in fields(Settings):
        if setting.name not in stored:
            continue
        value = _VALIDATORS[setting.name](stored[setting.name])
        if value is None:
            reset.append(setting.name)
        else:
            values[setting.name] = value
    if reset:
        logger.warning("Settings file %s: unusable %s, using the default.", path, ", ".join(reset))
    return Settings(**values)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write `settings` to `path` (by default settings_path()), creating its folder. Atomically:
    the new file is written beside the old one and then takes its name in one step."""
    path = settings_path() if path is None else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as out:
            json.dump(asdict(settings), out, indent=2)
            out.write("\n")
    except OSError as error:
        raise SettingsError(path, f"the settings cannot be saved ({error.strerror or error}).") from error


# Each validator returns the value to use, or None when the stored one is unusable. bool is
# excluded from the integers: JSON true would otherwise pass as 1.


def _valid_device(value: object) -> str | None:
    return value if isinstance(value, str) and is_valid_device(value) else None


def _valid_precision(value: object) -> str | None:
    return value if isinstance(value, str) and value in PRECISIONS else None


def _valid_top_k(value: object) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return min(max(value, TOP_K_MIN), TOP_K_MAX)


def _valid_cpu_threads(value: object) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    # A file copied from a bigger computer asks for more threads than this one has.
    return min(max(value, AUTOMATIC_CPU_THREADS), max_cpu_threads())


def _valid_recent_files(value: object) -> list[str] | None:
    if not isinstance(value, list):
        return None
    kept: list[str] = []
    for entry in value:
        if isinstance(entry, str) and entry and entry not in kept:
            kept.append(entry)
    return kept[:MAX_RECENT]


def _valid_overlay_stage(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value in STAGES else None


def _valid_overlay_mode(value: object) -> str | None:
    return value if value in OVERLAY_MODES else None


def _valid_overlay_colormap(value: object) -> str | None:
    return value if value in OVERLAY_COLORMAPS else None


def _valid_overlay_opacity(value: object) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return min(max(float(value), 0.0), 1.0)


def _valid_window_geometry(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 4096:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    return value


def _valid_sidecar_style(value: object) -> str | None:
    return value if value in SIDECAR_STYLES else None


def _valid_keyword_root(value: object) -> str | None:
    return value.strip("|") if isinstance(value, str) and value.strip("| ") else None


def _valid_flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _valid_home_place(value: object) -> list[float] | None:
    if value == []:
        return []
    if not isinstance(value, list) or len(value) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return None
    from birdid_app.core.places.place import checked_position

    checked = checked_position(value[0], value[1])
    return list(checked) if isinstance(checked, tuple) else None


def _valid_place_name(value: object) -> str | None:
    return value[:200] if isinstance(value, str) and value.isprintable() else None


_VALIDATORS = {
    "device": _valid_device,
    "precision": _valid_precision,
    "top_k": _valid_top_k,
    "cpu_threads": _valid_cpu_threads,
    "recent_files": _valid_recent_files,
    "overlay_stage": _valid_overlay_stage,
    "overlay_mode": _valid_overlay_mode,
    "overlay_colormap": _valid_overlay_colormap,
    "overlay_opacity": _valid_overlay_opacity,
    "window_geometry": _valid_window_geometry,
    "sidecar_style": _valid_sidecar_style,
    "keyword_root": _valid_keyword_root,
    "embed_in_jpeg": _valid_flag,
    "zoom_every_photo": _valid_flag,
    "home_place": _valid_home_place,
    "home_place_name": _valid_place_name,
    "rank_by_place": _valid_flag,
}
