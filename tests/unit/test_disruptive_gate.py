"""Tests that stop or restart a shared server run only when asked (ENTROPY_TEST_DISRUPTIVE=1)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# What takes a shared server away from everyone else on the machine.
DISRUPTING = ("pg_ctlcluster", "stop_app", "rabbitmq-server", "systemctl")


def _marked_disruptive(node: ast.FunctionDef) -> bool:
    return any("disruptive" in ast.unparse(d) for d in node.decorator_list)


def _calls(tree: ast.Module) -> dict[str, set[str]]:
    """Module-level function name -> names and string constants it uses."""
    uses: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            seen = uses.setdefault(node.name, set())
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name):
                    seen.add(inner.id)
                elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    seen.add(inner.value)
    return uses


def test_every_test_that_takes_a_server_down_is_marked_disruptive() -> None:
    offenders = []
    for path in TESTS.rglob("test_*.py"):
        if path == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text())
        uses = _calls(tree)
        # Helpers that disrupt, then tests that call them (one level is what exists).
        disrupting = {
            name for name, seen in uses.items() if any(word in seen for word in DISRUPTING)
        }
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            if (uses[node.name] & disrupting or node.name in disrupting) and not (
                _marked_disruptive(node)
            ):
                offenders.append(f"{path.relative_to(TESTS)}::{node.name}")
    assert offenders == []
