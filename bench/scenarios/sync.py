"""Load + sync of a large fleet: first into an empty state store, then with nothing changed.

Each run writes a fresh fleet and uses a fresh SQLite state file. The first
sync and the re-sync each run in a new interpreter, as two `entropy sync`
commands would, so each phase's peak RSS is its own and no cache carries
over. Timed: backend.load() (read YAML, validate, expand schedules x hosts)
and backend.sync(catalog, now) (open the state store, add/remove/update
rows). Not timed: writing the fleet, starting the interpreter, imports.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from entropy.backends.sqlalchemy.tables import audits

from ..common import (
    GcTimer,
    Profiler,
    Spread,
    context_line,
    environment,
    in_fresh_process,
    open_backend,
    peak_rss_mib,
    profile_top,
    sqlite_url,
    table,
)
from ..fleet import Fleet, write_fleet

SUMMARY = "load + sync N hosts x M audits into SQLite state: first sync, then re-sync"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"hosts": 2_000, "audits": 10, "runs": 2}

# The targets, at the size they are set for.
TARGET_SIZE = (10_000, 10)
TARGETS = {"first_total": 5.0, "resync_total": 2.0}
RESYNC_AFTER = timedelta(seconds=60)  # the re-sync happens a minute after the first sync


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosts", type=int, default=10_000, help="hosts (default: %(default)s)")
    parser.add_argument(
        "--audits", type=int, default=10, help="audits, each on every host (default: %(default)s)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs (default: %(default)s)")
    parser.add_argument(
        "--backend",
        choices=("dir", "file"),
        default="dir",
        help="definitions format: a directory or one YAML file (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        dest="intervals",
        action="append",
        metavar="TIMING",
        help="run_every of the audits, dealt out in turn; repeatable; a value with "
        "spaces is cron (default: 30mins)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run under cProfile, save each phase's stats in DIR and print the top 15 "
        "by cumulative time (timings then include the profiler's overhead)",
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="what-if experiment: pause Python's cyclic GC around load + sync in the "
        "measured process (src does not do this; no verdicts then)",
    )
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the fleets and state files go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    intervals = tuple(args.intervals or ("30mins",))
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    profiles: dict[str, str] = {}
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="entropy-bench-sync-", dir=args.tmpdir) as tmp:
            started = time.perf_counter()
            fleet = write_fleet(
                args.backend, Path(tmp), args.hosts, args.audits, intervals=intervals
            )
            write_s = time.perf_counter() - started
            state = sqlite_url(Path(tmp) / "state.sqlite")
            now = datetime.now(UTC)
            one: dict[str, Any] = {"run": number, "fleet_write_s": write_s}
            for phase, at in (("first", now), ("resync", now + RESYNC_AFTER)):
                dump = None
                if args.profile:
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    dump = str(
                        Path(args.profile)
                        / f"sync-{args.backend}-{args.hosts}x{args.audits}-run{number}-{phase}.prof"
                    )
                    profiles.setdefault(phase, dump)
                one[phase] = in_fresh_process(measure_phase, fleet, state, at, dump, args.no_gc)
            problems += [f"run {number}: {p}" for p in _check(one, fleet)]
            runs.append(one)
    result: dict[str, Any] = {
        "scenario": "sync",
        "params": {
            "hosts": args.hosts,
            "audits": args.audits,
            "pairs": args.hosts * args.audits,
            "runs": args.runs,
            "backend": args.backend,
            "intervals": list(intervals),
            "state": "sqlite (fresh file per run)",
            "profiled": bool(args.profile),
            "gc_paused": bool(args.no_gc),
        },
        "environment": environment(),
        "runs": runs,
        "summary": _summary(runs),
        "problems": problems,
        "ok": not problems,
    }
    result["targets"] = _targets(result)
    met = [t["met"] for t in result["targets"].values() if t["met"] is not None]
    result["targets_met"] = all(met) if met else None
    if profiles:
        result["profiles"] = {
            phase: {"file": path, "top": profile_top(path)} for phase, path in profiles.items()
        }
    return result


def measure_phase(
    fleet: Fleet, state_url: str, now: datetime, profile_to: str | None, gc_off: bool = False
) -> dict[str, Any]:
    """One `entropy sync`, in this (fresh) process: load, then sync; times, counts, RSS."""
    rss_start = peak_rss_mib()
    backend = open_backend(fleet, state_url)
    try:
        if gc_off:
            gc.disable()
        with Profiler(profile_to):
            t0 = time.perf_counter()
            with GcTimer() as gc_load:
                catalog = backend.load()
            t1 = time.perf_counter()
            with GcTimer() as gc_sync:
                report = backend.sync(catalog, now)
            t2 = time.perf_counter()
        gc.enable()
        with backend.state.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(audits)).scalar_one()
    finally:
        backend.close()
    return {
        "load_s": t1 - t0,
        "sync_s": t2 - t1,
        "total_s": t2 - t0,
        "load_gc_s": gc_load.seconds,
        "sync_gc_s": gc_sync.seconds,
        "full_gcs": gc_load.full_collections + gc_sync.full_collections,
        "pairs": len(catalog.pairs),
        "rows": rows,
        "added": report.added,
        "removed": report.removed,
        "kept": report.kept,
        "updated": report.updated,
        "rss_start_mib": rss_start,
        "rss_peak_mib": peak_rss_mib(),
    }


def _check(run: dict[str, Any], fleet: Fleet) -> list[str]:
    """What a correct sync must have done; a fast wrong answer is no result."""
    pairs = fleet.pairs
    first, resync = run["first"], run["resync"]
    expected = {
        "first": {"pairs": pairs, "rows": pairs, "added": pairs, "removed": 0, "kept": 0},
        "resync": {
            "pairs": pairs,
            "rows": pairs,
            "added": 0,
            "removed": 0,
            "kept": pairs,
            "updated": 0,
        },
    }
    problems = []
    for phase, got in (("first", first), ("resync", resync)):
        for key, want in expected[phase].items():
            if got[key] != want:
                problems.append(f"{phase}: {key} = {got[key]}, expected {want}")
    return problems


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = {
        "first_load": ("first", "load_s"),
        "first_sync": ("first", "sync_s"),
        "first_total": ("first", "total_s"),
        "first_load_gc": ("first", "load_gc_s"),
        "first_sync_gc": ("first", "sync_gc_s"),
        "resync_load": ("resync", "load_s"),
        "resync_sync": ("resync", "sync_s"),
        "resync_total": ("resync", "total_s"),
        "resync_load_gc": ("resync", "load_gc_s"),
        "resync_sync_gc": ("resync", "sync_gc_s"),
        "first_rss_peak_mib": ("first", "rss_peak_mib"),
        "resync_rss_peak_mib": ("resync", "rss_peak_mib"),
        "rss_after_imports_mib": ("first", "rss_start_mib"),
    }
    summary = {
        name: Spread.of([r[phase][key] for r in runs]).as_dict()
        for name, (phase, key) in keys.items()
    }
    summary["fleet_write"] = Spread.of([r["fleet_write_s"] for r in runs]).as_dict()
    return summary


def _targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target, its limit and whether the median met it (None: not at the target's size)."""
    params = result["params"]
    applies = (
        (params["hosts"], params["audits"]) == TARGET_SIZE
        and not params["profiled"]
        and not params["gc_paused"]
    )
    return {
        name: {
            "limit_s": limit,
            "median_s": result["summary"][name]["median"],
            "met": (result["summary"][name]["median"] < limit) if applies else None,
        }
        for name, limit in TARGETS.items()
    }


