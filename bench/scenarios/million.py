"""A million pairs without a pause (issue 18): first start, incremental refresh, full re-sync.

Each run writes a fresh fleet of hosts x audits, one schedule file per audit
(so one file holds 1 % of the pairs at 100 audits), and a fresh state store
(a SQLite file, or a fresh PostgreSQL schema with --store postgresql). Then:

  first start   in a fresh interpreter: Scheduler.refresh() on the empty
                store, as `entropy engine run` starts: read and validate the
                YAML, insert a row per pair, read the rows back, build the
                time table. Time and the process's peak RSS.
  restart       in a second fresh interpreter: the first (full) refresh of a
                new scheduler, the rows there already. Its RSS afterwards is
                the steady state the next steps are measured against.
  one file      one schedule file changes its audit's interval (30mins ->
                10mins): an incremental refresh re-reads that file, re-syncs
                and re-times that audit's pairs only.
  no change     an incremental refresh with nothing changed.
  host gone     one host removed from hosts.yaml (its pairs go).
  full re-sync  what an engine runs every full_resync_interval: in a child
                process, every row compared with the definitions and put
                right; then the engine re-reads the rows the child changed.
                The child's own peak RSS is reported beside the engine's.

Peak RSS over a refresh is sampled every 2 ms on a thread (from
/proc/self/statm) and given over the RSS just before it. A refresh's cost
to a running engine's punctuality is `python -m bench steady --refresh-at
10 --refresh-kind change|full` (100,000 pairs at 1,000/s).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entropy.clock import SystemClock
from entropy.gctuning import collector_paused
from entropy.scheduler import Scheduler

from ..common import (
    Spread,
    Unreachable,
    context_line,
    environment,
    in_fresh_process,
    open_backend,
    peak_rss_mib,
    postgresql_state,
    rss_mib,
    sqlite_url,
    table,
    verdict,
)
from ..fleet import Fleet, write_fleet

SUMMARY = "a million pairs: first start, one file changed, a host gone, a full re-sync"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"hosts": 100, "audits": 100, "runs": 1}
VARIANTS: tuple[tuple[str, ...], ...] = ((), ("--store", "postgresql"))

INTERVAL, CHANGED = "30mins", "10mins"
STEPS = ("one file", "no change", "host gone", "full re-sync")
TARGET_PAIRS = 1_000_000
TARGETS = {  # measure -> (limit, unit); medians must stay at or under it
    "first_start_s": (15.0, "s"),
    "first_start_peak_mib": (600.0, "MiB"),
    "one file_s": (1.0, "s"),
    "one file_peak_over_mib": (100.0, "MiB"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosts", type=int, default=10_000, help="hosts (default: %(default)s)")
    parser.add_argument(
        "--audits",
        type=int,
        default=100,
        help="audits, each on every host in a schedule file of its own (default: %(default)s)",
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgresql",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="with --store postgresql: where a schema per run may be created",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs (default: %(default)s)")
    parser.add_argument("--tmpdir", metavar="DIR", help="where fleets and state files go")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1 or args.audits < 2 or args.hosts < 2:
        raise SystemExit("--runs >= 1, --audits >= 2 and --hosts >= 2, please")
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    params = {"hosts": args.hosts, "audits": args.audits, "pairs": args.hosts * args.audits,
              "schedule_files": args.audits, "runs": args.runs, "store": args.store}  # fmt: skip
    try:
        for number in range(1, args.runs + 1):
            with (
                tempfile.TemporaryDirectory(prefix="entropy-bench-million-", dir=args.tmpdir) as t,
                _state(args, Path(t)) as state,
            ):
                fleet = _write(Path(t), args.hosts, args.audits)
                first = in_fresh_process(first_start, fleet, state)
                one = in_fresh_process(refreshes, Path(t), fleet, state)
                one.update(run=number, first=first)
                problems += [f"run {number}: {p}" for p in _check(one, args.hosts, args.audits)]
                runs.append(one)
    except Unreachable as exc:
        return {"scenario": "million", "params": params, "skipped": str(exc), "ok": True,
                "targets_met": None, "environment": environment()}  # fmt: skip
    summary = _summary(runs)
    applies = params["pairs"] == TARGET_PAIRS
    targets = {
        name: {"max": limit, "median": summary[name]["median"],
               "met": summary[name]["median"] <= limit if applies else None}
        for name, (limit, _) in TARGETS.items()
    }  # fmt: skip
    met = [t["met"] for t in targets.values() if t["met"] is not None]
    return {
        "scenario": "million",
        "params": params,
        "environment": environment(),
        "runs": runs,
        "summary": summary,
        "problems": problems,
        "ok": not problems,
        "targets": targets,
        "targets_met": all(met) if met else None,
    }


@contextlib.contextmanager
def _state(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    if args.store == "postgresql":
        with postgresql_state(args.postgresql) as url:
            yield url
    else:
        yield sqlite_url(tmp / "state.sqlite")


def _write(root: Path, hosts: int, audits: int, changed: bool = False,
           gone: bool = False) -> Fleet:  # fmt: skip
    intervals = [CHANGED if changed else INTERVAL] + [INTERVAL] * (audits - 1)
    fleet = write_fleet("dir", root, hosts, audits, intervals=intervals, schedule_files=audits)
    if gone:  # the last host's entry (5 lines) goes
        path = fleet.location / "hosts.yaml"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:-5]))
    return fleet


class _PeakSampler:
    """The highest RSS seen while it runs, sampled on a thread (the refresh's own peak)."""

    def __init__(self, every: float = 0.002) -> None:
        self.every, self.peak = every, rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_mib())


