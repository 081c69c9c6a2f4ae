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
    modules = [m.name for m in pkgutil.walk_packages([str(CORE_DIR)], prefix="birdid_app.core.")]
    assert "birdid_app.core.model.inference" in modules
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


APP_DIR = Path(birdid_app.core.__file__).parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import in the tree, at any depth, except those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the birdid_app modules it imports, found by reading the source."""
    files = {_module_name(p): p for p in sorted(APP_DIR.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from package import submodule` imports the submodule
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_finds_what_it_should():
    graph = import_graph()
    assert "birdid_app.core.model.inference" in graph["birdid_app.gui.engine"]
    # imported inside a method, and `from birdid_app.core import paths` names a submodule
    assert "birdid_app.gui.library_map_view" in graph["birdid_app.gui.library_view"]
    assert "birdid_app.core.paths" in graph["birdid_app.core.model.precision"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_birdid_app():
    """Function-level imports count: a cycle hidden in a function is still a cycle."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# core's folders, lowest first: each imports only from the folders before it and from core's own
# modules (the shared base: errors, files, atomic, paths...). `settings` is the app's settings and
# reads every folder's options, so it may import any of them, and none of them imports it.
CORE_LAYERS = ("base", "photos", "model", "places", "library", "insight", "settings")


def _core_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["birdid_app", "core"] or len(parts) < 3:
        return None
    if parts[2] == "settings":
        return "settings"
    return parts[2] if parts[2] in CORE_LAYERS else "base"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        layer = _core_layer(module)
        for target in sorted(targets):
            to = _core_layer(target)
            if layer and to and CORE_LAYERS.index(to) > CORE_LAYERS.index(layer):
                wrong.append(f"{module} ({layer}) imports {target} ({to})")
    return wrong


def test_core_folders_import_one_way():
    graph = import_graph()
    assert {_core_layer(m) for m in graph} >= set(CORE_LAYERS), "a layer has no module: update CORE_LAYERS"
    assert upward_imports(graph) == []


def test_the_layer_check_sees_an_upward_import():
    graph = {
        "birdid_app.core.photos.photo": {"birdid_app.core.errors", "birdid_app.core.model.inference"},
        "birdid_app.core.insight.trust": {"birdid_app.core.library.library"},
        "birdid_app.core.settings": {"birdid_app.core.places.place"},
        "birdid_app.gui.engine": {"birdid_app.core.settings"},
    }
    assert upward_imports(graph) == [
        "birdid_app.core.photos.photo (photos) imports birdid_app.core.model.inference (model)"
    ]