def render(result: dict[str, Any]) -> str:
    p, s, targets = result["params"], result["summary"], result["targets"]
    env = result["environment"]
    title = (
        f"sync: {p['backend']} backend, {p['hosts']} hosts x {p['audits']} audits = "
        f"{p['pairs']} pairs, {p['runs']} run(s), SQLite state (fresh per run), "
        f"intervals {', '.join(p['intervals'])}"
        + (", GC PAUSED (what-if)" if p["gc_paused"] else "")
    )
    context = context_line(env)

    def seconds(name: str, label: str) -> list[str]:
        v = s[name]
        target = targets.get(name)
        limit = f"< {target['limit_s']:g} s" if target else ""
        if not target:
            verdict = ""
        elif target["met"] is None:
            verdict = "-"
        else:
            verdict = "PASS" if target["met"] else "MISS"
        return [label, f"{v['median']:.3f} s", f"{v['min']:.3f}..{v['max']:.3f}", limit, verdict]

    def mib(name: str, label: str) -> list[str]:
        v = s[name]
        return [label, f"{v['median']:.0f} MiB", f"{v['min']:.0f}..{v['max']:.0f}", "", ""]

    rows = [
        seconds("first_load", "first sync: load (read + validate + expand)"),
        seconds("first_sync", "first sync: sync (insert every pair)"),
        seconds("first_total", "first sync: load + sync"),
        seconds("first_load_gc", "  of which cyclic GC in load"),
        seconds("first_sync_gc", "  of which cyclic GC in sync"),
        seconds("resync_load", "re-sync: load"),
        seconds("resync_sync", "re-sync: sync (nothing changed)"),
        seconds("resync_total", "re-sync: load + sync"),
        seconds("resync_load_gc", "  of which cyclic GC in load"),
        seconds("resync_sync_gc", "  of which cyclic GC in sync"),
        mib("first_rss_peak_mib", "peak RSS, first sync process"),
        mib("resync_rss_peak_mib", "peak RSS, re-sync process"),
        mib("rss_after_imports_mib", "RSS after imports (baseline)"),
        seconds("fleet_write", "writing the fleet (setup, not timed)"),
    ]
    lines = [
        title,
        context,
        "",
        table(["measure", "median", "min..max", "target", "verdict"], rows),
    ]
    if p["profiled"]:
        lines.append("\ntimings include cProfile's overhead; no verdicts.")
    elif p["gc_paused"]:
        lines.append("\nwhat-if run: cyclic GC paused around load + sync (--no-gc); no verdicts.")
    elif all(t["met"] is None for t in targets.values()):
        lines.append(
            f"\ntargets are set for {TARGET_SIZE[0]} hosts x {TARGET_SIZE[1]} audits; "
            "no verdict at this size."
        )
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    for phase, prof in result.get("profiles", {}).items():
        lines += [
            "",
            f"cProfile, {phase} (run 1), top 15 by cumulative: {prof['file']}",
            prof["top"],
        ]
    return "\n".join(lines)
