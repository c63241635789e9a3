"""Several engine processes on one PostgreSQL state store: throughput, duplicates, lateness.

For each engine count N (--engines 1,2,4): a fresh PostgreSQL schema, a
fleet of --pairs no-op python audits (run_every 1 day, so each pair runs
once), synced so that every pair falls due within --splay seconds of one
moment a little ahead; then N real `entropy engine run` processes (the CLI,
stdout to /dev/null) share the store until every pair has a result, and
`entropy engine stop --all` stops them.

Measured from the history table: audits/s = results / (last finished_at -
first slot); duplicates = results - distinct (pair, slot) (must be 0);
missing = pairs without a result; lateness = started_at - slot (p50, p99,
max). With --splay 0 everything is due at once, so lateness is mostly the
backlog draining (p99 ~ the whole run); a --splay of pairs / rate offers a
steady rate instead. CPU seconds of the engine processes and of the
PostgreSQL server from the first slot on (start-up excluded) say where the
time went.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from entropy.backends.sqlalchemy.tables import engines as engines_table
from entropy.backends.sqlalchemy.tables import results

from ..common import (
    POSTGRESQL_ADMIN,
    REPO,
    Unreachable,
    context_line,
    environment,
    hosts_for,
    in_fresh_process,
    percentile,
    postgresql_state,
    server_version,
    table,
    verdict,
)
from ..fleet import write_fleet
from ..harness import prepare_state

SUMMARY = "N engine processes on one PostgreSQL store: audits/s, duplicates, lateness"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"pairs": 10_000, "engines": "1,2"}
TARGET_ENGINES, TARGET_PAIRS, TARGET_RATE = 4, 100_000, 5_000.0
HEADER = ["run", "audits/s", "dup", "missing", "late p50 ms", "late p99 ms", "span s",
          "engine CPU s", "PG CPU s", "results per engine"]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", default="1,2,4", help="engine counts (default: %(default)s)")
    parser.add_argument("--pairs", type=int, default=100_000, help="(default: %(default)s)")
    parser.add_argument("--audits", type=int, default=10, help="audits per host (default: 10)")
    parser.add_argument("--workers", type=int, default=8, help="max_workers of each engine")
    parser.add_argument(
        "--splay", type=float, default=0.0, help="first runs spread over S seconds (default: 0)"
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="give up after S seconds without progress"
    )
    parser.add_argument("--postgresql", metavar="URL", default=POSTGRESQL_ADMIN,
                        help="a database where a schema per run may be created")  # fmt: skip
    parser.add_argument("--tmpdir", metavar="DIR", help="where fleets go (default: system)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(n) for n in str(args.engines).split(",") if n.strip()]
    hosts = hosts_for(args.pairs, args.audits)
    params = {"pairs": args.pairs, "hosts": hosts, "audits": args.audits, "engines": counts,
              "max_workers": args.workers, "splay_s": args.splay,
              "audit": "python bench.noop:noop", "timing": "run_every 1day"}  # fmt: skip
    result: dict[str, Any] = {"scenario": "engines", "params": params,
                              "environment": environment(), "runs": [], "problems": []}  # fmt: skip
    try:
        for n in counts:
            prefix = "entropy-bench-engines-"
            with (
                tempfile.TemporaryDirectory(prefix=prefix, dir=args.tmpdir) as tmp,
                postgresql_state(args.postgresql) as url,
            ):
                params["server"] = server_version(url)
                fleet = write_fleet("dir", Path(tmp), hosts, args.audits, intervals=("1day",))
                lead = 8.0 + 3.0 * n * max(args.pairs / 100_000, 0.2)
                prep = in_fresh_process(prepare_state, fleet, url, int(args.splay), lead)
                one = _measure(fleet, url, n, args, prep)
                result["runs"].append(one)
                result["problems"] += [f"{n} engines: {p}" for p in one["problems"]]
    except Unreachable as exc:
        result.update(skipped=str(exc), ok=True, targets={}, targets_met=None)
        return result
    result["ok"] = not result["problems"]
    best = {r["engines"]: r["audits_per_s"] for r in result["runs"]}
    # The target is a capacity: everything due at once (a splay offers a rate instead).
    applies = args.pairs == TARGET_PAIRS and TARGET_ENGINES in best and not args.splay
    met = best.get(TARGET_ENGINES, 0.0) >= TARGET_RATE if applies else None
    got = best.get(TARGET_ENGINES)
    result["targets"] = {"audits_per_s_4_engines": {"min": TARGET_RATE, "met": met, "median": got}}
    result["targets_met"] = met
    return result


def _measure(fleet: Any, url: str, n: int, args: argparse.Namespace, prep: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        OS_DIR__STATE_CONNECTION=url,
        OS_DEFAULT__MAX_SPLAY=str(int(args.splay)),
        OS_DEFAULT__REFRESH_INTERVAL="3600",
    )
    command = [sys.executable, "-m", "entropy", "--backend", fleet.url, "engine", "run",
               "--max-workers", str(args.workers)]  # fmt: skip
    db = create_engine(url)
    logs = Path(fleet.location).parent
    procs = []
    for i in range(1, n + 1):
        err = open(logs / f"engine-{i}.err", "w")  # noqa: SIM115 - the child keeps it
        named = {**env, "OS_DEFAULT__ENGINE_ID": f"bench-{i}"}
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=named))
    problems: list[str] = []
    try:
        with db.connect() as conn:
            ready_at = _poll(lambda: conn.execute(
                select(func.count()).select_from(engines_table)).scalar_one() >= n or None,
                prep["first_due"] + 60 - time.time())  # fmt: skip
        if ready_at is None:
            problems.append("the engines did not all register")
        # CPU from the first slot on: the engines' start-up (load + sync) is not the run.
        while time.time() < prep["first_due"]:
            time.sleep(0.05)
        engine_before = sum(_cpu_of(p.pid) for p in procs)
        pg_before = _postgres_cpu()
        last, last_change, done = -1, time.time(), 0
        while done < args.pairs:
            time.sleep(0.5)
            if any(p.poll() is not None for p in procs):
                problems.append("an engine exited early")
                break
            with db.connect() as conn:
                done = conn.execute(select(func.count()).select_from(results)).scalar_one()
            if done != last:
                last, last_change = done, time.time()
            elif time.time() - last_change > args.stall:
                problems.append(f"stalled at {done} of {args.pairs} results")
                break
        engine_cpu = sum(_cpu_of(p.pid) for p in procs) - engine_before
        pg_cpu = _postgres_cpu() - pg_before
    finally:
        stop = subprocess.run([sys.executable, "-m", "entropy", "--backend", fleet.url, "engine",
                               "stop", "--all", "--wait", "60s"], env=env, capture_output=True,
                              text=True)  # fmt: skip
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                problems.append("an engine did not stop on `entropy engine stop --all`")
        if stop.returncode:
            problems.append(f"engine stop --all: {stop.stderr.strip()}")
    with db.connect() as conn:
        rows = conn.execute(select(results.c.audit_name, results.c.host, results.c.slot,
                                   results.c.started_at, results.c.finished_at,
                                   results.c.engine_id)).all()  # fmt: skip
    db.dispose()
    distinct = {(r.audit_name, r.host, r.slot) for r in rows}
    lateness = [(r.started_at - r.slot).total_seconds() for r in rows]
    first = min(r.slot for r in rows) if rows else None
    span = (max(r.finished_at for r in rows) - first).total_seconds() if rows else float("nan")
    shares: dict[str, int] = {}
    for r in rows:
        shares[r.engine_id] = shares.get(r.engine_id, 0) + 1
    duplicates = len(rows) - len(distinct)
    missing = args.pairs - len({(a, h) for a, h, _ in distinct})
    if duplicates:
        problems.append(f"{duplicates} duplicate results")
    if missing:
        problems.append(f"{missing} pairs never ran")
    stderr = "".join((logs / f"engine-{i}.err").read_text() for i in range(1, n + 1))
    return {
        "engines": n,
        "ready_slack_s": (prep["first_due"] - ready_at) if ready_at else None,
        "results": len(rows),
        "duplicates": duplicates,
        "missing": missing,
        "span_s": span,
        "audits_per_s": len(rows) / span if span and span > 0 else 0.0,
        "lateness_p50_ms": percentile(lateness, 50) * 1000,
        "lateness_p99_ms": percentile(lateness, 99) * 1000,
        "lateness_max_ms": (max(lateness) if lateness else float("nan")) * 1000,
        "per_engine": dict(sorted(shares.items())),
        "engine_cpu_s": engine_cpu,
        "postgres_cpu_s": pg_cpu,
        "errors_logged": stderr.count(" ERROR "),
        "setup": prep,
        "problems": problems,
    }


def _poll(check: Any, timeout: float) -> float | None:
    deadline = time.time() + max(timeout, 5.0)
    while time.time() < deadline:
        if check():
            return time.time()
        time.sleep(0.2)
    return None


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of one live process and its reaped children (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds used so far by every process named postgres on this machine."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii") as comm:
                if comm.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += _cpu_of(int(entry))
    return total


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    head = (f"engines: {p['pairs']:,} pairs, no-op python audits, each engine max_workers "
            f"{p['max_workers']}, due within {p['splay_s']:g} s, PostgreSQL state "
            f"({p.get('server', '?')})")  # fmt: skip
    if result.get("skipped"):
        return f"{head}\nSKIPPED: {result['skipped']}"
    rows = []
    for r in result["runs"]:
        shares = "/".join(str(v) for v in r["per_engine"].values())
        rows.append([
            f"{r['engines']} engine{'s' if r['engines'] > 1 else ''}",
            f"{r['audits_per_s']:,.0f}", str(r["duplicates"]), str(r["missing"]),
            f"{r['lateness_p50_ms']:,.0f}", f"{r['lateness_p99_ms']:,.0f}",
            f"{r['span_s']:.1f}", f"{r['engine_cpu_s']:.1f}", f"{r['postgres_cpu_s']:.1f}", shares,
        ])  # fmt: skip
    target = result.get("targets", {}).get("audits_per_s_4_engines", {})
    lines = [
        head,
        context_line(result["environment"]),
        "",
        table(HEADER, rows),
        f"\ntarget: >= {TARGET_RATE:,.0f} audits/s with {TARGET_ENGINES} engines at "
        f"{TARGET_PAIRS:,} pairs, all due at once: {verdict(target.get('met'))}",
    ]
    lines += [f"WRONG: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
