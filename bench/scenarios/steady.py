"""Lateness at a steady rate: N pairs spread so that R audits/s fall due, for S seconds.

Each run writes a fresh fleet and a fresh SQLite state file, syncs it in one
fresh interpreter, then runs the real Engine (Scheduler, SystemClock,
max_workers python workers calling bench.noop:noop) in a second one.

The first runs are splayed uniformly over N / R seconds (max_splay = N / R,
e.g. 100 s for 100,000 pairs at 1,000/s), so audits fall due at R per second
from the first slot on. run_every is that span + 120 s, not the span
itself: the sync happens a few seconds ahead of the engine's own start-up
re-sync, and a next_run further out than now + run_every would count as
left over from old timing and be re-splayed. The measured window, the S
seconds from the first slot, lies within that first pass.

Measured over the audits due in the window: lateness = started_at - slot
(p50, p99, max); an audit still waiting when the engine stops counts with
its wait so far (a lower bound), so an engine that falls behind cannot look
punctual. Also audits/s started in the window (against the R offered), and
the engine process's CPU seconds in the window, per thread kind. The engine
is stopped once every audit due in the window is recorded, or --drain
seconds after the window.

--refresh-at S asks the scheduler for a refresh S seconds into the window
(as its refresh_interval, 300 s by default, or a changed file would): the
refresh runs on its own thread while the engine goes on, so what it costs
the engine shows up as lateness. --refresh-kind says which refresh:
"change" (the default) first rewrites the fleet's schedule file with one
audit's timeout changed, so an incremental refresh re-syncs and re-times
that audit's pairs (1 in --audits of them); "incremental" asks for one
with nothing changed; "full" for a full re-sync of every row (what runs
every full_resync_interval, in a child process); "full-in-process" for the
same in the engine's process, as before issue 18, to compare. Without
--refresh-at no refresh falls in the window.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from entropy.backends.sqlalchemy.tables import audits

from ..common import (
    GcTimer,
    Spread,
    context_line,
    environment,
    hosts_for,
    in_fresh_process,
    open_backend,
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
)

SUMMARY = "lateness at a steady rate: N pairs splayed so R audits/s fall due (real Engine)"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"pairs": 10_000, "seconds": 10, "runs": 1}

TARGET_SIZE = (100_000, 1_000.0)  # pairs, audits/s
TARGET_P99_MS = 20.0
TARGET_KEEP_UP = 0.99  # audits started in the window / audits due in it
PAD = 120  # run_every = splay span + PAD seconds (see the docstring)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=100_000, help="pairs in the fleet (default: %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=1_000.0, help="audits due per second (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="measured window (default: %(default)s)"
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
        "--drain",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="after the window, wait at most this long for its audits (default: %(default)s)",
    )
    parser.add_argument(
        "--refresh-at",
        type=float,
        metavar="S",
        help="request a scheduler refresh S seconds into the window (default: none)",
    )
    parser.add_argument(
        "--refresh-kind",
        choices=("change", "incremental", "full", "full-in-process"),
        default="change",
        help="with --refresh-at: which refresh (default: %(default)s; see above)",
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
        "--tmpdir", metavar="DIR", help="where the fleets and state files go (default: system)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    hosts_for(args.pairs, args.audits)
    span = args.pairs / args.rate
    if span != int(span) or span < 1:
        raise SystemExit(f"--pairs / --rate must be a whole number of seconds, got {span:g}")
    span = int(span)
    if not 0 < args.seconds <= span:
        raise SystemExit(f"--seconds must be within the first pass: 0 < seconds <= {span}")
    if args.refresh_at is not None and not 0 <= args.refresh_at < args.seconds:
        raise SystemExit("--refresh-at must lie within the window: 0 <= S < --seconds")
    if args.lead is not None and args.lead > PAD - 2:
        raise SystemExit(f"--lead must be at most {PAD - 2} s")
    hosts = args.pairs // args.audits
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="entropy-bench-steady-", dir=args.tmpdir) as tmp:
            fleet = write_fleet("dir", Path(tmp), hosts, args.audits, intervals=(f"{span + PAD}s",))
            state = sqlite_url(Path(tmp) / "state.sqlite")
            prep = in_fresh_process(prepare_state, fleet, state, span, args.lead, args.seconds)
            if prep["lead_s"] > PAD - 2:
                raise SystemExit(f"the sync took too long for a {PAD - 2} s lead; pass --lead")
            one = in_fresh_process(
                measure_steady,
                fleet,
                state,
                span,
                prep["first_due"],
                args.seconds,
                prep["due_in_window"],
                args.workers,
                args.drain,
                args.stall,
                args.refresh_at,
                args.refresh_kind,
            )
            one.update(run=number, setup=prep, ready_slack_s=prep["first_due"] - one["ready_at"])
            problems += [f"run {number}: {p}" for p in _check(one, prep, args.pairs)]
            runs.append(one)
    result: dict[str, Any] = {
        "scenario": "steady",
        "params": {
            "pairs": args.pairs,
            "hosts": hosts,
            "audits": args.audits,
            "rate": args.rate,
            "refresh_at": args.refresh_at,
            "refresh_kind": args.refresh_kind if args.refresh_at is not None else None,
            "seconds": args.seconds,
            "runs": args.runs,
            "max_workers": args.workers,
            "timing": f"run_every {span + PAD}s, max_splay {span} s",
            "audit": "python bench.noop:noop",
            "state": "sqlite (fresh file per run)",
        },
        "environment": environment(),
        "runs": runs,
        "summary": _summary(runs),
        "problems": problems,
        "ok": not problems,
    }
    applies = (args.pairs, args.rate) == TARGET_SIZE
    s = result["summary"]
    p99, kept_up = s["lateness_p99_ms"]["median"], s["kept_up"]["median"]
    result["targets"] = {
        "lateness_p99_ms": {
            "max": TARGET_P99_MS,
            "median": p99,
            "met": (p99 <= TARGET_P99_MS) if applies else None,
        },
        "kept_up": {
            "min": TARGET_KEEP_UP,
            "median": kept_up,
            "met": (kept_up >= TARGET_KEEP_UP) if applies else None,
        },
    }
    met = [t["met"] for t in result["targets"].values() if t["met"] is not None]
    result["targets_met"] = all(met) if met else None
    return result


def measure_steady(
    fleet: Fleet,
    state_url: str,
    span: int,
    first_slot: float,
    seconds: float,
    due_in_window: int,
    max_workers: int,
    drain: float,
    stall_after: float,
    refresh_at: float | None = None,
    refresh_kind: str = "change",
) -> dict[str, Any]:
    """In this (fresh) process: run the engine through the window, then drain it."""
    window_end = first_slot + seconds
    backend = open_backend(fleet, state_url, max_splay=span)
    try:
        harness = EngineHarness(backend, max_workers, mark=window_end)
        with GcTimer() as gc_timer:
            harness.start()
            sleep_until(first_slot)
            cpu_before, process_before = thread_cpu_seconds(), time.process_time()
            problem = None
            if refresh_at is not None:
                problem = harness.wait(
                    lambda: time.time() >= first_slot + refresh_at, stall_after, window_end + 1
                )
                if refresh_kind == "change":
                    _change_one_audit(fleet)
                if refresh_kind == "full-in-process":
                    harness.scheduler.full_resync_in_child = False
                harness.scheduler.request_refresh(full=refresh_kind.startswith("full"))
            problem = problem or harness.wait(
                lambda: time.time() >= window_end, stall_after, window_end + 1
            )
            cpu_after, process_after = thread_cpu_seconds(), time.process_time()
            problem = problem or harness.wait(
                lambda: time.time() >= window_end + drain or harness.before_mark >= due_in_window,
                stall_after,
                window_end + drain + 1,
            )
            snapshot = harness.snapshot()
            stopped_at = time.time()  # audits still waiting now count as this late, at least
            harness.stop()
        # Audits due in the window that never ran still hold their first next_run.
        with backend.state.engine.connect() as conn:
            waiting = [
                t.timestamp()
                for t in conn.execute(
                    select(audits.c.next_run).where(
                        audits.c.next_run < datetime.fromtimestamp(window_end, UTC)
                    )
                ).scalars()
            ]
    finally:
        backend.close()
    in_window = [
        (slot, started)
        for slot, started in zip(harness.slots, harness.started, strict=True)
        if slot < window_end
    ]
    ran = [started - slot for slot, started in in_window]
    everyone = ran + [stopped_at - slot for slot in waiting]
    started_in_window = sum(first_slot <= s < window_end for s in harness.started)
    return {
        "seconds": seconds,
        "due_in_window": due_in_window,
        "ran_in_window": len(in_window),
        "never_ran": len(waiting),
        "problem": problem,
        "snapshot_at_end": snapshot,
        "ready_at": harness.ready_at or float("nan"),
        "offered_per_s": due_in_window / seconds,
        "audits_per_s": started_in_window / seconds,
        "kept_up": len(in_window) / due_in_window if due_in_window else 0.0,
        "lateness": lateness_summary(everyone),
        "lateness_ran_only": lateness_summary(ran),
        "outcomes": dict(harness.outcomes),
        "cpu_s": process_after - process_before,
        "cpu_by_role_s": cpu_by_role(cpu_before, cpu_after),
        "gc_s": gc_timer.seconds,
        "meters": harness.metered(),
        "stop_s": harness.stop_s,
        "refreshes_s": harness.refreshes,
    }


def _change_one_audit(fleet: Fleet) -> None:
    """Give the first audit of the schedule file a timeout: its pairs' settings change."""
    path = next(iter(sorted((fleet.location / "audits").glob("*.yaml"))))
    lines = path.read_text().splitlines(keepends=True)
    at = next(k for k, line in enumerate(lines) if line.strip().startswith(("run_every", "cron")))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at + 1, f"{indent}timeout: 7s\n")
    path.write_text("".join(lines))


