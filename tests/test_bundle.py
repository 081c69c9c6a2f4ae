"""The frozen desktop app: built with packaging/build.sh (PyInstaller, CPU torch), then run as a
person runs it, from its own folder, on a real checkpoint file and with a real (offscreen) window.

About two minutes on the CI machine (two cores), most of it the build; CI runs it. Deselect it
for a quick run with `-m "not bundle"`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from birdid_app import __version__
from birdid_app.core.model.model_store import PUBLISHED_MODEL
from conftest import SPECIES, make_photo
from hub_server import FakeHub

pytestmark = [pytest.mark.bundle, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "dist" / "birdid"
BUILD_TIMEOUT_S = 1200
# What Qt's offscreen platform says about every window; nothing else may reach stderr.
OFFSCREEN_NOTE = "This plugin does not support propagateSizeHints()"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def bundle() -> Path:
    done = subprocess.run([str(ROOT / "packaging" / "build.sh"), "cpu"], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (BUNDLE / "birdid").is_file() and (BUNDLE / "birdid-gui").is_file()
    return BUNDLE


@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    """The environment of a person with no model installed, on a machine with no display."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BIRDID_", "HF_", "PYTHON"))}
    return env | {
        "BIRDID_DATA_DIR": str(tmp_path / "data"),
        "BIRDID_CONFIG_DIR": str(tmp_path / "config"),
        "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
        "QT_QPA_PLATFORM": "offscreen",
    }


def run(bundle: Path, program: str, *args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(bundle / program), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_the_frozen_app_passes_its_selftest_in_and_out_of_the_window(bundle, small_model_file, user_env):
    before = snapshot(bundle)
    done = run(bundle, "birdid", "selftest", "--model", str(small_model_file), "--window", env=user_env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() in ("", OFFSCREEN_NOTE)
    lines = done.stdout.splitlines()
    assert lines[0] == f"birdid {__version__}, frozen bundle in {bundle}"
    assert str(bundle / "_internal" / "birdid_app" / "resources") in lines[1]  # its own resources
    assert lines[2] == f"models and library: {user_env['BIRDID_DATA_DIR']}"  # the person's folders
    assert lines[3] == f"settings: {user_env['BIRDID_CONFIG_DIR']}"
    (sample,) = [line for line in lines if line.startswith("sample robin.jpg: ")]
    ranked = sample.removeprefix("sample robin.jpg: ").split(" (")[0].split("; ")  # "Great Tit 31.2%; ..."
    assert len(ranked) == 5 and {entry.rsplit(" ", 1)[0] for entry in ranked} <= set(SPECIES)
    assert any(line.startswith("window: offscreen platform, model loaded on the engine thread") for line in lines)
    assert lines[-1] == "selftest passed"
    assert snapshot(bundle) == before  # it never writes inside its own folder


def test_the_windowed_app_opens_a_photo_and_stays_up_without_errors(bundle, small_model_file, photo_dir, user_env):
    installed = run(bundle, "birdid", "model", "import", str(small_model_file), env=user_env)
    assert installed.returncode == 0, installed.stderr
    before = snapshot(bundle)
    app = subprocess.Popen([str(bundle / "birdid-gui"), str(photo_dir / "robin.png")], env=user_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)  # long enough to start, load the model on the engine thread and identify
        assert app.poll() is None, app.communicate()[1]
    finally:
        app.terminate()
        _, stderr = app.communicate(timeout=30)
    problems = [line for line in stderr.splitlines() if line.strip() and line.strip() != OFFSCREEN_NOTE]
    assert problems == []
    assert snapshot(bundle) == before


def test_the_frozen_command_line_identifies_and_downloads(bundle, small_model_file, photo_dir, user_env):
    photos = [str(photo_dir / "robin.png"), str(photo_dir / "blue-tit.jpg")]
    done = run(bundle, "birdid", "identify", "--model", str(small_model_file), "--json", *photos, env=user_env)
    assert done.returncode == 0, done.stderr
    assert [record["path"] for record in json.loads(done.stdout)] == photos

    # The download path, frozen: HTTP from a loopback hub into the hub cache, then the hash check,
    # which rejects the small file because it is not the published model.
    hub = FakeHub(PUBLISHED_MODEL.repo_id, PUBLISHED_MODEL.filename, small_model_file.read_bytes()).start()
    try:
        done = run(bundle, "birdid", "model", "download", env=user_env | {"HF_ENDPOINT": hub.url})
    finally:
        hub.stop()
    assert done.returncode != 0
    assert "is not the published model (its SHA-256 differs), so it was deleted" in done.stderr
    assert any(request.method == "GET" for request in hub.requests)


def test_the_frozen_app_indexes_zooms_and_draws_the_library_map(bundle, small_model_file, tmp_path, user_env):
    folder = tmp_path / "garden"
    for i in range(12):
        make_photo(folder / f"g{i:02}.jpg", size=(200, 150), seed=i)
    common = ["--model", str(small_model_file), "--precision", "fp32"]
    done = run(bundle, "birdid", "index", str(folder), "--zoom", *common, env=user_env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "map.png"
    done = run(bundle, "birdid", "map", "--out", str(out), "--size", "600x400", "--model", str(small_model_file),
               env=user_env)
    assert done.returncode == 0, done.stderr  # openTSNE, scipy and scikit-learn are in the bundle
    assert "Wrote the map of 12 photos" in done.stdout
    with Image.open(out) as picture:
        assert picture.size == (600, 400)


def test_the_linux_install_script_puts_the_app_in_the_menu_and_takes_it_away(bundle, tmp_path):
    home = tmp_path / "home"
    env = os.environ | {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}
    done = subprocess.run([str(ROOT / "packaging" / "linux" / "install.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    share = home / ".local" / "share"
    desktop = share / "applications" / "org.birdid.Birdid.desktop"
    installed_gui = home / ".local" / "lib" / "birdid" / "birdid-gui"
    assert f"Exec={installed_gui} %F" in desktop.read_text().splitlines()
    assert subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True).returncode == 0
    assert (share / "icons" / "hicolor" / "48x48" / "apps" / "org.birdid.Birdid.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "org.birdid.Birdid.svg").is_file()
    assert (share / "metainfo" / "org.birdid.Birdid.metainfo.xml").is_file()
    version = subprocess.run([str(home / ".local" / "bin" / "birdid"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"birdid {__version__}"

    done = subprocess.run([str(ROOT / "packaging" / "linux" / "install.sh"), "--remove"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not desktop.exists() and not installed_gui.exists() and not (home / ".local" / "bin" / "birdid").exists()
