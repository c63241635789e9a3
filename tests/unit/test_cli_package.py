"""The CLI package's shape: small modules that parse, call the service and print.

- no module in src/entropy/cli/ is over 300 lines;
- none imports SQLAlchemy, Alembic, pymongo or a concrete backend, or holds SQL;
- the process-wide knobs (signal handlers, gc.*, os._exit) live in the
  composition root (entropy.service.compose, .signals, entropy.gctuning)
  and nowhere in the CLI, the engine, the scheduler or the backends.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "entropy"
CLI = SRC / "cli"
MAX_LINES = 300
FORBIDDEN_IMPORTS = ("sqlalchemy", "alembic", "pymongo", "entropy.backends.sqlalchemy",
                     "entropy.backends.mongodb", "entropy.backends.impl_")  # fmt: skip
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I)

# Where process-wide knobs may be turned: the composition root, and the reaper's own process.
KNOB_HOMES = {"service/compose.py", "service/signals.py", "gctuning.py", "runners/reaper.py"}
# Library code that still turns them, each with the branch that moves it out. An entry
# whose module no longer does must go: the test fails on it too.
PENDING: dict[str, str] = {}


def _imports(tree: ast.AST, module: str) -> list[str]:
    """Every module an import names, relative ones made absolute."""
    package = module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def offences(source: str, module: str) -> list[str]:
    """What breaks the CLI's rules in one module's source."""
    found = []
    lines = source.count("\n") + (not source.endswith("\n"))
    if lines > MAX_LINES:
        found.append(f"{lines} lines (at most {MAX_LINES})")
    tree = ast.parse(source)
    for name in _imports(tree, module):
        if name.startswith(FORBIDDEN_IMPORTS):
            found.append(f"imports {name}")
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and SQL.search(text):
            found.append(f"SQL at line {node.lineno}: {text[:40]!r}")
    return found


def knobs(source: str) -> list[str]:
    """Calls that change the whole process: signal.signal, any gc.* call, os._exit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not isinstance(owner, ast.Name):
            continue
        call = f"{owner.id}.{node.func.attr}"
        if owner.id == "gc" or call in ("signal.signal", "os._exit"):
            found.append(f"{call} at line {node.lineno}")
    return found


def _cli_modules() -> list[Path]:
    return sorted(CLI.glob("*.py"))


def test_the_cli_is_a_package_of_small_modules() -> None:
    assert not (SRC / "cli.py").exists()
    groups = {"fleet", "definitions", "engine", "db", "repairs", "transfer", "ssh", "output"}
    assert {p.stem for p in _cli_modules()} >= groups


@pytest.mark.parametrize("path", _cli_modules(), ids=lambda p: p.name)
def test_a_cli_module_is_small_and_reaches_no_database(path: Path) -> None:
    assert offences(path.read_text(), f"entropy.cli.{path.stem}") == []


def test_the_checks_catch_a_breach() -> None:
    module = "entropy.cli.fleet"
    assert offences("import sqlalchemy\n", module) == ["imports sqlalchemy"]
    assert offences("from ..backends import impl_dir\n", module) == [
        "imports entropy.backends.impl_dir"
    ]
    assert offences("from ..backends.sqlalchemy import state\n", module)
    assert offences("import pymongo\n", module) == ["imports pymongo"]
    assert offences('Q = "select id from audits where host = ?"\n', module)
    assert offences("x = 1\n" * (MAX_LINES + 1), module) == [f"{MAX_LINES + 1} lines (at most 300)"]
    assert offences("from ..service import fleet\nx = 'selected from the list'\n", module) == []
    assert knobs("import gc\ngc.freeze()\n") == ["gc.freeze at line 2"]
    assert knobs("import os\nos._exit(3)\n") == ["os._exit at line 2"]
    assert knobs("signal.signal(signal.SIGTERM, f)\nsignal.getsignal(2)\n") == [
        "signal.signal at line 1"
    ]


def test_process_wide_knobs_live_only_in_the_composition_root() -> None:
    turned = {}
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        found = knobs(path.read_text())
        if found and where not in KNOB_HOMES:
            turned[where] = found
    assert set(turned) - set(PENDING) == set(), turned
    done = set(PENDING) - set(turned)
    assert not done, f"{sorted(done)} turn no process-wide knob any more: drop them from PENDING"
    assert knobs((SRC / "service" / "compose.py").read_text())  # the root does turn them