def _check(run: dict[str, Any], prep: dict[str, Any], pairs: int) -> list[str]:
    problems = engine_run_problems(run, prep, pairs, "lateness includes")
    if run["ran_in_window"] + run["never_ran"] != run["due_in_window"]:
        problems.append(
            f"{run['ran_in_window']} ran + {run['never_ran']} waiting != "
            f"{run['due_in_window']} due in the window"
        )
    return problems


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    def spread(get: Any) -> dict[str, float]:
        return Spread.of([get(r) for r in runs]).as_dict()

    summary = {
        "offered_per_s": spread(lambda r: r["offered_per_s"]),
        "audits_per_s": spread(lambda r: r["audits_per_s"]),
        "kept_up": spread(lambda r: r["kept_up"]),
        "never_ran": spread(lambda r: r["never_ran"]),
        "lateness_p50_ms": spread(lambda r: r["lateness"]["p50_ms"]),
        "lateness_p99_ms": spread(lambda r: r["lateness"]["p99_ms"]),
        "lateness_max_ms": spread(lambda r: r["lateness"]["max_ms"]),
        "cpu_s": spread(lambda r: r["cpu_s"]),
        "cpu_cores": spread(lambda r: r["cpu_s"] / r["seconds"]),
        "gc_s": spread(lambda r: r["gc_s"]),
        "claim_items_per_call": spread(
            lambda r: r["meters"]["claim"]["items"] / max(r["meters"]["claim"]["calls"], 1)
        ),
        "claim_ms_per_call": spread(
            lambda r: r["meters"]["claim"]["seconds"] / max(r["meters"]["claim"]["calls"], 1) * 1e3
        ),
        "claim_longest_ms": spread(lambda r: r["meters"]["claim"]["longest_s"] * 1e3),
        "record_ms_per_call": spread(
            lambda r: (
                r["meters"]["record"]["seconds"] / max(r["meters"]["record"]["calls"], 1) * 1e3
            )
        ),
        "record_items_per_call": spread(
            lambda r: r["meters"]["record"]["items"] / max(r["meters"]["record"]["calls"], 1)
        ),
        "idle_with_backlog_s": spread(lambda r: r["meters"]["idle_with_backlog"]["seconds"]),
        "idle_long_waits": spread(lambda r: r["meters"]["idle_with_backlog"]["long_waits"]),
        "stop_s": spread(lambda r: r["stop_s"]),
        "refresh_s": spread(lambda r: sum(r["refreshes_s"])),
        "ready_slack_s": spread(lambda r: r["ready_slack_s"]),
        "setup_s": spread(lambda r: r["setup"]["load_s"] + r["setup"]["sync_s"]),
    }
    for role in ROLES:
        summary[f"cpu_{role}_s"] = spread(lambda r, role=role: r["cpu_by_role_s"][role])
    return summary


