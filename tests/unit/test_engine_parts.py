"""The engine package's shape (issue 14): small parts, reached by tests only through their
public faces.

- no class in src/entropy/engine/ is over 200 lines;
- no test reads or writes a private attribute of the engine's parts: any
  `x._name` (or setattr/getattr/monkeypatch.setattr(x, "_name")) where _name
  is a private name defined in entropy/engine/, on anything but the test's
  own `self`, in a test file that imports the engine or on an expression
  that names an engine. Tests use Engine.run_once() and the parts' methods.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "src" / "entropy" / "engine"
TESTS = ROOT / "tests"
MAX_CLASS_LINES = 200


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def private_names() -> set[str]:
    """Every private attribute, method and class name the engine's modules define."""
    names = set()
    for path in ENGINE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                name = node.attr if node.value.id == "self" else ""
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                name = node.name
            else:
                continue
            if _private(name):
                names.add(name)
    return names


def _imports_engine(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("entropy.engine"):
            return True
        if isinstance(node, ast.Import) and any(
            a.name.startswith("entropy.engine") for a in node.names
        ):
            return True
    return False


def offences(source: str, names: set[str]) -> list[str]:
    """Private engine names a test's source reaches into, as `line N: x._name`."""
    tree = ast.parse(source)
    everywhere = _imports_engine(tree)
    found = []

    def check(base: ast.expr, name: str, line: int) -> None:
        if name not in names or (isinstance(base, ast.Name) and base.id in ("self", "cls")):
            return
        text = ast.unparse(base)
        if everywhere or "engine" in text.lower():
            found.append(f"line {line}: {text}.{name}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            check(node.value, node.attr, node.lineno)
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            name = node.args[1]
            if called in ("setattr", "getattr", "delattr", "hasattr") and isinstance(
                name, ast.Constant
            ) and isinstance(name.value, str):  # fmt: skip
                check(node.args[0], name.value, node.lineno)
    return sorted(found, key=lambda hit: int(hit.split(":")[0].split()[1]))


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_test_touches_a_private_attribute_of_the_engines_parts() -> None:
    names = private_names()
    assert {"_pending", "_run_one", "_deadlines"} <= names  # the scan sees the package
    found = {}
    for path in _test_files():
        hits = offences(path.read_text(), names)
        if hits:
            found[path.relative_to(ROOT).as_posix()] = hits
    assert found == {}, "use Engine.run_once() and the parts' public methods instead"


def test_the_private_attribute_check_catches_a_breach() -> None:
    names = {"_pending", "_run_one"}
    engine_test = "from entropy.engine import Engine\n"
    assert offences(engine_test + "engine.dispatcher._pending.clear()\n", names) == [
        "line 2: engine.dispatcher._pending"]  # fmt: skip
    assert offences(engine_test + "x = e._pending\n", names) == ["line 2: e._pending"]
    assert offences(engine_test + "monkeypatch.setattr(pool, '_run_one', f)\n", names) == [
        "line 2: pool._run_one"]  # fmt: skip
    # Without importing it, an expression naming an engine is still caught.
    assert offences("process.engine._pending[1] = 2\n", names) == [
        "line 1: process.engine._pending"]  # fmt: skip
    # A test helper's own state, another module's private of the same name, public names: fine.
    assert offences(engine_test + "self._pending = {}\nengine.dispatcher.waiting()\n", names) == []
    assert offences("command._pending\n", names) == []


def _classes() -> list[tuple[str, int]]:
    sizes = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                sizes.append((f"{path.name}:{node.name}", node.end_lineno - node.lineno + 1))
    return sizes


@pytest.mark.parametrize(("where", "lines"), _classes(), ids=[w for w, _ in _classes()])
def test_no_class_of_the_engine_is_over_200_lines(where: str, lines: int) -> None:
    assert lines <= MAX_CLASS_LINES, f"{where} is {lines} lines"


def test_the_engine_is_a_package_with_the_old_import_path() -> None:
    assert not (ENGINE.parent / "engine.py").exists()
    from entropy.engine import Engine, EngineSettings, Heartbeat  # noqa: F401  the public path

    assert {p.stem for p in ENGINE.glob("*.py")} >= {
        "dispatcher", "executor", "pool", "results", "recorder", "publisher", "leases",
        "heartbeat", "shutdown", "core", "settings"}  # fmt: skip
