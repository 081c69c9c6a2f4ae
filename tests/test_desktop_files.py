"""The desktop integration files: valid by the standard validators, and true to the app."""

from __future__ import annotations

import configparser
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from birdid_app import APP_ID, __version__
from birdid_app.core.photos.photo import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parent.parent
DESKTOP_FILE = ROOT / "packaging" / "linux" / f"{APP_ID}.desktop"
METAINFO = ROOT / "packaging" / "linux" / f"{APP_ID}.metainfo.xml"
# The MIME type a file manager gives each suffix birdid reads.
MIME_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff", ".gif": "image/gif",
    ".heic": "image/heic", ".heif": "image/heif", ".hif": "image/heif",
    # RAW files, by the names shared-mime-info gives them.
    ".cr2": "image/x-canon-cr2", ".cr3": "image/x-canon-cr3", ".nef": "image/x-nikon-nef",
    ".arw": "image/x-sony-arw", ".dng": "image/x-adobe-dng", ".orf": "image/x-olympus-orf",
    ".raf": "image/x-fuji-raf", ".rw2": "image/x-panasonic-rw2", ".pef": "image/x-pentax-pef",
}


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(DESKTOP_FILE, encoding="utf-8")
    return parser["Desktop Entry"]


def test_the_desktop_file_passes_desktop_file_validate():
    done = subprocess.run(["desktop-file-validate", str(DESKTOP_FILE)], capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_metainfo_passes_appstreamcli_validate():
    done = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation was successful" in done.stdout


def test_open_with_offers_birdid_for_every_photo_type_it_reads():
    entry = desktop_entry()
    assert set(entry["MimeType"].rstrip(";").split(";")) == {MIME_TYPES[suffix] for suffix in IMAGE_SUFFIXES}
    assert entry["Exec"] == "birdid-gui %F"  # %F: every selected file, as arguments
    assert entry["Icon"] == APP_ID


def test_the_metainfo_describes_this_version_of_this_app():
    component = ET.parse(METAINFO).getroot()
    assert component.findtext("id") == APP_ID
    assert component.find("launchable").text == DESKTOP_FILE.name
    assert component.find("releases/release").get("version") == __version__  # release notes for it
    assert len(component.findall("screenshots/screenshot")) >= 1


def test_the_icon_comes_in_every_usual_size():
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        with Image.open(ROOT / "resources" / "icons" / "png" / f"birdid-{size}.png") as icon:
            assert icon.size == (size, size) and icon.mode == "RGBA"
            assert icon.getpixel((0, 0))[3] == 0 and icon.getpixel((size // 2, size // 2))[3] == 255


def test_the_bundle_build_installs_every_runtime_dependency_but_torchvision():
    """packaging/build.sh lists the app's dependencies itself (to pin torch's build): a dependency
    added to pyproject.toml and not there is missing from the frozen app only, at run time."""
    import re
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0) for requirement in dependencies}
    build = (ROOT / "packaging" / "build.sh").read_text()
    missing = {name for name in names - {"torchvision"} if f'"{name}' not in build and f"{name}==" not in build}
    assert not missing, f"packaging/build.sh does not install {sorted(missing)}"
