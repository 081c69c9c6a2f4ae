"""`birdid` (the window) where no window can open: one sentence pointing to the command line,
never Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys

from birdid_app.gui.app import display_problem


def test_no_display_is_one_sentence_pointing_to_the_command_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "birdid_app"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "birdid: There is no display to open the window on (DISPLAY is not set); the command line works without "
        "one: `birdid identify PHOTO`, `birdid --help`."
    ]


def test_a_missing_x11_library_is_named_with_its_package():
    def find(name: str) -> str | None:
        return None if name == "xcb-cursor" else f"lib{name}.so"

    problem = display_problem({"DISPLAY": ":0"}, "linux", find)
    assert "install libxcb-cursor0" in problem and "apt-get install libxcb-cursor0" in problem
    assert display_problem({"DISPLAY": ":0"}, "linux", lambda name: f"lib{name}.so") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux", lambda name: None) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", lambda name: None) is None
    assert display_problem({}, "darwin", lambda name: None) is None
