"""The layering, enforced: import-linter's contracts (pyproject.toml) hold, and catch a breach.

- Nothing outside backends/ imports a concrete backend (backends.sqlalchemy,
  backends.mongodb, backends.impl_*): they go through backends/base.py.
- cli (and the coming api) -> service -> engine -> scheduler/repairs ->
  backends -> model: no module imports one of a layer above it.
- Nothing imports the CLI (but `python -m entropy`).
- Workers need only the broker: entropy.broker imports no backend,
  scheduler, engine or service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import UNDER_CI

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    if not LINT.exists():
        reason = f"{LINT} not found: install the test extra (pip install -e '.[test]')"
        if UNDER_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_the_layering_contracts_are_kept() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_every_concrete_backend_is_in_the_forbidden_list() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (forbidden,) = [c for c in config["contracts"] if "concrete backend" in c["name"]]
    backends = ROOT / "src" / "entropy" / "backends"
    concrete = {f"entropy.backends.{p.stem}" for p in backends.glob("impl_*.py")}
    concrete |= {f"entropy.backends.{p.name}" for p in backends.iterdir()
                 if p.is_dir() and (p / "__init__.py").exists()}  # fmt: skip
    assert concrete == set(forbidden["forbidden_modules"])


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("engine/core.py", "from ..backends.sqlalchemy import state", "backends.sqlalchemy"),
        ("repairs.py", "from .backends import impl_memory", "entropy.backends.impl_memory"),
        ("model.py", "from . import engine", "entropy.model -> entropy.engine"),
        ("backends/base.py", "from .. import scheduler", "entropy.backends.base -> "),
        ("scheduler.py", "from . import service", "entropy.scheduler -> entropy.service"),
        ("service/fleet.py", "from .. import cli", "entropy.service.fleet -> entropy.cli"),
        ("config.py", "from .cli import root", "entropy.config is not allowed to import"),
        ("cli/fleet.py", "from ..backends import impl_dir", "entropy.backends.impl_dir"),
        ("broker/worker.py", "from .. import backends", "entropy.broker.worker -> "),
    ],
)
def test_the_contracts_catch_a_breach(tmp_path: Path, module: str, line: str, broken: str):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "entropy", copy / "entropy",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    with open(copy / "entropy" / module, "a") as source:
        source.write(f"\n{line}  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = lint(tmp_path, pythonpath=copy)
    assert done.returncode != 0, done.stdout
    assert "BROKEN" in done.stdout and broken in done.stdout, done.stdout
