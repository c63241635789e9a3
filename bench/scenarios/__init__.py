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

and optionally VARIANTS: tuple of argument lists; `python -m bench all` runs
the scenario once per list (dispatch: SQLite, then PostgreSQL). A result may
carry "skipped": why (e.g. a server is unreachable) instead of figures.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SCENARIOS: dict[str, str] = {
    "load": "bench.scenarios.loading",  # not load.py: it would shadow load() below
    "dispatch": "bench.scenarios.dispatch",
    "apscheduler": "bench.scenarios.apscheduler",
    "steady": "bench.scenarios.steady",
    "refresh": "bench.scenarios.refresh",
    "sync": "bench.scenarios.sync",
    "memory": "bench.scenarios.memory",
    "engines": "bench.scenarios.engines",
    "validate": "bench.scenarios.validate",
    "monitoring": "bench.scenarios.monitoring",
    "ssh": "bench.scenarios.ssh",
    "broker": "bench.scenarios.broker",
    "million": "bench.scenarios.million",
    "api": "bench.scenarios.api",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(SCENARIOS[name])
