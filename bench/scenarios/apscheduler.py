"""APScheduler 3.11 in Entropy's load and dispatch scenarios, for the side-by-side table.

APScheduler runs in the benchmark's own venv (bench/.venv-apscheduler, made
on first use with `pip install 'apscheduler>=3.11,<3.12' sqlalchemy`; never
one of Entropy's dependencies), through bench/peers/apscheduler_driver.py,
one fresh interpreter per run. Four cases, each --runs times:

  load, memory store   N interval jobs (every 30 min; hosts x 10 audits, as
                       Entropy's fleets) added to a BackgroundScheduler
                       started paused: add time, RSS per job, peak RSS.
                       N is Entropy's load size (100,000).
  load, SQLite store   the same into a SQLAlchemyJobStore on a fresh SQLite
                       file (APScheduler's defaults: a commit per add), with
                       fewer jobs (10,000: about 14 s); per-job figures
                       compare fairly, totals do not.
  dispatch, memory     N no-op DateTrigger jobs with run dates spread over
                       1 s, ThreadPoolExecutor(8), misfire_grace_time None:
                       jobs/s = N / (last finished - first run date),
                       lateness = started - run date (p50, p99, max), CPU.
  dispatch, SQLite     the same on a SQLAlchemyJobStore on SQLite, with fewer
                       jobs (2,000; it runs under 1,000 jobs/s); each date job's
                       row is deleted when it is submitted (what APScheduler
                       persists; it stores no results).

`python -m bench all` puts these beside Entropy's load and dispatch figures,
with the ratio Entropy / APScheduler and the targets on those ratios.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..common import Spread, table
from ..peers import APSCHEDULER_VENV, PeerError, ensure_apscheduler, run_apscheduler

SUMMARY = "APScheduler 3.11 (own venv) in the load and dispatch scenarios, for the ratios"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {
    "load_jobs": 20_000,
    "load_sqlite_jobs": 1_000,
    "dispatch_jobs": 2_000,
    "dispatch_sqlite_jobs": 500,
    "runs": 1,
}

# case name -> (driver command, store, the args attribute holding its job count)
CASES = {
    "load-memory": ("load", "memory", "load_jobs"),
    "load-sqlite": ("load", "sqlite", "load_sqlite_jobs"),
    "dispatch-memory": ("dispatch", "memory", "dispatch_jobs"),
    "dispatch-sqlite": ("dispatch", "sqlite", "dispatch_sqlite_jobs"),
}
LOAD_KEYS = ("add_s", "us_per_job", "bytes_per_job", "trimmed_bytes_per_job", "rss_peak_mib")
LOAD_KEYS += ("rss_before_mib", "rss_after_mib")
DISPATCH_KEYS = ("jobs_per_s", "elapsed_s", "p50_ms", "p99_ms", "max_ms", "cpu_s")
DISPATCH_KEYS += ("cpu_us_per_job", "ready_slack_s", "add_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load-jobs",
        type=int,
        default=100_000,
        help="jobs added to the memory store (default: %(default)s)",
    )
    parser.add_argument(
        "--load-sqlite-jobs",
        type=int,
        default=10_000,
        help="jobs added to the SQLite store (default: %(default)s)",
    )
    parser.add_argument(
        "--dispatch-jobs",
        type=int,
        default=20_000,
        help="jobs due within 1 s, memory store (default: %(default)s)",
    )
    parser.add_argument(
        "--dispatch-sqlite-jobs",
        type=int,
        default=2_000,
        help="jobs due within 1 s, SQLite store (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each case (default: 3)")
    parser.add_argument(
        "--workers", type=int, default=8, help="ThreadPoolExecutor size (default: %(default)s)"
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=APSCHEDULER_VENV,
        help="APScheduler's venv, created when missing (default: bench/.venv-apscheduler)",
    )
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the SQLite job stores go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    python = ensure_apscheduler(args.venv)
    cases: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    versions: dict[str, str] = {}
    for name, (command, store, attribute) in CASES.items():
        jobs = getattr(args, attribute)
        argv = [command, "--store", store, "--jobs", str(jobs)]
        if command == "dispatch":
            argv += ["--workers", str(args.workers)]
        if args.tmpdir:
            argv += ["--tmpdir", args.tmpdir]
        runs = []
        for number in range(1, args.runs + 1):
            try:
                one = run_apscheduler(python, argv)
            except PeerError as exc:
                problems.append(f"{name} run {number}: {exc}")
                continue
            versions = one.pop("versions", versions)
            if command == "dispatch":
                one.update({key: one["lateness"][key] for key in ("p50_ms", "p99_ms", "max_ms")})
            one["run"] = number
            problems += [f"{name} run {number}: {p}" for p in _check(command, one, jobs)]
            runs.append(one)
        keys = LOAD_KEYS if command == "load" else DISPATCH_KEYS
        cases[name] = {
            "command": command,
            "store": store,
            "jobs": jobs,
            "runs": runs,
            "summary": {key: Spread.of([r[key] for r in runs]).as_dict() for key in keys if runs},
        }
    return {
        "scenario": "apscheduler",
        "params": {
            "runs": args.runs,
            "workers": args.workers,
            "venv": str(args.venv),
            "requirements": "apscheduler>=3.11,<3.12 sqlalchemy",
            "versions": versions,
            "jobs": {name: case["jobs"] for name, case in cases.items()},
        },
        "cases": cases,
        "problems": problems,
        "ok": not problems,
        "targets": {},
        "targets_met": None,
    }


def _check(command: str, run: dict[str, Any], jobs: int) -> list[str]:
    problems = []
    if command == "load":
        if run["stored"] != jobs:
            problems.append(f"{run['stored']} jobs in the store, expected {jobs}")
        return problems
    if run["problem"]:
        problems.append(run["problem"])
    if run["executed"] != jobs:
        problems.append(
            f"{run['executed']} jobs ran ({run['missed']} missed, {run['errors']} failed), "
            f"expected {jobs}"
        )
    if run["left_in_store"]:
        problems.append(f"{run['left_in_store']} jobs left in the store after running")
    if not run["ready_slack_s"] > 0:
        problems.append(
            f"adding the jobs ended {-run['ready_slack_s']:.2f} s after the first run date: "
            "lateness includes the adds"
        )
    return problems


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    v = p["versions"]
    lines = [
        f"apscheduler: APScheduler {v.get('apscheduler', '?')} in {p['venv']} (SQLAlchemy "
        f"{v.get('sqlalchemy', '?')}, python {v.get('python', '?')}, SQLite "
        f"{v.get('sqlite', '?')}), BackgroundScheduler, {p['runs']} run(s) per case",
        "",
    ]

    def row(case: str, key: str, label: str, fmt: str, unit: str) -> list[str]:
        s = result["cases"][case]["summary"].get(key)
        if s is None:
            return [label, "-", "-"]
        return [
            label,
            f"{s['median']:{fmt}} {unit}".rstrip(),
            f"{s['min']:{fmt}}..{s['max']:{fmt}}",
        ]

    rows = []
    for case in ("load-memory", "load-sqlite"):
        store = result["cases"][case]["store"]
        jobs = result["cases"][case]["jobs"]
        rows += [
            row(case, "add_s", f"load, {store} store, {jobs:,} jobs: add time", ".2f", "s"),
            row(case, "us_per_job", "  per job", ",.1f", "us"),
            row(case, "bytes_per_job", "  RSS after - before, per job", ",.0f", "B"),
            row(case, "rss_peak_mib", "  peak RSS", ",.0f", "MiB"),
        ]
    for case in ("dispatch-memory", "dispatch-sqlite"):
        store = result["cases"][case]["store"]
        jobs = result["cases"][case]["jobs"]
        rows += [
            row(case, "jobs_per_s", f"dispatch, {store} store, {jobs:,} jobs in 1 s", ",.0f", "/s"),
            row(case, "p50_ms", "  lateness p50 (started - run date)", ",.1f", "ms"),
            row(case, "p99_ms", "  lateness p99", ",.1f", "ms"),
            row(case, "max_ms", "  lateness max", ",.1f", "ms"),
            row(case, "cpu_us_per_job", "  process CPU per job", ",.0f", "us"),
            row(case, "ready_slack_s", "  adds done before first run date by", ".2f", "s"),
        ]
    lines.append(table(["measure", "median", "min..max"], rows))
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    return "\n".join(lines)
