"""Engine throughput with every result persisted: N no-op audits all due within one second.

Each run writes a fresh fleet (`run_every: 1day`, so each pair runs once)
and a fresh state store (--store sqlite: a new SQLite file; --store
postgresql: a new schema on the server of --postgresql, upgraded as `entropy
db upgrade` does, dropped after the run; --store mongodb: a new database on
$ENTROPY_BENCH_MONGODB, or else on an NX-27017 server started for the run;
when the server is unreachable the scenario is skipped and says why),
syncs it in one fresh interpreter with max_splay=1 (the first runs spread
over one second, starting a few seconds ahead), then runs the real Engine
(Scheduler, SystemClock, max_workers python workers calling bench.noop:noop)
on a thread in a second fresh interpreter, and stops it once N results are
recorded. The slots span one second, so N must be well above the rate aimed
at for audits/s to measure the engine rather than the spread (the target is set at N = 20,000).

Measured: audits/s = N / (wall time the Nth result was recorded - the first
slot); lateness = result.started_at - result.slot, from the on_result
callback; CPU seconds per engine thread (from /proc, no profiler); calls and
seconds of claim/record (state store), done (scheduler) and run_job
(runner), by light wrappers (about 1 us a call); and how long the engine
loop sat in next_batch() while audits waited unclaimed and a worker was
free (waits of 0.1 s or more there are missed wake-ups). Checked: the results table
holds N rows and every audit row is `processed`. A run where nothing is
recorded for --stall seconds is stopped and reported as stalled.

--profile DIR runs cProfile in every engine thread (threading.setprofile)
and prints, per thread kind, where the time per audit goes; throughput is
then lower (profiler overhead) and no verdict is given.

`python -m bench all` runs it on SQLite, then on PostgreSQL (MongoDB: by hand).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from entropy.broker.topology import Topology
from entropy.engine.broker_executor import BrokerExecutor, BrokerSettings

from ..common import (
    POSTGRESQL_ADMIN,
    GcTimer,
    Spread,
    ThreadProfiles,
    Unreachable,
    context_line,
    environment,
    hosts_for,
    in_fresh_process,
    mongodb_state,
    open_backend,
    postgresql_state,
    profile_top,
    server_version,
    sqlite_url,
    table,
    thread_cpu_seconds,
    verdict,
)
from ..fleet import Fleet, write_fleet
from ..harness import (
    ROLES,
    EngineHarness,
    cpu_by_role,
    engine_run_problems,
    lateness_summary,
    prepare_state,
    sleep_until,
    stored_counts,
    thread_role,
)

SUMMARY = "engine throughput, every result persisted: N audits due within 1 s (real Engine)"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"pairs": 2_000, "runs": 1}
# `python -m bench all` runs the scenario once per argument list here.
VARIANTS: tuple[tuple[str, ...], ...] = ((), ("--store", "postgresql"))
STORES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mongodb": "MongoDB (NX-27017)"}

TARGET_PAIRS = 20_000
TARGET_RATE = 15_000.0  # audits/s, median, SQLite state

# The functions each audit passes through, by the thread that runs them, for --profile.
PATH_OF_AN_AUDIT = (
    ("engine loop", "entropy/scheduler.py", "next_batch", "wait for due audits (incl. idle)"),
    ("engine loop", "entropy/scheduler.py", "_pop_due", "pop due audits off the heap"),
    ("engine loop", "entropy/engine/dispatcher.py", "_dispatch", "dispatch: claim + submit"),
    ("engine loop", "entropy/runners/base.py", "for_pair", "  Job.for_pair"),
    ("engine loop", "entropy/backends/sqlalchemy/state.py", "claim", "  claim (SQL UPDATE)"),
    ("engine loop", "futurist/_futures.py", "submit", "  executor.submit"),
    ("workers", "entropy/engine/pool.py", "_run_one", "_run_one"),
    ("workers", "entropy/runners/__init__.py", "run_job", "  run_job"),
    ("workers", "entropy/runners/python.py", "run", "    python.run (the no-op)"),
    ("workers", "entropy/scheduler.py", "done", "  scheduler.done"),
    ("recorder", "entropy/engine/results.py", "collect", "collect results (incl. flush wait)"),
    ("recorder", "entropy/backends/sqlalchemy/state.py", "record", "record (UPDATE + INSERT)"),
    ("recorder", "entropy/engine/publisher.py", "recorded", "publisher (+ on_result)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=20_000, help="audits due at once (default: %(default)s)"
    )
    parser.add_argument(
        "--audits",
        type=int,
        default=10,
        help="audits per host; hosts = pairs / audits (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs (default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=8, help="engine max_workers (default: %(default)s)"
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="stop a run as stalled after this long without a result (default: %(default)s)",
    )
    parser.add_argument(
        "--lead",
        type=float,
        metavar="SECONDS",
        help="first runs are due this long after the sync (default: 4 s + 8 x load time)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile every engine thread; save per-thread-kind stats in DIR and print "
        "where the time per audit goes (no verdict then)",
    )
    parser.add_argument(
        "--profile-clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="with --profile: time each thread's CPU (where the work is) or the wall "
        "clock (where it waits, too) (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        choices=tuple(STORES),
        default="sqlite",
        help="state store: a fresh SQLite file, a fresh schema on PostgreSQL, or a fresh "
        "database on MongoDB (NX-27017 unless $ENTROPY_BENCH_MONGODB) (default: %(default)s)",
    )
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        default=POSTGRESQL_ADMIN,
        help="with --store postgresql: a database where a schema per run may be created "
        "(default: $ENTROPY_BENCH_POSTGRES, else %(default)s)",
    )
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the fleets and state files go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    hosts = hosts_for(args.pairs, args.audits)
    store = getattr(args, "store", "sqlite")
    params: dict[str, Any] = {
        "pairs": args.pairs,
        "hosts": hosts,
        "audits": args.audits,
        "runs": args.runs,
        "max_workers": args.workers,
        "timing": "run_every 1day, max_splay 1 s",
        "audit": "python bench.noop:noop",
        "store": store,
        "state": "sqlite (fresh file per run)",
        "profiled": bool(args.profile),
        "profile_clock": args.profile_clock if args.profile else None,
    }
    if store in ("postgresql", "mongodb"):
        fresh = "schema" if store == "postgresql" else "database"
        params["state"] = f"{store} (fresh {fresh} per run)"
        try:
            if store == "postgresql":
                with postgresql_state(args.postgresql) as url:
                    params["server"] = server_version(url)
            else:
                with mongodb_state() as url:
                    params["server"] = "MongoDB wire protocol: " + (
                        "NX-27017 (over SQLite)" if not os.environ.get("ENTROPY_BENCH_MONGODB")
                        else "$ENTROPY_BENCH_MONGODB")  # fmt: skip
        except Unreachable as exc:
            return {
                "scenario": "dispatch",
                "params": params,
                "environment": environment(),
                "skipped": str(exc),
                "runs": [],
                "summary": {},
                "problems": [],
                "ok": True,
                "targets": {},
                "targets_met": None,
            }
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for number in range(1, args.runs + 1):
        with (
            tempfile.TemporaryDirectory(prefix="entropy-bench-dispatch-", dir=args.tmpdir) as tmp,
            _state_store(store, Path(tmp), args) as state,
        ):
            fleet = write_fleet("dir", Path(tmp), hosts, args.audits, intervals=("1day",))
            prep = in_fresh_process(prepare_state, fleet, state, 1, args.lead)
            dump = None
            if args.profile:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                dump = str(
                    Path(args.profile) / f"dispatch-{args.pairs}-{args.profile_clock}-run{number}"
                )
            one = in_fresh_process(
                measure_engine,
                fleet,
                state,
                prep["first_due"],
                args.pairs,
                args.workers,
                args.stall,
                dump,
                args.profile_clock == "cpu",
            )
            one.update(run=number, setup=prep, ready_slack_s=prep["first_due"] - one["ready_at"])
            problems += [f"run {number}: {p}" for p in _check(one, prep, args.pairs)]
            runs.append(one)
    result: dict[str, Any] = {
        "scenario": "dispatch",
        "params": params,
        "environment": environment(),
        "runs": runs,
        "summary": _summary(runs),
        "problems": problems,
        "ok": not problems,
    }
    applies = args.pairs == TARGET_PAIRS and not args.profile
    rate = result["summary"]["audits_per_s"]["median"]
    result["targets"] = {}
    if store == "sqlite":  # the target is set for SQLite state
        result["targets"]["audits_per_s"] = {
            "min": TARGET_RATE,
            "median": rate,
            "met": (rate >= TARGET_RATE) if applies else None,
        }
    result["targets_met"] = result["targets"].get("audits_per_s", {}).get("met")
    return result


@contextlib.contextmanager
def _state_store(store: str, tmp: Path, args: argparse.Namespace) -> Iterator[str]:
    """The URL of a fresh, empty state store of this kind for one run."""
    if store == "postgresql":
        with postgresql_state(args.postgresql) as url:
            yield url
    elif store == "mongodb":
        with mongodb_state() as url:
            yield url
    else:
        yield sqlite_url(tmp / "state.sqlite")


def measure_engine(
    fleet: Fleet,
    state_url: str,
    first_slot: float,
    pairs: int,
    max_workers: int,
    stall_after: float,
    profile_to: str | None,
    profile_cpu: bool = True,
    broker: tuple[str, str] | None = None,
    max_splay: int = 1,
) -> dict[str, Any]:
    """In this (fresh) process: run the engine until `pairs` results are recorded.

    broker: (RabbitMQ URL, prefix): executor = broker, the audits run on the workers
    that take zone default's jobs under that prefix (bench broker starts them).
    """
    backend = open_backend(fleet, state_url, max_splay=max_splay)
    executor = None
    if broker is not None:
        url, prefix = broker
        executor = BrokerExecutor(BrokerSettings(url, Topology(prefix), "bench-engine", 30.0))
    try:
        harness = EngineHarness(backend, max_workers, broker=executor)
        profiles = ThreadProfiles(cpu=profile_cpu)
        with GcTimer() as gc_timer, profiles if profile_to else nullcontext():
            harness.start()
            # CPU (and the profile) count from the first slot on: start-up is not dispatch.
            sleep_until(first_slot)
            profiles.reset()
            cpu_before, process_before = thread_cpu_seconds(), time.process_time()
            problem = harness.wait(
                lambda: harness.count >= pairs, stall_after, first_slot + stall_after + pairs
            )
            cpu_after, process_after = thread_cpu_seconds(), time.process_time()
            snapshot = harness.snapshot()
            harness.stop()
        stored = stored_counts(backend)
    finally:
        backend.close()
    lateness = harness.lateness()
    first = min(harness.slots, default=first_slot)
    last_at = harness.last_recorded_at or time.time()
    got: dict[str, Any] = {
        "recorded": harness.count,
        "problem": problem,
        "snapshot_at_end": snapshot,
        "ready_at": harness.ready_at or float("nan"),
        "first_slot": first,
        "last_slot": max(harness.slots, default=first),
        "last_recorded_at": last_at,
        "elapsed_s": last_at - first,
        "audits_per_s": harness.count / (last_at - first) if last_at > first else 0.0,
        "lateness": lateness_summary(lateness),
        "outcomes": dict(harness.outcomes),
        "cpu_s": process_after - process_before,
        "cpu_by_role_s": cpu_by_role(cpu_before, cpu_after),
        "gc_s": gc_timer.seconds,
        "full_gcs": gc_timer.full_collections,
        "meters": harness.metered(),
        "stop_s": harness.stop_s,
        "added_ms": lateness_summary(harness.added) if broker else None,
        **stored,
    }
    if profile_to:
        got["profile"] = _profile_report(profiles, profile_to, harness.count)
    return got


def _profile_report(profiles: ThreadProfiles, prefix: str, audits: int) -> dict[str, Any]:
    """Per thread kind: the profile dump, the path of an audit in us/audit, the top functions."""
    by_role = profiles.stats(thread_role)
    files, tops = {}, {}
    for role, stats in by_role.items():
        path = f"{prefix}-{role.replace(' ', '-')}.prof"
        stats.dump_stats(path)
        files[role] = path
        if role in ROLES:
            tops[role] = profile_top(stats, limit=12, sort="tottime")
    path_rows = []
    for role, filename, function, label in PATH_OF_AN_AUDIT:
        stats = by_role.get(role)
        found = _function_stats(stats.stats, filename, function) if stats else None  # type: ignore[attr-defined]
        if found is None:
            continue
        calls, own, cumulative = found
        path_rows.append(
            {
                "thread": role,
                "step": label,
                "calls": calls,
                "audits_per_call": audits / calls if calls else 0.0,
                "us_per_audit": cumulative / audits * 1e6 if audits else 0.0,
                "own_us_per_audit": own / audits * 1e6 if audits else 0.0,
            }
        )
    return {"files": files, "path_of_an_audit": path_rows, "top_by_own_time": tops}


def _function_stats(
    stats: dict[tuple[str, int, str], tuple], filename: str, function: str
) -> tuple[int, float, float] | None:
    """(calls, own seconds, cumulative seconds) of one function, from a pstats table."""
    for (path, _line, name), (_cc, calls, own, cumulative, _callers) in stats.items():
        if name == function and path.replace("\\", "/").endswith(filename):
            return calls, own, cumulative
    return None


def _check(run: dict[str, Any], prep: dict[str, Any], pairs: int) -> list[str]:
    """A fast wrong answer is no result: every audit ran once, ok, and was persisted."""
    problems = engine_run_problems(run, prep, pairs, "throughput and lateness include")
    if run["recorded"] != pairs:
        problems.append(f"{run['recorded']} results recorded, expected {pairs}")
    if run["results_rows"] != pairs:
        problems.append(f"results table holds {run['results_rows']} rows, expected {pairs}")
    if run["audit_status"] != {"processed": pairs}:
        problems.append(f"audit rows by status {run['audit_status']}, expected all processed")
    return problems


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    def spread(get: Any) -> dict[str, float]:
        return Spread.of([get(r) for r in runs]).as_dict()

    summary = {
        "audits_per_s": spread(lambda r: r["audits_per_s"]),
        "elapsed_s": spread(lambda r: r["elapsed_s"]),
        "lateness_p50_ms": spread(lambda r: r["lateness"]["p50_ms"]),
        "lateness_p99_ms": spread(lambda r: r["lateness"]["p99_ms"]),
        "lateness_max_ms": spread(lambda r: r["lateness"]["max_ms"]),
        "cpu_s": spread(lambda r: r["cpu_s"]),
        "cpu_us_per_audit": spread(lambda r: r["cpu_s"] / max(r["recorded"], 1) * 1e6),
        "gc_s": spread(lambda r: r["gc_s"]),
        "stop_s": spread(lambda r: r["stop_s"]),
        "ready_slack_s": spread(lambda r: r["ready_slack_s"]),
        "setup_s": spread(lambda r: r["setup"]["load_s"] + r["setup"]["sync_s"]),
    }
    summary["idle_with_backlog_s"] = spread(lambda r: r["meters"]["idle_with_backlog"]["seconds"])
    summary["idle_long_waits"] = spread(lambda r: r["meters"]["idle_with_backlog"]["long_waits"])
    for role in ROLES:
        summary[f"cpu_{role}_s"] = spread(lambda r, role=role: r["cpu_by_role_s"][role])
    for name in ("claim", "record", "done", "run_job"):
        summary[f"{name}_calls"] = spread(lambda r, n=name: r["meters"][n]["calls"])
        summary[f"{name}_items_per_call"] = spread(
            lambda r, n=name: r["meters"][n]["items"] / max(r["meters"][n]["calls"], 1)
        )
        summary[f"{name}_ms_per_call"] = spread(
            lambda r, n=name: r["meters"][n]["seconds"] / max(r["meters"][n]["calls"], 1) * 1e3
        )
        summary[f"{name}_longest_ms"] = spread(lambda r, n=name: r["meters"][n]["longest_s"] * 1e3)
        summary[f"{name}_us_per_audit"] = spread(
            lambda r, n=name: r["meters"][n]["seconds"] / max(r["recorded"], 1) * 1e6
        )
    return summary


def render(result: dict[str, Any]) -> str:
    p, s = result["params"], result["summary"]
    store = STORES[p.get("store", "sqlite")]
    if result.get("skipped"):
        return f"dispatch ({store} state): skipped: {result['skipped']}"
    target = result["targets"].get("audits_per_s")

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
            "audits_per_s",
            "throughput: N / (last recorded - first slot)",
            ",.0f",
            "/s",
            f">= {TARGET_RATE:,.0f} /s" if target else "",
            verdict(target["met"]) if target else "",
        ),
        row("elapsed_s", "first slot -> Nth result recorded", ".2f", "s"),
        row("lateness_p50_ms", "lateness p50 (started_at - slot)", ",.1f", "ms"),
        row("lateness_p99_ms", "lateness p99", ",.1f", "ms"),
        row("lateness_max_ms", "lateness max", ",.1f", "ms"),
        row("cpu_s", "engine process CPU, first slot -> end", ".2f", "s"),
        row("cpu_us_per_audit", "  per audit", ",.0f", "us"),
        *(row(f"cpu_{role}_s", f"  {role} threads", ".2f", "s") for role in ROLES),
        row("gc_s", "  cyclic GC (all threads)", ".3f", "s"),
        row("claim_calls", "claim transactions", ",.0f", ""),
        row("claim_items_per_call", "  audits per claim", ".1f", ""),
        row("claim_ms_per_call", "  ms per claim", ".2f", "ms"),
        row("claim_longest_ms", "  longest claim", ".1f", "ms"),
        row("record_calls", "record transactions", ",.0f", ""),
        row("record_items_per_call", "  results per record", ".1f", ""),
        row("record_ms_per_call", "  ms per record", ".2f", "ms"),
        row("idle_with_backlog_s", "engine loop idle, audits waiting + worker free", ".2f", "s"),
        row("idle_long_waits", "  of which waits >= 0.1 s (missed wake-ups)", ",.0f", ""),
        row("done_us_per_audit", "scheduler.done, per audit", ".1f", "us"),
        row("run_job_us_per_audit", "run_job (no-op python), per audit", ".1f", "us"),
        row("stop_s", "engine stop (graceful) took", ".2f", "s"),
        row("ready_slack_s", "engine ready before first slot by", ".2f", "s"),
        row("setup_s", "setup: load + sync (not timed)", ".2f", "s"),
    ]
    lines = [
        f"dispatch: {p['pairs']:,} pairs ({p['hosts']:,} hosts x {p['audits']} audits) due "
        f"within 1 s, no-op python audits, max_workers {p['max_workers']}, {store} state "
        f"(fresh per run), {p['runs']} run(s)",
        context_line(result["environment"]) + (f"; {p['server']}" if p.get("server") else ""),
        "",
        table(["measure", "median", "min..max", "target", "verdict"], rows),
    ]
    if p["profiled"]:
        lines.append("\nprofiled: every thread under cProfile; no verdict.")
    elif target is None:
        lines.append("\nthe target is set for SQLite state; none here.")
    elif target["met"] is None:
        lines.append(f"\nthe target is set for {TARGET_PAIRS:,} pairs; no verdict at this size.")
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    profile = result["runs"][0].get("profile")
    if profile:
        lines += ["", render_profile(profile, result["runs"][0]["recorded"], p["profile_clock"])]
    return "\n".join(lines)


def render_profile(profile: dict[str, Any], audits: int, clock: str) -> str:
    rows = [
        [
            f"{r['thread']}: {r['step']}",
            f"{r['calls']:,}",
            f"{r['audits_per_call']:.1f}",
            f"{r['us_per_audit']:,.1f}",
            f"{r['own_us_per_audit']:,.1f}",
        ]
        for r in profile["path_of_an_audit"]
    ]
    what = "each thread's CPU time" if clock == "cpu" else "wall time, so waits count"
    lines = [
        f"cProfile, run 1 ({audits:,} audits; {what}; profiler overhead included): "
        "the path of an audit",
        table(["thread: step", "calls", "audits/call", "us/audit (cum)", "us/audit (own)"], rows),
    ]
    for role, top in profile["top_by_own_time"].items():
        lines += ["", f"{role}: top 12 by own time ({profile['files'][role]})", top]
    return "\n".join(lines)
