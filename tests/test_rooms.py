"""Rooms and doors: the import arrows point one way, desktop → bridge → engine, and lab → engine
(STYLE.md §1-2). The lab (corpus, training, evaluation) is reached only by the bridge's lab commands.

Modules are parsed with ``ast``, never imported, so a violation is caught even in code that
would fail to import on this machine (no Qt, no GPU).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("engine", "lab", "bridge", "desktop")
MAX_LINES = 800

QT = {"PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy"}
OSC = {"pythonosc", "oscpy", "osc4py3", "liblo", "pyliblo3"}
TORCH = {"torch", "torchaudio"}

# room -> {top-level module: why it is off limits}
FORBIDDEN: dict[str, dict[str, str]] = {
    "engine": {
        **{m: "engine/ never touches Qt" for m in QT},
        **{m: "engine/ never touches OSC" for m in OSC},
        "bridge": "arrows point desktop → bridge → engine",
        "desktop": "arrows point desktop → bridge → engine",
        "lab": "arrows point lab → engine: the runtime never loads the lab",
    },
    "lab": {
        **{m: "lab/ never touches Qt" for m in QT},
        **{m: "lab/ never touches OSC" for m in OSC},
        "bridge": "arrows point lab → engine",
        "desktop": "arrows point lab → engine",
    },
    "bridge": {
        **{m: "bridge/ never touches Qt" for m in QT},
        **{m: "bridge/ reaches torch only through engine's public API" for m in TORCH},
        "desktop": "arrows point desktop → bridge → engine",
    },
    "desktop": {
        **{m: "desktop/ never imports torch" for m in TORCH},
        "engine": "desktop/ reaches the engine only through bridge/",
        "lab": "desktop/ never loads the lab",
    },
}


def _imports(tree: ast.AST, module_parts: list[str], is_package: bool) -> list[tuple[int, str, bool]]:
    """Absolute names of everything a module imports: ``(line, name, last part may be an attribute)``.

    ``from pkg import name`` yields ``pkg.name``, flagged because ``name`` may be an attribute of
    ``pkg`` rather than a submodule; relative imports
    are resolved against the module's own package; ``importlib.import_module("x")`` and
    ``__import__("x")`` with a literal name count too.
    """
    package = module_parts if is_package else module_parts[:-1]
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up >= len(package):  # the rooms are top-level: nothing sits above them
                    found.append((node.lineno, "<relative import beyond the top level>", False))
                    continue
                base = package[: len(package) - up]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found += [(node.lineno, f"{prefix}.{a.name}", True) for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value, False))
    return found


def _is_submodule(name: str, maybe_attr: bool, root: Path, package: str = "engine") -> bool:
    """Whether ``package.x…`` names a module inside package/ rather than its public API."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != package:
        return False
    if len(parts) > 2 or not maybe_attr:
        return True  # `import engine.x` / `from engine.x import y` are past the front door
    sub = root / package / parts[1]
    # `from engine import Generator` is fine; `from engine import autoencoder` is not.
    return sub.with_suffix(".py").exists() or sub.is_dir()


def check_source(source: str, rel_path: str, root: Path = ROOT) -> list[str]:
    """Violations of the room rules in one module, as ``path:line: message`` strings."""
    parts = Path(rel_path).with_suffix("").parts
    room = parts[0]
    is_package = parts[-1] == "__init__"
    module_parts = list(parts[:-1] if is_package else parts)
    tree = ast.parse(source, filename=rel_path)
    problems = []
    for line, name, maybe_attr in _imports(tree, module_parts, is_package):
        top = name.split(".")[0]
        if name.startswith("<"):
            problems.append(f"{rel_path}:{line}: {name}")
        elif top in FORBIDDEN[room]:
            problems.append(f"{rel_path}:{line}: imports {name}: {FORBIDDEN[room][top]}")
        elif room == "bridge" and any(_is_submodule(name, maybe_attr, root, pkg) for pkg in ("engine", "lab")):
            problems.append(
                f"{rel_path}:{line}: imports {name}: bridge/ may only use the engine's and the lab's public "
                "API (`import engine` / `from lab import X` of names in their __init__.py)"
            )
    return problems


def _modules() -> list[Path]:
    return sorted(p for room in ROOMS for p in (ROOT / room).rglob("*.py"))


def test_rooms_import_only_downstream() -> None:
    problems = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        problems += check_source(path.read_text(encoding="utf-8"), rel)
    assert not problems, "room rules broken:\n" + "\n".join(problems)


def test_modules_stay_under_800_lines() -> None:
    too_long = []
    for path in _modules():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            too_long.append(f"{path.relative_to(ROOT).as_posix()}: {n} lines")
    assert not too_long, f"split these modules (limit {MAX_LINES} lines):\n" + "\n".join(too_long)


