"""One list of each choice (core.options), read without torch, and every front end offering it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from birdid_app.cli import build_parser
from birdid_app.core import options
from birdid_app.core.insight.explain import colormap_lut
from birdid_app.core.settings import Settings, load_settings, save_settings


@pytest.mark.parametrize(
    "module", ["birdid_app.core.options", "birdid_app.core.insight.explain", "birdid_app.cli", "birdid_app.core.model.precision"]
)
def test_the_lists_and_the_drawing_load_without_torch(module):
    """The window reads the lists, draws overlays, exports pictures and reads or forgets the kept
    precision trials before torch is loaded; `birdid model list` shows them without it."""
    code = f"import sys, {module}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_lists_agree_with_the_model_code():
    from birdid_app.core.model.inference import DEVICES, PRECISIONS

    assert DEVICES == options.DEVICES and PRECISIONS == options.PRECISIONS


@pytest.mark.parametrize("command", ["identify", "explain", "index", "similar", "selftest"])
def test_every_command_that_runs_the_model_takes_every_device_and_precision(command):
    parser = build_parser()
    needs = {"identify": ["x.jpg"], "explain": ["x.jpg", "--out", "x.png"], "similar": ["x.jpg"]}.get(command, [])
    for device in options.DEVICES:
        for precision in options.PRECISIONS:
            args = parser.parse_args([command, *needs, "--device", device, "--precision", precision])
            assert (args.device, args.precision) == (device, precision)
    defaults = parser.parse_args([command, *needs])
    assert (defaults.device, defaults.precision) == (options.DEFAULT_DEVICE, options.DEFAULT_PRECISION)


def test_explain_starts_from_the_windows_defaults():
    args = build_parser().parse_args(["explain", "x.jpg", "--out", "x.png"])
    settings = Settings()
    assert (args.stage, args.mode, args.colormap, args.opacity) == (
        settings.overlay_stage, settings.overlay_mode, settings.overlay_colormap, settings.overlay_opacity
    )


def test_every_choice_survives_the_settings_file(tmp_path):
    path = tmp_path / "settings.json"
    for device in options.DEVICES:
        save_settings(Settings(device=device), path)
        assert load_settings(path).device == device
    for precision in options.PRECISIONS:
        save_settings(Settings(precision=precision), path)
        assert load_settings(path).precision == precision
    for stage, mode, colormap in zip(options.STAGES, options.OVERLAY_MODES, options.COLORMAPS * 2, strict=False):
        save_settings(Settings(overlay_stage=stage, overlay_mode=mode, overlay_colormap=colormap), path)
        loaded = load_settings(path)
        assert (loaded.overlay_stage, loaded.overlay_mode, loaded.overlay_colormap) == (stage, mode, colormap)


def test_every_colormap_offered_can_be_drawn():
    for name in options.COLORMAPS:
        assert colormap_lut(name).shape == (256, 3)