def first_start(fleet: Fleet, state_url: str) -> dict[str, Any]:
    """In this (fresh) process: an engine's first refresh on an empty store."""
    backend = open_backend(fleet, state_url)
    try:
        before = rss_mib()
        started = time.perf_counter()
        scheduler = Scheduler(
            backend, SystemClock(), refresh_in_background=False, around_first_load=collector_paused
        )  # as `engine run` does
        scheduler.refresh()
        took = time.perf_counter() - started
        return {"seconds": took, "peak_mib": peak_rss_mib(), "rss_before_mib": before,
                "rss_after_mib": rss_mib(), "on_table": len(scheduler),
                "pairs": len(scheduler.catalog.pairs) if scheduler.catalog else 0}  # fmt: skip
    finally:
        backend.close()


def refreshes(root: Path, fleet: Fleet, state_url: str) -> dict[str, Any]:
    """In this (fresh) process: a restart, then the refreshes of STEPS, each timed."""
    backend = open_backend(fleet, state_url)
    steps: dict[str, dict[str, Any]] = {}
    try:
        started = time.perf_counter()
        # As an engine does: the full re-syncs after the first in a child process.
        scheduler = Scheduler(backend, SystemClock(), refresh_in_background=False,
                              full_resync_in_child=True,
                              around_first_load=collector_paused)  # fmt: skip
        scheduler.refresh()
        restart = {"seconds": time.perf_counter() - started, "rss_mib": rss_mib()}
        for step in STEPS:
            if step == "one file":
                _write(root, fleet.hosts, fleet.audits, changed=True)
            elif step == "host gone":
                _write(root, fleet.hosts, fleet.audits, changed=True, gone=True)
            before = rss_mib()
            with _PeakSampler() as sampler:
                started = time.perf_counter()
                ok = scheduler.refresh(full=step == "full re-sync")
                took = time.perf_counter() - started
            steps[step] = {
                "refreshed": ok, "seconds": took, "kind": scheduler.last_refresh,
                "rss_before_mib": before, "peak_over_mib": sampler.peak - before,
                "rss_after_mib": rss_mib(), "on_table": len(scheduler),
                "pairs": len(scheduler.catalog.pairs) if scheduler.catalog else 0,
                "parsed_files": backend.definitions._cache.parsed,  # type: ignore[attr-defined]
                # The child of a full re-sync, once it has exited: its own peak.
                "child_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }  # fmt: skip
    finally:
        backend.close()
    return {"restart": restart, "steps": steps}


def _check(run: dict[str, Any], hosts: int, audits: int) -> list[str]:
    problems = []
    pairs = hosts * audits
    if run["first"]["pairs"] != pairs or run["first"]["on_table"] != pairs:
        problems.append(f"first start: {run['first']['on_table']} on the table, {pairs} pairs")
    want = {"one file": (pairs, "incremental", 1), "no change": (pairs, "incremental", 0),
            "host gone": (pairs - audits, "incremental", 1),
            "full re-sync": (pairs - audits, "full", 0)}  # fmt: skip
    for step, (count, kind, parsed) in want.items():
        got = run["steps"][step]
        if not got["refreshed"]:
            problems.append(f"{step}: refused")
        if got["pairs"] != count or got["on_table"] != count:
            problems.append(f"{step}: {got['on_table']} on the table, {got['pairs']} pairs, "
                            f"expected {count}")  # fmt: skip
        if not got["kind"].startswith(kind):
            problems.append(f"{step}: a {got['kind']} refresh, expected {kind}")
        if kind == "incremental" and got["parsed_files"] != parsed:
            problems.append(f"{step}: {got['parsed_files']} files parsed, expected {parsed}")
    return problems


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    values: dict[str, list[float]] = {
        "first_start_s": [r["first"]["seconds"] for r in runs],
        "first_start_peak_mib": [r["first"]["peak_mib"] for r in runs],
        "restart_s": [r["restart"]["seconds"] for r in runs],
        "steady_rss_mib": [r["restart"]["rss_mib"] for r in runs],
    }
    for step in STEPS:
        values[f"{step}_s"] = [r["steps"][step]["seconds"] for r in runs]
        values[f"{step}_peak_over_mib"] = [r["steps"][step]["peak_over_mib"] for r in runs]
    values["child_peak_mib"] = [r["steps"]["full re-sync"]["child_peak_mib"] for r in runs]
    return {name: Spread.of(v).as_dict() for name, v in values.items()}


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    if "skipped" in result:
        return f"million: skipped: {result['skipped']}"
    s = result["summary"]

    def cell(name: str, fmt: str) -> tuple[str, str]:
        got = s[name]
        return f"{got['median']:{fmt}}", f"{got['min']:{fmt}}..{got['max']:{fmt}}"

    rows = []
    for label, name, fmt, unit in (
        ("first start: validate + sync + time table", "first_start_s", ".2f", "s"),
        ("first start: peak RSS of the process", "first_start_peak_mib", ",.0f", "MiB"),
        ("restart: first refresh, rows there", "restart_s", ".2f", "s"),
        ("steady-state RSS after the restart", "steady_rss_mib", ",.0f", "MiB"),
        *((f"{step}: refresh", f"{step}_s", ".3f", "s") for step in STEPS),
        *((f"{step}: peak RSS over steady state", f"{step}_peak_over_mib", ",.1f", "MiB")
          for step in STEPS),
        ("full re-sync: the child process's peak RSS", "child_peak_mib", ",.0f", "MiB"),
    ):  # fmt: skip
        median, spread = cell(name, fmt)
        target = result["targets"].get(name)
        rows.append([label, f"{median} {unit}", spread,
                     f"<= {target['max']:g} {unit}" if target else "-",
                     verdict(target["met"]) if target else "-"])  # fmt: skip
    lines = [
        f"million: {p['pairs']:,} pairs ({p['hosts']:,} hosts x {p['audits']} audits, "
        f"{p['schedule_files']} schedule files), {p['store']} state, {p['runs']} run(s); medians",
        context_line(result["environment"]),
        "",
        table(["measure", "median", "min..max", "target", "verdict"], rows),
        f"\none file: {INTERVAL} -> {CHANGED} in one schedule file ({100 / p['audits']:g}% of "
        "the pairs); host gone: one host's entry removed from hosts.yaml.",
    ]
    lines += [f"WRONG: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
