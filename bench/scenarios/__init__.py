"""The benchmark scenarios, by name. Add one: a module here, then a line in SCENARIOS.

A scenario module provides:

    SUMMARY: str                       one line for `python -m bench --help`
    DESCRIPTION: str                   the text of `python -m bench NAME --help`
    QUICK: dict[str, object]           argument values for `python -m bench all --quick`
    add_arguments(parser) -> None      its options (sizes, --runs, ...)
    run(args) -> dict                  measure; a JSON-able result with at least
                                       "scenario", "ok" (sanity checks held) and
                                       "targets_met" (True, False, or None: no target applies)
    render(result) -> str              the plain-text report of that result
"""

from __future__ import annotations

import importlib
from types import ModuleType

SCENARIOS: dict[str, str] = {
    "sync": "bench.scenarios.sync",
    "dispatch": "bench.scenarios.dispatch",
    "steady": "bench.scenarios.steady",
    "memory": "bench.scenarios.memory",
    "refresh": "bench.scenarios.refresh",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(SCENARIOS[name])
