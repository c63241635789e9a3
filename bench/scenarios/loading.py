"""A new engine's first start: validate + first sync + time table, at 10^5 and 10^6 pairs.

For each size, each run writes a fresh fleet (hosts x 10 audits, run_every
30mins) and points a fresh interpreter at it with an empty SQLite state
file. There, as `entropy engine run` does at start-up, a new Scheduler's
first refresh() reads and validates the YAML and expands schedules x hosts
(load), inserts a row per pair (sync), reads the rows back (schedule_rows)
and builds the time table (rebuild). Measured in that process
(bench.scenarios.memory.measure_memory, here on an empty store):

  time            the refresh, and each of its parts
  peak RSS        the process's peak resident set (imports included)
  bytes per pair  (RSS after - RSS before the refresh) / pairs: what the
                  running scheduler holds per pair, allocator slack included;
                  also after gc.collect + malloc_trim, and the peak over the
                  baseline per pair

Checked: every pair has a row and is on the time table. No target of its
own: `python -m bench all` compares the time and bytes per pair with
APScheduler's memory store at the same size (scenario apscheduler).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from ..common import (
    Spread,
    context_line,
    environment,
    hosts_for,
    in_fresh_process,
    open_backend,
    sqlite_url,
    table,
)
from ..fleet import write_fleet
from ..harness import stored_counts
from .memory import MIB, measure_memory

SUMMARY = "first start: validate + first sync + time table at 100k and 1M pairs (time, RSS)"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"pairs": [20_000], "runs": 1}

DEFAULT_PAIRS = (100_000, 1_000_000)
PARTS = ("load", "sync", "schedule_rows", "rebuild")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs",
        type=int,
        action="append",
        help="pairs in the fleet; repeatable (default: 100000 and 1000000)",
    )
    parser.add_argument(
        "--audits",
        type=int,
        default=10,
        help="audits per host; hosts = pairs / audits (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default: 3)")
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the fleets and state files go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = list(args.pairs or DEFAULT_PAIRS)
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    for pairs in sizes:
        hosts_for(pairs, args.audits)
    problems: list[str] = []
    by_size: dict[str, dict[str, Any]] = {}
    for pairs in sizes:
        runs = []
        for number in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="entropy-bench-load-", dir=args.tmpdir) as tmp:
                started = time.perf_counter()
                fleet = write_fleet("dir", Path(tmp), pairs // args.audits, args.audits)
                write_s = time.perf_counter() - started
                state = sqlite_url(Path(tmp) / "state.sqlite")
                one = in_fresh_process(measure_memory, fleet, state, False)
                backend = open_backend(fleet, state)
                try:
                    one.update(stored_counts(backend))
                finally:
                    backend.close()
                one.update(run=number, fleet_write_s=write_s)
                rows = sum(one["audit_status"].values())
                if not one["pairs"] == one["on_table"] == rows == pairs:
                    problems.append(
                        f"{pairs:,} pairs, run {number}: {one['pairs']} pairs loaded, {rows} "
                        f"rows, {one['on_table']} on the time table; expected {pairs} each"
                    )
                runs.append(one)
        by_size[str(pairs)] = {"pairs": pairs, "runs": runs, "summary": _summary(runs)}
    return {
        "scenario": "load",
        "params": {
            "pairs": sizes,
            "audits": args.audits,
            "runs": args.runs,
            "timing": "run_every 30mins",
            "state": "sqlite (fresh, empty file per run)",
        },
        "environment": environment(),
        "sizes": by_size,
        "problems": problems,
        "ok": not problems,
        "targets": {},
        "targets_met": None,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    def spread(get: Any) -> dict[str, float]:
        return Spread.of([get(r) for r in runs]).as_dict()

    def per_pair(mib: float, r: dict[str, Any]) -> float:
        return mib * MIB / r["pairs"]

    summary = {
        "time_s": spread(lambda r: r["refresh_s"]),
        "us_per_pair": spread(lambda r: r["refresh_s"] / r["pairs"] * 1e6),
        **{f"{part}_s": spread(lambda r, p=part: r["refresh_parts_s"][p]) for part in PARTS},
        "rss_peak_mib": spread(lambda r: r["rss_peak_mib"]),
        "rss_before_mib": spread(lambda r: r["rss_before_mib"]),
        "rss_after_mib": spread(lambda r: r["rss_after_mib"]),
        "bytes_per_pair": spread(lambda r: per_pair(r["rss_after_mib"] - r["rss_before_mib"], r)),
        "trimmed_bytes_per_pair": spread(
            lambda r: per_pair(r["rss_trimmed_mib"] - r["rss_before_mib"], r)
        ),
        "peak_bytes_per_pair": spread(
            lambda r: per_pair(r["rss_peak_mib"] - r["rss_before_mib"], r)
        ),
        "fleet_write_s": spread(lambda r: r["fleet_write_s"]),
    }
    return summary


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    header = ["measure"]
    columns = []
    for key, size in result["sizes"].items():
        header += [f"{size['pairs']:,} pairs", "min..max"]
        columns.append(result["sizes"][key]["summary"])

    def row(name: str, label: str, fmt: str, unit: str) -> list[str]:
        cells = [label]
        for s in columns:
            v = s[name]
            cells += [f"{v['median']:{fmt}} {unit}".rstrip(), f"{v['min']:{fmt}}..{v['max']:{fmt}}"]
        return cells

    rows = [
        row("time_s", "time: validate + first sync + time table", ".2f", "s"),
        row("us_per_pair", "  per pair", ",.1f", "us"),
        row("load_s", "  load (read YAML, validate, expand)", ".2f", "s"),
        row("sync_s", "  sync (insert a row per pair)", ".2f", "s"),
        row("schedule_rows_s", "  schedule_rows (read the rows back)", ".2f", "s"),
        row("rebuild_s", "  rebuild (the time table)", ".2f", "s"),
        row("rss_peak_mib", "peak RSS of the process", ",.0f", "MiB"),
        row("rss_before_mib", "RSS before (imports, store open)", ",.0f", "MiB"),
        row("rss_after_mib", "RSS after", ",.0f", "MiB"),
        row("bytes_per_pair", "bytes per pair: RSS after - before", ",.0f", "B"),
        row("trimmed_bytes_per_pair", "  after gc.collect + malloc_trim", ",.0f", "B"),
        row("peak_bytes_per_pair", "  peak RSS - before, per pair", ",.0f", "B"),
        row("fleet_write_s", "writing the fleet (setup, not timed)", ".2f", "s"),
    ]
    lines = [
        f"load: a new engine's first refresh on an empty SQLite state store (validate + "
        f"first sync + time table), hosts x {p['audits']} audits, {p['timing']}, "
        f"{p['runs']} run(s) per size",
        context_line(result["environment"]),
        "",
        table(header, rows),
        "\nno target of its own; `python -m bench all` sets these beside APScheduler's.",
    ]
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    return "\n".join(lines)
