"""Scheduler.refresh() times: with nothing changed, and after a 1% change of the definitions.

Each run writes a fresh fleet of hosts x audits with one schedule file per
audit (so one file holds 1% of the pairs at 100 audits) and syncs it into a
fresh SQLite state file in one fresh interpreter (setup). A second fresh
interpreter builds a Scheduler and times, in order:

  start       the first refresh of a new scheduler (the rows exist already)
  no change   a refresh with the same definitions
  interval    after one schedule file changes its audit from run_every 30mins
              to 10mins (1% of pairs at 100 audits); the rows whose next_run
              lies beyond the new interval are re-splayed
  hosts +1%   after 1% more hosts are added to hosts.yaml (their pairs added)

Each refresh is split into its parts: load (read + validate + expand),
sync (state rows), schedule_rows (read every row back) and rebuild (the
time table); RSS after each is reported too, to show whether repeated
refreshes grow the process. No target is set.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from entropy.clock import SystemClock
from entropy.scheduler import Scheduler

from ..common import (
    Spread,
    context_line,
    environment,
    in_fresh_process,
    open_backend,
    rss_mib,
    sqlite_url,
    table,
)
from ..fleet import Fleet, write_fleet
from ..harness import meter_refresh
from .sync import measure_phase

SUMMARY = "Scheduler.refresh() time: no change, 1 pair in 100 re-timed, 1 host in 100 added"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"hosts": 200, "runs": 1}

INTERVAL, CHANGED_INTERVAL = "30mins", "10mins"
STEPS = ("start", "no change", "interval", "hosts +1%")
PARTS = ("load", "sync", "schedule_rows", "rebuild")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosts", type=int, default=1_000, help="hosts (default: %(default)s)")
    parser.add_argument(
        "--audits",
        type=int,
        default=100,
        help="audits, each on every host and in its own schedule file (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs (default: %(default)s)")
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the fleets and state files go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    if args.audits < 2:
        raise SystemExit("--audits must be at least 2 (one of them changes)")
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="entropy-bench-refresh-", dir=args.tmpdir) as tmp:
            fleet = _write(Path(tmp), args.hosts, args.audits, changed=False)
            state = sqlite_url(Path(tmp) / "state.sqlite")
            setup = in_fresh_process(measure_phase, fleet, state, datetime.now(UTC), None)
            one = in_fresh_process(measure_refreshes, Path(tmp), fleet, state)
            one.update(run=number, setup=setup)
            problems += [f"run {number}: {p}" for p in _check(one, args.hosts, args.audits)]
            runs.append(one)
    return {
        "scenario": "refresh",
        "params": {
            "hosts": args.hosts,
            "audits": args.audits,
            "pairs": args.hosts * args.audits,
            "schedule_files": args.audits,
            "runs": args.runs,
            "state": "sqlite (fresh file per run)",
        },
        "environment": environment(),
        "runs": runs,
        "summary": _summary(runs),
        "problems": problems,
        "ok": not problems,
        "targets": {},
        "targets_met": None,
    }


def _write(root: Path, hosts: int, audits: int, changed: bool) -> Fleet:
    intervals = [CHANGED_INTERVAL if changed else INTERVAL] + [INTERVAL] * (audits - 1)
    return write_fleet("dir", root, hosts, audits, intervals=intervals, schedule_files=audits)


def measure_refreshes(root: Path, fleet: Fleet, state_url: str) -> dict[str, Any]:
    """In this (fresh) process: the refreshes of STEPS, each split into its parts."""
    backend = open_backend(fleet, state_url)
    steps: dict[str, dict[str, Any]] = {}
    try:
        scheduler = Scheduler(backend, SystemClock())
        meters = meter_refresh(scheduler)
        for step in STEPS:
            if step == "interval":
                _write(root, fleet.hosts, fleet.audits, changed=True)
            elif step == "hosts +1%":
                _write(root, fleet.hosts + _more(fleet.hosts), fleet.audits, changed=True)
            parts_before = {name: meters[name].seconds for name in PARTS}
            started = time.perf_counter()
            refreshed = scheduler.refresh()
            total = time.perf_counter() - started
            report = meters["sync"].last
            steps[step] = {
                "refreshed": refreshed,
                "total_s": total,
                **{f"{name}_s": meters[name].seconds - parts_before[name] for name in PARTS},
                "pairs": len(scheduler.catalog.pairs) if scheduler.catalog else 0,
                "on_table": len(scheduler),
                "added": report.added,
                "removed": report.removed,
                "kept": report.kept,
                "updated": report.updated,
                "rss_mib": rss_mib(),
            }
    finally:
        backend.close()
    return {"steps": steps}


def _more(hosts: int) -> int:
    return max(1, hosts // 100)


def _check(run: dict[str, Any], hosts: int, audits: int) -> list[str]:
    pairs, more = hosts * audits, _more(hosts) * audits
    expected = {
        "start": {"pairs": pairs, "added": 0, "removed": 0, "updated": 0},
        "no change": {"pairs": pairs, "added": 0, "removed": 0, "updated": 0},
        "interval": {"pairs": pairs, "added": 0, "removed": 0},
        "hosts +1%": {"pairs": pairs + more, "added": more, "removed": 0, "updated": 0},
    }
    problems = []
    for step, want in expected.items():
        got = run["steps"][step]
        if not got["refreshed"]:
            problems.append(f"{step}: the refresh was refused")
        for key, value in want.items():
            if got[key] != value:
                problems.append(f"{step}: {key} = {got[key]}, expected {value}")
        if got["on_table"] != got["pairs"]:
            problems.append(f"{step}: {got['on_table']} on the time table, {got['pairs']} pairs")
    changed = run["steps"]["interval"]["updated"]
    if not 0 < changed <= hosts:
        problems.append(f"interval: {changed} rows re-timed, expected 1..{hosts}")
    return problems


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    return {
        step: {
            key: Spread.of([r["steps"][step][key] for r in runs]).as_dict()
            for key in ("total_s", *(f"{p}_s" for p in PARTS), "updated", "added", "rss_mib")
        }
        for step in STEPS
    }


def render(result: dict[str, Any]) -> str:
    p, s = result["params"], result["summary"]

    def cell(step: str, key: str, fmt: str = ".3f") -> str:
        return f"{s[step][key]['median']:{fmt}}"

    rows = [
        [
            step,
            cell(step, "total_s"),
            f"{s[step]['total_s']['min']:.3f}..{s[step]['total_s']['max']:.3f}",
            *(cell(step, f"{part}_s") for part in PARTS),
            cell(step, "added", ",.0f"),
            cell(step, "updated", ",.0f"),
            cell(step, "rss_mib", ",.0f"),
        ]
        for step in STEPS
    ]
    header = ["refresh", "total s", "min..max", *(f"{part} s" for part in PARTS)]
    header += ["rows added", "rows re-timed", "RSS MiB"]
    lines = [
        f"refresh: {p['pairs']:,} pairs ({p['hosts']:,} hosts x {p['audits']} audits, "
        f"{p['schedule_files']} schedule files), SQLite state (fresh per run), "
        f"{p['runs']} run(s); medians",
        context_line(result["environment"]),
        "",
        table(header, rows),
        f"\ninterval: one schedule file {INTERVAL} -> {CHANGED_INTERVAL} "
        f"({100 / p['audits']:g}% of pairs); hosts +1%: {_more(p['hosts']):,} hosts added. "
        "No target is set.",
    ]
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    return "\n".join(lines)