def render(result: dict[str, Any]) -> str:
    p, s, targets = result["params"], result["summary"], result["targets"]

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
        row("offered_per_s", "audits due per second (offered)", ",.0f", "/s"),
        row("audits_per_s", "audits started per second (achieved)", ",.0f", "/s"),
        row(
            "kept_up",
            "due in the window that ran by the end",
            ".1%",
            "",
            f">= {TARGET_KEEP_UP:.0%}",
            verdict(targets["kept_up"]["met"]),
        ),
        row("never_ran", "  due in the window, never ran", ",.0f", ""),
        row("lateness_p50_ms", "lateness p50 (started_at - slot)", ",.1f", "ms"),
        row(
            "lateness_p99_ms",
            "lateness p99",
            ",.1f",
            "ms",
            f"<= {TARGET_P99_MS:g} ms",
            verdict(targets["lateness_p99_ms"]["met"]),
        ),
        row("lateness_max_ms", "lateness max", ",.1f", "ms"),
        row("cpu_s", "engine process CPU in the window", ".2f", "s"),
        row("cpu_cores", "  CPU per second (cores busy)", ".2f", ""),
        *(row(f"cpu_{role}_s", f"  {role} threads", ".2f", "s") for role in ROLES),
        row("gc_s", "  cyclic GC, whole run", ".3f", "s"),
        row("claim_items_per_call", "audits per claim transaction", ".1f", ""),
        row("claim_ms_per_call", "  ms per claim", ".2f", "ms"),
        row("claim_longest_ms", "  longest claim", ".1f", "ms"),
        row("record_items_per_call", "results per record transaction", ".1f", ""),
        row("record_ms_per_call", "  ms per record", ".2f", "ms"),
        row("idle_with_backlog_s", "engine loop idle, audits waiting + worker free", ".2f", "s"),
        row("idle_long_waits", "  of which waits >= 0.1 s (missed wake-ups)", ",.0f", ""),
        row("refresh_s", "scheduler refreshes in the run took", ".2f", "s"),
        row("stop_s", "engine stop (graceful) took", ".2f", "s"),
        row("ready_slack_s", "engine ready before first slot by", ".2f", "s"),
        row("setup_s", "setup: load + sync (not timed)", ".2f", "s"),
    ]
    lines = [
        f"steady: {p['pairs']:,} pairs ({p['hosts']:,} hosts x {p['audits']} audits), "
        f"{p['timing']}: {p['rate']:,.0f} audits/s for {p['seconds']:g} s, no-op python "
        f"audits, max_workers {p['max_workers']}, SQLite state (fresh per run), "
        f"{p['runs']} run(s)"
        + (
            f", {p.get('refresh_kind') or ''} refresh requested at {p['refresh_at']:g} s"
            if p["refresh_at"] is not None
            else ""
        ),
        context_line(result["environment"]),
        "",
        table(["measure", "median", "min..max", "target", "verdict"], rows),
        "\nlateness counts audits due in the window that never ran with their wait so far.",
    ]
    if all(t["met"] is None for t in targets.values()):
        lines.append(
            f"targets are set for {TARGET_SIZE[0]:,} pairs at {TARGET_SIZE[1]:,.0f}/s; "
            "no verdict at this size."
        )
    for problem in result["problems"]:
        lines.append(f"WRONG: {problem}")
    return "\n".join(lines)
