"""What the monitoring rules (src/entropy/monitoring.py) cost per result, in-process.

Each case is one call the engine or the repairer will make per recorded result
(issue 15 phase 2), timed with timeit over --calls calls, --runs times:

  nothing configured   `pair.schedule.monitoring is None`: the only work a pair
                       without monitoring keys gets on the recorder's path
  record, retries      monitoring.record() with max_attempts 3 and retry_every,
                       timing and slot given (next run computed), no flapping
  record, + flapping   the same with flapping detection on
  state as JSON        MonitorState.to_dict() + json.dumps: what a store writes
  repair hold, none    monitoring.repair_hold() with nothing holding the repair
  repair hold, 10 dts  the same with 10 downtimes defined, none covering the pair

The outcomes cycle ok, critical x3, warning, so the state machine walks soft,
hard and recovery transitions. No target is set: the figures say what phase 2
adds per result next to dispatch's ~60 us per audit (15,000+/s).
"""

from __future__ import annotations

import argparse
import json
import timeit
from datetime import UTC, datetime, timedelta
from typing import Any

from entropy.model import (
    Downtime,
    Flapping,
    Host,
    MonitorSettings,
    MonitorState,
    Outcome,
    Schedule,
    StateType,
)
from entropy.monitoring import record, repair_hold
from entropy.timing import Every

from ..common import Spread, environment, table

SUMMARY = "cost of the monitoring rules per result (soft/hard, flapping, holds), in-process"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"calls": 20_000, "runs": 3}
CASES = (
    "nothing configured",
    "record, retries",
    "record, + flapping",
    "state as JSON",
    "repair hold, none",
    "repair hold, 10 dts",
)
OUTCOMES = (Outcome.OK, Outcome.CRITICAL, Outcome.CRITICAL, Outcome.CRITICAL, Outcome.WARNING)
START = datetime(2026, 1, 1, tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls", type=int, default=200_000, help="calls per timing (default: %(default)s)"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs (default: %(default)s)")


def _cases() -> dict[str, Any]:
    """Each case as a no-argument callable, with the state it walks kept in a closure."""
    timing = Every(600)
    retries = MonitorSettings(max_attempts=3, retry_every=60)
    flapping = MonitorSettings(max_attempts=3, retry_every=60, flapping=Flapping())
    plain = Schedule("compute", "check_a", timing)
    host = Host("compute-01", "10.0.0.1", "compute", ("hypervisor",))
    downtimes = [
        Downtime(f"dt-{n}", "r", hosts=(f"other-{n}-*",), start=START, end=START + timedelta(1))
        for n in range(10)
    ]
    hard = MonitorState(Outcome.CRITICAL, StateType.HARD, 1, Outcome.CRITICAL)

    def walker(settings: MonitorSettings) -> Any:
        box: list[Any] = [None, 0]

        def step() -> None:
            n = box[1]
            slot = START + timedelta(seconds=600 * n)
            box[0] = record(box[0], OUTCOMES[n % 5], slot, settings, timing, slot).after
            box[1] = n + 1

        step.box = box  # type: ignore[attr-defined]
        return step

    return {
        "nothing configured": lambda: plain.monitoring is None,
        "record, retries": walker(retries),
        "record, + flapping": walker(flapping),
        "state as JSON": lambda: json.dumps(hard.to_dict()),
        "repair hold, none": lambda: repair_hold("check_a", host, START, hard, retries),
        "repair hold, 10 dts": lambda: repair_hold(
            "check_a", host, START, hard, retries, downtimes
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1 or args.calls < 1:
        raise SystemExit("--runs and --calls must be at least 1")
    cases = _cases()
    per_call: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name in CASES:
            seconds = timeit.timeit(cases[name], number=args.calls)
            per_call[name].append(seconds / args.calls * 1e6)
    problems = []
    walked = cases["record, + flapping"].box[0]
    if walked is None or not walked.flap_history:
        problems.append("the flapping walk recorded no state changes")
    return {
        "scenario": "monitoring",
        "params": {"calls": args.calls, "runs": args.runs},
        "environment": environment(),
        "runs": per_call,
        "summary": {name: Spread.of(values).as_dict() for name, values in per_call.items()},
        "problems": problems,
        "ok": not problems,
        "targets": {},
        "targets_met": None,
    }


def render(result: dict[str, Any]) -> str:
    p, s = result["params"], result["summary"]
    rows = [
        [
            name,
            f"{s[name]['median']:.3f}",
            f"{s[name]['min']:.3f}..{s[name]['max']:.3f}",
            f"{1e6 / s[name]['median']:,.0f}",
        ]
        for name in CASES
    ]
    head = f"monitoring: {p['calls']:,} calls x {p['runs']} runs, microseconds per call"
    lines = [head, table(["case", "us (median)", "min..max", "calls/s"], rows)]
    lines += [f"PROBLEM: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
