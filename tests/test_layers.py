"""The architecture's rule: birdid_app/core never imports Qt."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import birdid_app.core

QT_MODULES = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "PySide2")
CORE_DIR = Path(birdid_app.core.__file__).parent


def test_no_core_source_file_imports_qt():
    offenders = []
    for path in sorted(CORE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in QT_MODULES]
    assert offenders == []


def test_importing_all_of_core_loads_no_qt():
    modules = [f"birdid_app.core.{m.name}" for m in pkgutil.iter_modules([str(CORE_DIR)])]
    assert "birdid_app.core.inference" in modules
    code = (
        f"import sys, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_window_module_loads_without_torch():
    """The window must appear before torch is loaded: torch loads on the engine thread."""
    code = "import sys, birdid_app.gui.main_window; print('torch' in sys.modules)"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