@pytest.mark.parametrize(
    ("path", "source", "needle"),
    [
        (
            "engine/model.py",
            "import torch\nfrom PySide6.QtCore import QObject\n",
            "engine/model.py:2: imports PySide6.QtCore",
        ),
        ("engine/model.py", "from pythonosc import udp_client\n", "imports pythonosc.udp_client"),
        ("engine/model.py", "import bridge.jobs\n", "imports bridge.jobs"),
        ("engine/sub/x.py", "from ...bridge import jobs\n", "engine/sub/x.py:1: <relative import beyond"),
        ("engine/model.py", "def f():\n    from desktop import app\n", "engine/model.py:2: imports desktop.app"),
        ("bridge/cli.py", "import torch\n", "bridge/cli.py:1: imports torch"),
        ("bridge/cli.py", "from PyQt6 import QtWidgets\n", "imports PyQt6.QtWidgets"),
        ("bridge/cli.py", "import desktop\n", "imports desktop"),
        ("bridge/cli.py", "from engine.sampling import sample\n", "imports engine.sampling.sample"),
        ("bridge/cli.py", "import engine.autoencoder as ae\n", "imports engine.autoencoder"),
        ("bridge/cli.py", "import importlib\nimportlib.import_module('torch')\n", "bridge/cli.py:2: imports torch"),
        ("bridge/cli.py", "from .. import engine\n", "relative import beyond"),
        ("desktop/window.py", "import torch.nn\n", "imports torch.nn"),
        ("desktop/window.py", "from engine import Generator\n", "imports engine.Generator"),
        (
            "engine/pipeline.py",
            "def f():\n    from lab import run_eval\n",
            "engine/pipeline.py:2: imports lab.run_eval",
        ),
        ("lab/training/x.py", "from bridge import jobs\n", "imports bridge.jobs"),
        ("bridge/cli.py", "from lab.training.loop import Logger\n", "imports lab.training.loop.Logger"),
        ("desktop/window.py", "import lab\n", "imports lab"),
    ],
)
def test_checker_catches_violations(path: str, source: str, needle: str, tmp_path: Path) -> None:
    problems = check_source(source, path, root=tmp_path)
    assert any(needle in p for p in problems), problems


def test_engine_import_leaves_the_lab_out() -> None:
    """`import engine` (what `generate`, `serve` and the app load) loads neither the lab nor what
    only the lab needs. A fresh interpreter, so nothing imported by other tests counts."""
    import subprocess
    import sys

    lab_only = ["lab", "mido", "pedalboard", "auraloss", "librosa", "mir_eval", "matplotlib"]
    code = f"import sys, engine; print(' '.join(m for m in {lab_only!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"import engine loaded: {out.stdout.strip()}"


def _module_level_imports(path: Path, package: str) -> set[str]:
    """Modules of `package` that `path` imports at module level (not inside functions)."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    is_package = rel[-1] == "__init__"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    found = set()
    for _, name, maybe_attr in _imports(top, list(rel[:-1] if is_package else rel), is_package):
        parts = name.split(".")
        if parts[0] != package:
            continue
        for n in (len(parts), len(parts) - 1) if maybe_attr else (len(parts),):
            mod = ".".join(parts[:n])
            if (ROOT / Path(*mod.split("."))).with_suffix(".py").exists() or (ROOT / Path(*mod.split("."))).is_dir():
                found.add(mod)
                break
    return found


def test_engine_has_no_import_cycles() -> None:
    """No circle of module-level imports inside engine/ (a circle makes import order matter)."""
    graph = {}
    for path in (ROOT / "engine").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts)
        graph[name] = {m for m in _module_level_imports(path, "engine") if m != name and m != "engine"}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in state and (found := visit(nxt, trail + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_checker_flags_engine_submodule_named_in_from_import(tmp_path: Path) -> None:
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "autoencoder.py").write_text("")
    assert check_source("from engine import autoencoder\n", "bridge/x.py", root=tmp_path)
    assert not check_source("from engine import Generator\n", "bridge/x.py", root=tmp_path)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (
            "engine/model.py",
            "import torch\nimport numpy as np\nfrom .errors import EngineError\nfrom . import config\n",
        ),
        (
            "bridge/cli.py",
            "import engine\nfrom engine import Generator, RenderRequest\nfrom .errors import BridgeError\n",
        ),
        ("bridge/train_cli.py", "def f():\n    import lab\n    from lab import train_dit\n"),
        ("lab/training/x.py", "from engine.autoencoder import WNConv1d\nfrom ..data import build_corpus\n"),
        ("engine/sub/x.py", "from ..errors import EngineError\nfrom .. import config\n"),
        ("bridge/osc.py", "from pythonosc import dispatcher\n"),
        ("desktop/window.py", "from PySide6.QtWidgets import QWidget\nimport numpy\nfrom bridge import jobs\n"),
    ],
)
def test_checker_allows_the_doors(path: str, source: str, tmp_path: Path) -> None:
    assert check_source(source, path, root=tmp_path) == []


def test_engine_front_door_lists_each_name_once_for_checkers_and_for_runtime() -> None:
    """engine/__init__.py names its API twice: for type checkers (imports under TYPE_CHECKING) and
    for the run time (`_EXPORTS`, loaded on first use). Both must say the same name -> module, and
    every name must load."""
    import engine

    tree = ast.parse((ROOT / "engine" / "__init__.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    checked = {
        alias.name: (node.module or "")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert checked == engine._EXPORTS
    assert all(getattr(engine, name) is not None for name in engine.__all__)
