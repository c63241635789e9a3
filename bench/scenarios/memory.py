"""Scheduler memory per pair: RSS before and after Scheduler.refresh() on a large fleet.

Each run writes a fresh fleet (hosts x 10 audits) and syncs it into a fresh
SQLite state file in one fresh interpreter (setup: timed, not measured for
memory). A second fresh interpreter opens the backend, builds a Scheduler,
and measures RSS (/proc/self/statm) just before and just after
scheduler.refresh() (load + validate + expand, re-sync, read the rows,
build the time table):

  bytes per pair      (RSS after - RSS before) / pairs: what a running
                      engine's scheduler costs, allocator slack included
  after trim          the same after gc.collect() + malloc_trim(0): what is
                      really held
  peak during refresh the process's peak RSS (ru_maxrss) over the baseline

Then a breakdown of the steady state, by walking the objects
(sys.getsizeof, rounded up to 16-byte allocations, each object counted
once): the scheduler's own tables (heap list and its ints, ids array) and
the catalog it keeps (hosts, scripts and schedules, pairs).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import types
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from entropy.clock import SystemClock
from entropy.gctuning import collector_paused
from entropy.scheduler import Scheduler

from ..common import (
    Spread,
    context_line,
    environment,
    hosts_for,
    in_fresh_process,
    open_backend,
    peak_rss_mib,
    release_free_memory,
    rss_mib,
    sqlite_url,
    table,
    verdict,
)
from ..fleet import Fleet, write_fleet
from ..harness import meter_refresh
from .sync import measure_phase

SUMMARY = "scheduler memory per pair: RSS before/after Scheduler.refresh() at 1M pairs"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"pairs": 100_000, "runs": 1}

TARGET_PAIRS = 1_000_000
TARGET_BYTES = 200.0  # per pair, median
MIB = 2**20
_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=1_000_000, help="pairs in the fleet (default: %(default)s)"
    )
    parser.add_argument(
        "--audits",
        type=int,
        default=10,
        help="audits per host; hosts = pairs / audits (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs (default: %(default)s)")
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the object walk that splits the memory by owner (seconds at 1M pairs)",
    )
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the fleets and state files go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    hosts = hosts_for(args.pairs, args.audits)
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="entropy-bench-memory-", dir=args.tmpdir) as tmp:
            started = time.perf_counter()
            fleet = write_fleet("dir", Path(tmp), hosts, args.audits)
            write_s = time.perf_counter() - started
            state = sqlite_url(Path(tmp) / "state.sqlite")
            setup = in_fresh_process(measure_phase, fleet, state, datetime.now(UTC), None)
            one = in_fresh_process(measure_memory, fleet, state, not args.no_breakdown)
            one.update(run=number, fleet_write_s=write_s, setup=setup)
            if setup["rows"] != args.pairs:
                problems.append(f"run {number}: setup synced {setup['rows']} rows")
            if one["pairs"] != args.pairs or one["on_table"] != args.pairs:
                problems.append(
                    f"run {number}: {one['pairs']} pairs, {one['on_table']} on the time "
                    f"table, expected {args.pairs}"
                )
            runs.append(one)
    result: dict[str, Any] = {
        "scenario": "memory",
        "params": {
            "pairs": args.pairs,
            "hosts": hosts,
            "audits": args.audits,
            "runs": args.runs,
            "state": "sqlite (fresh file per run)",
            "breakdown": not args.no_breakdown,
        },
        "environment": environment(),
        "runs": runs,
        "summary": _summary(runs),
        "problems": problems,
        "ok": not problems,
    }
    per_pair = result["summary"]["bytes_per_pair"]["median"]
    applies = args.pairs == TARGET_PAIRS
    result["targets"] = {
        "bytes_per_pair": {
            "max": TARGET_BYTES,
            "median": per_pair,
            "met": (per_pair <= TARGET_BYTES) if applies else None,
        }
    }
    result["targets_met"] = result["targets"]["bytes_per_pair"]["met"]
    return result


def measure_memory(fleet: Fleet, state_url: str, breakdown: bool) -> dict[str, Any]:
    """In this (fresh) process: RSS around the first refresh of a new Scheduler."""
    backend = open_backend(fleet, state_url)
    try:
        # As `entropy engine run` makes it (the collector paused over its first load).
        scheduler = Scheduler(backend, SystemClock(), around_first_load=collector_paused)
        meters = meter_refresh(scheduler)  # opens the state store: part of the baseline
        release_free_memory()
        before = rss_mib()
        started = time.perf_counter()
        scheduler.refresh()
        refresh_s = time.perf_counter() - started
        after = rss_mib()
        peak = peak_rss_mib()
        release_free_memory()
        trimmed = rss_mib()
        got: dict[str, Any] = {
            "pairs": len(scheduler.catalog.pairs) if scheduler.catalog else 0,
            "hosts": len(scheduler.catalog.hosts) if scheduler.catalog else 0,
            "on_table": len(scheduler),
            "refresh_s": refresh_s,
            "refresh_parts_s": {name: m.seconds for name, m in meters.items()},
            "rss_before_mib": before,
            "rss_after_mib": after,
            "rss_trimmed_mib": trimmed,
            "rss_peak_mib": peak,
        }
        if breakdown:
            started = time.perf_counter()
            got["held_bytes"] = held_bytes(scheduler)
            got["walk_s"] = time.perf_counter() - started
    finally:
        backend.close()
    return got


def held_bytes(scheduler: Scheduler) -> dict[str, int]:
    """Bytes the scheduler holds, by owner; each object counted once, first owner wins."""
    catalog = scheduler.catalog
    assert catalog is not None
    seen: set[int] = set()
    held = {
        "scheduler: time table": _walk([scheduler._table, scheduler._when], seen),
        "scheduler: pairs by index (LivePairs)": _walk(
            [scheduler._live.host_of, scheduler._live.schedule_of, scheduler._live.ids], seen
        ),
        "scheduler: in flight": _walk([scheduler._out], seen),
        "catalog: hosts": _walk([catalog.hosts], seen),
        "catalog: scripts, schedules": _walk(
            [catalog.scripts, catalog.schedules, catalog.sources], seen
        ),
        # PairBlocks: a schedule x an array of host positions per block.
        "catalog: pairs": _walk([catalog.pairs], seen),
    }
    return held


def _alloc(size: int) -> int:
    """What an object of `size` bytes takes from the allocator: 16-byte blocks."""
    return (size + 15) // 16 * 16


def _walk(roots: Iterable[Any], seen: set[int]) -> int:
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        key = id(obj)
        if key in seen or isinstance(obj, _SKIP):
            continue
        seen.add(key)
        total += _alloc(sys.getsizeof(obj))
        stack.extend(gc.get_referents(obj))
    return total


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    def spread(get: Any) -> dict[str, float]:
        return Spread.of([get(r) for r in runs]).as_dict()

    def per_pair(mib: float, r: dict[str, Any]) -> float:
        return mib * MIB / r["pairs"]

    summary = {
        "bytes_per_pair": spread(lambda r: per_pair(r["rss_after_mib"] - r["rss_before_mib"], r)),
        "trimmed_bytes_per_pair": spread(
            lambda r: per_pair(r["rss_trimmed_mib"] - r["rss_before_mib"], r)
        ),
        "peak_bytes_per_pair": spread(
            lambda r: per_pair(r["rss_peak_mib"] - r["rss_before_mib"], r)
        ),
        "rss_before_mib": spread(lambda r: r["rss_before_mib"]),
        "rss_after_mib": spread(lambda r: r["rss_after_mib"]),
        "rss_trimmed_mib": spread(lambda r: r["rss_trimmed_mib"]),
        "rss_peak_mib": spread(lambda r: r["rss_peak_mib"]),
        "refresh_s": spread(lambda r: r["refresh_s"]),
        "setup_sync_s": spread(lambda r: r["setup"]["total_s"]),
        "setup_rss_peak_mib": spread(lambda r: r["setup"]["rss_peak_mib"]),
    }
    for part in runs[0]["refresh_parts_s"]:
        summary[f"refresh_{part}_s"] = spread(lambda r, p=part: r["refresh_parts_s"][p])
    if "held_bytes" in runs[0]:
        for owner in runs[0]["held_bytes"]:
            summary[f"held: {owner}"] = spread(lambda r, o=owner: r["held_bytes"][o] / r["pairs"])
        summary["held: total"] = spread(lambda r: sum(r["held_bytes"].values()) / r["pairs"])
    return summary


def render(result: dict[str, Any]) -> str:
    p, s = result["params"], result["summary"]
    target = result["targets"]["bytes_per_pair"]

    def row(name: str, label: str, fmt: str, unit: str, goal: str = "", met: str = "") -> list:
        v = s[name]
        return [
            label,
            f"{v['median']:{fmt}} {unit}".rstrip(),
            f"{v['min']:{fmt}}..{v['max']:{fmt}}",
            goal,
            met,
        ]

    rows = [
        row(
            "bytes_per_pair",
            "RSS after - before refresh, per pair",
            ",.0f",
            "B",
            f"<= {TARGET_BYTES:g} B",
            verdict(target["met"]),
        ),
        row("trimmed_bytes_per_pair", "  after gc.collect + malloc_trim", ",.0f", "B"),
        row("peak_bytes_per_pair", "peak RSS during refresh - before, per pair", ",.0f", "B"),
        row("rss_before_mib", "RSS before refresh (imports, store open)", ",.0f", "MiB"),
        row("rss_after_mib", "RSS after refresh", ",.0f", "MiB"),
        row("rss_peak_mib", "peak RSS", ",.0f", "MiB"),
        row("refresh_s", "refresh time", ".2f", "s"),
        *(
            row(f"refresh_{part}_s", f"  {part}", ".2f", "s")
            for part in ("load", "sync", "schedule_rows", "rebuild")
            if f"refresh_{part}_s" in s
        ),
        row("setup_sync_s", "setup: first sync, load + sync (not measured)", ".2f", "s"),
        row("setup_rss_peak_mib", "setup: peak RSS of the sync process", ",.0f", "MiB"),
    ]
    lines = [
        f"memory: {p['pairs']:,} pairs ({p['hosts']:,} hosts x {p['audits']} audits), "
        f"SQLite state (fresh per run), {p['runs']} run(s)",
        context_line(result["environment"]),
        "",
        table(["measure", "median", "min..max", "target", "verdict"], rows),
    ]
    held = [name for name in s if name.startswith("held: ")]
    if held:
        lines += [
            "",
            "held after refresh, by owner (object walk; bytes per pair)",
            table(
                ["owner", "median", "min..max"],
                [
                    [
                        name.removeprefix("held: "),
                        f"{s[name]['median']:,.1f} B",
                        f"{s[name]['min']:,.1f}..{s[name]['max']:,.1f}",
                    ]
                    for name in held
                ],
            ),
        ]
    if target["met"] is None:
        lines.append(f"\nthe target is set for {TARGET_PAIRS:,} pairs; no verdict at this size.")
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    return "\n".join(lines)
