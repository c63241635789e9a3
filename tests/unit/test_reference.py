"""docs/reference.md is what tools/gen_reference.py makes from the code, and stays so."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from entropy import definitions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "tools" / "gen_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_reference", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_current(generator: ModuleType) -> None:
    assert generator.render() == (ROOT / "docs" / "reference.md").read_text(), (
        "docs/reference.md is stale: run .venv/bin/python tools/gen_reference.py"
    )


def test_it_lists_every_command_option_and_key(generator: ModuleType) -> None:
    text = generator.render()
    for heading in ("### `entropy engine run`", "### `entropy repair reset`", "### `[ssh]`"):
        assert heading in text
    assert "| `claim_lease` | float, 0.3..86400 | `30.0` | `OS_DEFAULT__CLAIM_LEASE` |" in text
    assert "--max-workers N" in text and "| `run_every` |" in text and "| `upload` |" in text


def test_a_key_the_code_gains_without_a_description_stops_the_generator(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(definitions, "_REPAIR_KEYS", definitions._REPAIR_KEYS | {"priority"})
    with pytest.raises(SystemExit, match=r"describe \['priority'\]"):
        generator.render()
    monkeypatch.setattr(
        definitions, "_REPAIR_KEYS", definitions._REPAIR_KEYS - {"priority", "verify"}
    )
    with pytest.raises(SystemExit, match=r"the code has no key \['verify'\]"):
        generator.render()
