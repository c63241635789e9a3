"""APScheduler 3.11 under the same load and dispatch scenarios as Entropy; one run per process.

Run with the benchmark's own APScheduler venv (bench/.venv-apscheduler, made by
bench.peers.ensure_apscheduler), never with the project's: it imports nothing
from entropy or bench, so the few helpers it needs (RSS, percentiles) are
written out here. It prints one JSON object on stdout.

    PY=bench/.venv-apscheduler/bin/python
    $PY bench/peers/apscheduler_driver.py load --store memory --jobs 100000
    $PY bench/peers/apscheduler_driver.py load --store sqlite --jobs 10000 --tmpdir /tmp
    $PY bench/peers/apscheduler_driver.py dispatch --store memory --jobs 20000 --workers 8
    $PY bench/peers/apscheduler_driver.py dispatch --store sqlite --jobs 2000 --tmpdir /tmp

load: a BackgroundScheduler started paused (so add_job writes to the job
store at once, and nothing runs), then N interval jobs (every 30 minutes,
no start date: the scheduler's default, first run one interval from now)
added one by one, as an application adds them at start-up: hosts x 10
audits, each job taking its host's name (one string per host) and an id
naming audit and host, like an Entropy pair. Measured: the time of the N
add_job() calls, and RSS before (after gc.collect + malloc_trim) and after
them, and the peak.

dispatch: a BackgroundScheduler with a ThreadPoolExecutor(workers), started
paused; N DateTrigger jobs whose run dates are spread evenly over `spread`
seconds, starting `lead` seconds after the adds are estimated to finish
(calibrated by adding 200 jobs to a throwaway scheduler of the same store);
then resumed. misfire_grace_time is None (every job runs however late: the
default 1 s would skip late jobs and flatter the rate). Each job is a no-op
that notes when it started; an EVENT_JOB_EXECUTED listener notes when it
finished. Measured: jobs/s = N / (last job finished - first run date),
lateness = started - run date (p50, p99, max), the process's CPU seconds.
With the SQLAlchemy store the scheduler deletes each date job's row when it
submits it; that is all it persists (APScheduler stores no results).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apscheduler
import sqlalchemy
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

CALIBRATION_JOBS = 200
AUDITS_PER_HOST = 10  # as in the Entropy fleets: jobs = hosts x 10 audits


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def release_free_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


def make_store(kind: str, directory: Path, name: str) -> Any:
    if kind == "memory":
        return MemoryJobStore()
    # APScheduler's SQLite defaults: rollback journal, synchronous=FULL, a commit per change.
    return SQLAlchemyJobStore(url=f"sqlite:///{directory / name}.sqlite")


def make_scheduler(store: Any, workers: int) -> BackgroundScheduler:
    return BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
        timezone=UTC,
    )


def host_name(i: int) -> str:
    return f"compute-{i:05d}.bench.example"


def audit(host: str) -> None:
    """What a loaded job would run; never called in the load scenario."""


def measure_load(store_kind: str, jobs: int, directory: Path) -> dict[str, Any]:
    scheduler = make_scheduler(make_store(store_kind, directory, "load"), 8)
    scheduler.start(paused=True)
    release_free_memory()
    before = rss_mib()
    started = time.perf_counter()
    for i in range(jobs):
        if i % AUDITS_PER_HOST == 0:
            host = host_name(i // AUDITS_PER_HOST + 1)
        name = f"bench_audit_{i % AUDITS_PER_HOST + 1:03d}"
        scheduler.add_job(audit, "interval", minutes=30, args=(host,), id=f"{name}@{host}")
    add_s = time.perf_counter() - started
    after = rss_mib()
    peak = peak_rss_mib()
    release_free_memory()
    trimmed = rss_mib()
    stored = len(scheduler.get_jobs())
    scheduler.shutdown(wait=False)
    return {
        "jobs": jobs,
        "stored": stored,
        "add_s": add_s,
        "us_per_job": add_s / jobs * 1e6,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "rss_trimmed_mib": trimmed,
        "rss_peak_mib": peak,
        "bytes_per_job": (after - before) * 2**20 / jobs,
        "trimmed_bytes_per_job": (trimmed - before) * 2**20 / jobs,
    }


# Seconds from run date to start of each dispatched job. Module level, as is noop: the
# SQLAlchemy store pickles a job, so its callable must be importable by name.
# list.append is atomic: the worker threads share the list.
LATENESS: list[float] = []


def noop(run_date: float) -> None:
    """The dispatched job: note how late it started, nothing else."""
    LATENESS.append(time.time() - run_date)


def _calibrate(store_kind: str, directory: Path) -> float:
    """Seconds one add_job of a date job takes with this store, from a throwaway scheduler."""
    scheduler = make_scheduler(make_store(store_kind, directory, "calibration"), 1)
    scheduler.start(paused=True)
    far = datetime.fromtimestamp(time.time() + 3600, UTC)
    started = time.perf_counter()
    for i in range(CALIBRATION_JOBS):
        scheduler.add_job(audit, "date", run_date=far, args=("x",), id=f"c{i}")
    per_add = (time.perf_counter() - started) / CALIBRATION_JOBS
    scheduler.shutdown(wait=False)
    return per_add


def measure_dispatch(
    store_kind: str,
    jobs: int,
    workers: int,
    spread: float,
    lead: float | None,
    stall_after: float,
    directory: Path,
) -> dict[str, Any]:
    per_add = _calibrate(store_kind, directory)
    if lead is None:
        lead = 2.0 + 1.5 * jobs * per_add
    lateness = LATENESS
    lateness.clear()
    done = {"count": 0, "missed": 0, "errors": 0, "last": 0.0}
    progress = threading.Event()
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        now = time.time()
        with lock:
            if event.code == EVENT_JOB_EXECUTED:
                done["count"] += 1
            elif event.code == EVENT_JOB_MISSED:
                done["missed"] += 1
            else:
                done["errors"] += 1
            done["last"] = now
        progress.set()

    scheduler = make_scheduler(make_store(store_kind, directory, "dispatch"), workers)
    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    scheduler.start(paused=True)
    first = time.time() + lead
    added_at = time.perf_counter()
    for i in range(jobs):
        at = first + spread * i / jobs
        scheduler.add_job(
            noop, "date", run_date=datetime.fromtimestamp(at, UTC), args=(at,), id=f"job-{i}"
        )
    add_s = time.perf_counter() - added_at
    slack = first - time.time()
    scheduler.resume()
    cpu_before = time.process_time()
    problem = None
    seen, changed = 0, time.monotonic()
    while done["count"] + done["missed"] + done["errors"] < jobs:
        progress.wait(0.1)
        progress.clear()
        finished = done["count"] + done["missed"] + done["errors"]
        if finished != seen:
            seen, changed = finished, time.monotonic()
        elif time.time() > first and time.monotonic() - changed > stall_after:
            problem = f"stalled: nothing finished for {stall_after:g} s after {finished} jobs"
            break
    cpu_s = time.process_time() - cpu_before
    left = len(scheduler.get_jobs())
    scheduler.shutdown(wait=True)
    elapsed = done["last"] - first
    return {
        "jobs": jobs,
        "executed": done["count"],
        "missed": done["missed"],
        "errors": done["errors"],
        "left_in_store": left,
        "problem": problem,
        "lead_s": lead,
        "ready_slack_s": slack,
        "calibrated_add_us": per_add * 1e6,
        "add_s": add_s,
        "elapsed_s": elapsed,
        "jobs_per_s": done["count"] / elapsed if elapsed > 0 else 0.0,
        "lateness": {
            "p50_ms": percentile(lateness, 50) * 1000,
            "p99_ms": percentile(lateness, 99) * 1000,
            "max_ms": (max(lateness) if lateness else math.nan) * 1000,
        },
        "cpu_s": cpu_s,
        "cpu_us_per_job": cpu_s / max(done["count"], 1) * 1e6,
    }


def versions() -> dict[str, str]:
    import sqlite3

    return {
        "apscheduler": apscheduler.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("versions", help="print the versions this venv holds")
    for name in ("load", "dispatch"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--store", choices=("memory", "sqlite"), default="memory")
        cmd.add_argument("--jobs", type=int, required=True)
        cmd.add_argument("--tmpdir", help="where SQLite job stores go (default: system)")
        if name == "dispatch":
            cmd.add_argument("--workers", type=int, default=8)
            cmd.add_argument("--spread", type=float, default=1.0, help="seconds (default: 1)")
            cmd.add_argument("--lead", type=float, help="seconds (default: calibrated)")
            cmd.add_argument("--stall", type=float, default=30.0, help="seconds (default: 30)")
    args = parser.parse_args(argv)
    if args.command == "versions":
        print(json.dumps(versions()))
        return 0
    with tempfile.TemporaryDirectory(prefix="apscheduler-bench-", dir=args.tmpdir) as tmp:
        if args.command == "load":
            got = measure_load(args.store, args.jobs, Path(tmp))
        else:
            got = measure_dispatch(
                args.store,
                args.jobs,
                args.workers,
                args.spread,
                args.lead,
                args.stall,
                Path(tmp),
            )
    got["versions"] = versions()
    print(json.dumps(got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
