"""No-op jobs through RabbitMQ and `entropy worker run`: the broker executor's raw round trip.

The producer is this process, with entropy.broker.client.JobClient (what the
engine's broker executor will drive): it publishes job messages (persistent,
publisher confirms) to a zone queue; 1, then 2, real `entropy worker run`
processes (--max-workers each) take them, run the no-op python audit
bench.noop:noop, publish each result (persistent, confirmed) and
acknowledge the job; the results come back on this process's queue.
No state store is involved: this is what the broker path adds per audit.

For each worker count, after --warmup jobs:

  latency      --rate jobs/s offered for --seconds, published in 5 ms ticks:
               publish -> result received, minus the run itself ("added
               latency"): p50, p99, max; and whether the rate was kept up
  throughput   --jobs jobs with at most --window in flight: jobs/s from the
               first publish to the last result, and the CPU each party
               spent per job (the workers, RabbitMQ's beam.smp, this
               producer), from /proc: the per-message cost

Then the real engine (issue 17, phase 2), in a fresh process on a fresh
SQLite state store, with the pool executor and with executor = broker and
1, then 2, workers, in the same run:

  engine throughput   --engine-pairs no-op audits all due within one second
                      (as bench dispatch): audits/s from the first slot to
                      the last result recorded, and CPU per audit of the
                      engine, the workers and RabbitMQ
  engine latency      --rate audits/s for --seconds (the first runs spread
                      over --seconds): slot -> started (lateness) p50/p99,
                      and with the broker the added latency, job published
                      -> result recorded (committed), minus the run: p50/p99;
                      and the engine's CPU per audit at that rate ("engine
                      at rate": claims are a few rows each, not hundreds)

Each job must come back exactly once (checked). RabbitMQ is shared with
whatever else runs on the machine (its CPU is counted whole). Targets for
the engine's broker executor (issue 17, phase 2: the real engine as the
producer): >= 3,000 no-op audits/s round trip and p99 added latency <= 50
ms at 1,000/s on this 2-core machine; shown here for reference, not judged.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import kombu

from entropy.broker.client import JobClient
from entropy.broker.connection import CONNECTION_ERRORS, BrokerError, describe
from entropy.broker.protocol import Claim, JobMessage, ResultMessage
from entropy.broker.topology import Topology
from entropy.model import Host, Script
from entropy.runners.base import Job

from ..common import (
    REPO,
    environment,
    hosts_for,
    in_fresh_process,
    percentile,
    process_cpu_seconds,
    sqlite_url,
    table,
    verdict,
)
from ..fleet import write_fleet
from ..harness import prepare_state
from .dispatch import measure_engine

SUMMARY = "no-op jobs through RabbitMQ and 1, 2 `entropy worker run`: audits/s, latency, CPU/msg"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"jobs": 5000, "seconds": 3, "warmup": 500, "engine_pairs": 5000}
URL = os.environ.get("ENTROPY_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
ZONE = "bench"
TARGET_RATE = 3000.0  # phase 2, with the engine as producer
TARGET_P99_MS = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--workers", default="1,2", help="worker process counts (default: 1,2)")
    add("--max-workers", type=int, default=64, help="of each worker (default: %(default)s)")
    add("--jobs", type=int, default=20_000, help="throughput run (default: %(default)s)")
    add("--window", type=int, default=2_000, help="in flight at most (default: %(default)s)")
    add("--rate", type=float, default=1000.0, help="latency run, jobs/s (default: %(default)s)")
    add("--seconds", type=float, default=10.0, help="latency run (default: %(default)s)")
    add("--warmup", type=int, default=1000, help="jobs first (default: %(default)s)")
    add("--url", default=URL, help="RabbitMQ (default: %(default)s)")
    add("--engine-pairs", type=int, default=20_000,
        help="engine throughput run: audits due at once (default: %(default)s; 0: no engine "
        "runs)")  # fmt: skip
    add(
        "--engine-workers",
        type=int,
        default=8,
        help="the engine's max_workers with the pool executor (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    params = {"workers": counts, "max_workers": args.max_workers, "jobs": args.jobs,
              "engine_pairs": args.engine_pairs, "engine_workers": args.engine_workers,
              "window": args.window, "rate": args.rate, "seconds": args.seconds,
              "warmup": args.warmup, "audit": "python bench.noop:noop",
              "broker": describe(args.url)}  # fmt: skip
    result: dict[str, Any] = {"scenario": "broker", "params": params, "environment": environment(),
                              "runs": [], "problems": []}  # fmt: skip
    try:
        for count in counts:
            one = _measure(args, count)
            result["problems"] += [f"{count} workers: {p}" for p in one.pop("problems")]
            result["runs"].append(one)
        result["engine"] = _engine_runs(args, counts) if args.engine_pairs else []
    except (BrokerError, *CONNECTION_ERRORS) as exc:
        result.update(skipped=f"RabbitMQ at {describe(args.url)}: {exc}", ok=True, targets={},
                      targets_met=None)  # fmt: skip
        return result
    for run in result["engine"]:
        result["problems"] += [f"engine, {run['executor']}: {p}" for p in run.pop("problems")]
    result["ok"] = not result["problems"]
    result["reference"] = {
        "audits_per_s": {"min": TARGET_RATE, "got": max(r["audits_per_s"] for r in result["runs"])},
        "p99_added_ms": {"max": TARGET_P99_MS,
                         "got": min(r["latency"]["p99_added_ms"] for r in result["runs"])},
    }  # fmt: skip
    result["targets"] = {}
    brokered = [r for r in result["engine"] if r["workers"]]
    if brokered:  # issue 17: the engine's round trip through RabbitMQ
        best = max(r["audits_per_s"] for r in brokered)
        p99 = min(r["added_ms"]["p99_ms"] for r in brokered)
        result["targets"] = {
            "audits_per_s": {"min": TARGET_RATE, "got": best, "met": best >= TARGET_RATE},
            "p99_added_ms": {"max": TARGET_P99_MS, "got": p99, "met": p99 <= TARGET_P99_MS},
        }
    met = [t["met"] for t in result["targets"].values()]
    result["targets_met"] = all(met) if met else None
    return result


def _engine_runs(args: argparse.Namespace, counts: list[int]) -> list[dict[str, Any]]:
    """The real engine with the pool, then with the broker and 1, 2 workers."""
    runs = []
    for workers in (0, *counts):
        topology = Topology(f"bench{uuid.uuid4().hex[:8]}")
        procs: list[subprocess.Popen] = []
        problems: list[str] = []
        try:
            path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
            env = {**os.environ, "OS_EXECUTOR__TRANSPORT_URL": args.url,
                   "OS_EXECUTOR__PREFIX": topology.prefix, "PYTHONPATH": path}  # fmt: skip
            procs = [_start_worker(env, args.max_workers, "default") for _ in range(workers)]
            broker = (args.url, topology.prefix) if workers else None
            before = _cpu(procs)
            burst = _engine_run(args, args.engine_pairs, 1, broker)
            after = _cpu(procs)
            steady = _engine_run(args, int(args.rate * args.seconds), max(1, int(args.seconds)),
                                 broker)  # fmt: skip
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if workers:
                _delete(args.url, topology, "bench-engine", "default")
        for name, one in (("throughput", burst), ("latency", steady)):
            if one["problem"]:
                problems.append(f"{name}: {one['problem']}")
        pairs = args.engine_pairs
        runs.append({
            "executor": f"broker, {workers} worker{'s' if workers > 1 else ''}" if workers
            else f"pool of {args.engine_workers}",
            "workers": workers,
            "audits_per_s": burst["audits_per_s"],
            "cpu_us_per_audit": {
                "engine": round(burst["cpu_s"] / pairs * 1e6, 1),
                "workers": round((after["workers"] - before["workers"]) / pairs * 1e6, 1),
                "rabbitmq": round((after["rabbitmq"] - before["rabbitmq"]) / pairs * 1e6, 1),
            },
            # At a steady rate claims are small: the engine's cost per audit is not the burst's.
            "steady_engine_cpu_us": round(steady["cpu_s"] / max(steady["recorded"], 1) * 1e6, 1),
            "lateness_ms": steady["lateness"],
            "added_ms": steady["added_ms"],
            "problems": problems,
        })  # fmt: skip
    return runs


def _engine_run(
    args: argparse.Namespace, pairs: int, splay: int, broker: tuple[str, str] | None
) -> dict[str, Any]:
    """One engine run in a fresh process: `pairs` no-op audits due over `splay` seconds."""
    with tempfile.TemporaryDirectory(prefix="entropy-bench-broker-") as tmp:
        fleet = write_fleet("dir", Path(tmp), hosts_for(pairs, 10), 10, intervals=("1day",))
        state = sqlite_url(Path(tmp) / "state.sqlite")
        prep = in_fresh_process(prepare_state, fleet, state, splay, None)
        return in_fresh_process(measure_engine, fleet, state, prep["first_due"], pairs,
                                args.engine_workers, 15.0, None, True, broker,
                                splay)  # fmt: skip


class _Producer:
    """JobClient plus the bookkeeping of what came back, and when."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []  # seconds, publish -> received, minus the run
        self.seen: set[str] = set()
        self.duplicates = 0
        self.received = 0
        self.last_at = 0.0
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.expect = 0
        self.client = JobClient(url, f"bench-{os.getpid()}", self._result, topology=topology)
        host = Host("node-0001.bench.example", "127.0.0.1", "fleet", zone=ZONE)
        self._job = Job("noop", host, Script("noop", "python", {"function": "bench.noop:noop"}),
                        {}, 10.0)  # fmt: skip

    def jobs(self, count: int) -> list[JobMessage]:
        claim = Claim(self.client.engine_id, 1)
        return [JobMessage(uuid.uuid4().hex, self._job, claim, n) for n in range(count)]

    def send(self, jobs: list[JobMessage]) -> None:
        now = time.perf_counter()
        for job in jobs:
            self.sent[job.job_id] = now
        self.client.publish(jobs)

    def _result(self, reply: ResultMessage) -> None:
        now = time.perf_counter()
        with self._lock:
            if reply.job_id in self.seen:
                self.duplicates += 1
                return
            self.seen.add(reply.job_id)
            run = reply.result.duration
            self.latencies.append(now - self.sent[reply.job_id] - run)
            self.received += 1
            self.last_at = now
            if self.received >= self.expect:
                self.done.set()

    def reset(self, expect: int) -> None:
        with self._lock:
            self.latencies, self.received, self.expect = [], 0, expect
            self.done.clear()


def _measure(args: argparse.Namespace, count: int) -> dict[str, Any]:
    topology = Topology(f"bench{uuid.uuid4().hex[:8]}")
    producer = _Producer(args.url, topology)
    producer.client.start()
    workers: list[subprocess.Popen] = []
    problems: list[str] = []
    try:
        path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "OS_EXECUTOR__TRANSPORT_URL": args.url,
               "OS_EXECUTOR__PREFIX": topology.prefix, "PYTHONPATH": path}  # fmt: skip
        for _ in range(count):
            workers.append(_start_worker(env, args.max_workers))
        _burst(producer, args.warmup, args.window)  # connections, caches, queue warm
        gc.freeze()  # the bench's own start-up; its collections are not the broker path's
        # Latency first, on a quiet pipeline: after the burst RabbitMQ is still writing
        # the quorum queues' log out to segments for a while.
        latency = _steady(producer, args.rate, args.seconds)
        if latency.pop("missing"):
            problems.append(f"latency: {latency['missing_count']} results missing")
        cpu_before = _cpu(workers)
        started = time.perf_counter()
        if not _burst(producer, args.jobs, args.window):
            problems.append(f"throughput: {producer.received} of {args.jobs} results")
        span = producer.last_at - started
        cpu = {k: (v - cpu_before[k]) / args.jobs * 1e6 for k, v in _cpu(workers).items()}
        if producer.duplicates:
            problems.append(f"{producer.duplicates} results came twice")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        producer.client.close()
        _delete(args.url, topology, producer.client.engine_id)
    return {
        "workers": count,
        "audits_per_s": args.jobs / span,
        "cpu_us_per_job": {k: round(v, 1) for k, v in cpu.items()},
        "latency": latency,
        "problems": problems,
    }


def _start_worker(env: dict[str, str], max_workers: int, zone: str = ZONE) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "entropy", "worker", "run", "--quiet", "--zone", zone,
         "--max-workers", str(max_workers)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stderr:  # type: ignore[union-attr]
        if "takes zone" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
            return proc
    raise BrokerError(f"the worker did not start (exit status {proc.wait()})")


def _burst(producer: _Producer, count: int, window: int) -> bool:
    """Publish count jobs, at most `window` unanswered at a time; True if all came back."""
    producer.reset(count)
    jobs = producer.jobs(count)
    sent = 0
    while sent < count:
        room = window - (sent - producer.received)
        if room >= min(100, count - sent):
            batch = jobs[sent : sent + min(room, 500)]
            producer.send(batch)
            sent += len(batch)
        else:
            time.sleep(0.001)
    return producer.done.wait(120)


def _steady(producer: _Producer, rate: float, seconds: float) -> dict[str, Any]:
    """Offer `rate` jobs/s for `seconds`, in 5 ms ticks; the added latency of each."""
    total = int(rate * seconds)
    producer.reset(total)
    jobs = producer.jobs(total)
    start, sent, tick = time.perf_counter(), 0, 0.005
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        if due > sent:
            producer.send(jobs[sent:due])
            sent = due
        time.sleep(tick)
    published_in = time.perf_counter() - start
    complete = producer.done.wait(60)
    ms = sorted(v * 1000 for v in producer.latencies)
    return {
        "offered_per_s": rate,
        "published_per_s": total / published_in,
        "p50_added_ms": percentile(ms, 50),
        "p99_added_ms": percentile(ms, 99),
        "max_added_ms": ms[-1] if ms else float("nan"),
        "missing": not complete,
        "missing_count": total - producer.received,
    }


def _cpu(workers: list[subprocess.Popen]) -> dict[str, float]:
    """CPU seconds so far: the workers (summed), RabbitMQ's beam.smp, and this process."""
    beam = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True).stdout
    return {
        "workers": sum(process_cpu_seconds(w.pid) for w in workers),
        "rabbitmq": sum(process_cpu_seconds(int(pid)) for pid in beam.split()),
        "producer": time.process_time(),
    }


def _delete(url: str, topology: Topology, engine_id: str, zone: str = ZONE) -> None:
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        for queue in (topology.zone_queue(zone), topology.results_queue(engine_id)):
            channel.queue_delete(queue)
        for name in (topology.jobs_exchange, topology.dead_exchange, topology.workers_exchange,
                     topology.ping_exchange):  # fmt: skip
            channel.exchange_delete(name)


ENGINE_HEADER = ["executor", "audits/s", "CPU us/audit: engine", "workers", "RabbitMQ",
                 "engine at rate", "late p50 ms", "late p99 ms", "added p50 ms",
                 "added p99 ms"]  # fmt: skip


def _engine_row(r: dict[str, Any]) -> list[str]:
    cpu, late, added = r["cpu_us_per_audit"], r["lateness_ms"], r["added_ms"]
    return [
        r["executor"], f"{r['audits_per_s']:,.0f}", f"{cpu['engine']:,.0f}",
        f"{cpu['workers']:,.0f}" if r["workers"] else "-",
        f"{cpu['rabbitmq']:,.0f}" if r["workers"] else "-",
        f"{r['steady_engine_cpu_us']:,.0f}", f"{late['p50_ms']:.1f}", f"{late['p99_ms']:.1f}",
        f"{added['p50_ms']:.1f}" if added else "-", f"{added['p99_ms']:.1f}" if added else "-",
    ]  # fmt: skip


HEADER = ["workers", "audits/s", "CPU us/job: workers", "RabbitMQ", "producer",
          "p50 added ms", "p99 added ms", "max ms", "kept up"]  # fmt: skip


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    head = (f"broker: no-op jobs through {p['broker']}, `entropy worker run --max-workers "
            f"{p['max_workers']}`; {p['jobs']:,} jobs (<= {p['window']:,} in flight), then "
            f"{p['rate']:,.0f}/s for {p['seconds']:g} s")  # fmt: skip
    if result.get("skipped"):
        return f"{head}\nSKIPPED: {result['skipped']}"
    rows = []
    for r in result["runs"]:
        cpu, lat = r["cpu_us_per_job"], r["latency"]
        kept = lat["published_per_s"] >= 0.95 * lat["offered_per_s"] and not lat["missing_count"]
        rows.append([
            str(r["workers"]), f"{r['audits_per_s']:,.0f}", f"{cpu['workers']:,.0f}",
            f"{cpu['rabbitmq']:,.0f}", f"{cpu['producer']:,.0f}", f"{lat['p50_added_ms']:.1f}",
            f"{lat['p99_added_ms']:.1f}", f"{lat['max_added_ms']:.1f}", "yes" if kept else "no",
        ])  # fmt: skip
    ref = result["reference"]
    lines = [
        head,
        f"python {result['environment']['python']}, {result['environment']['cpus']} CPUs, "
        f"commit {result['environment']['git']}",
        "",
        table(HEADER, rows),
        "",
        f"raw round trip (JobClient, no engine): best {ref['audits_per_s']['got']:,.0f} "
        f"audits/s; p99 added {ref['p99_added_ms']['got']:.1f} ms at {p['rate']:,.0f}/s",
    ]
    if result.get("engine"):
        lines += ["", f"the real engine (SQLite state): {p['engine_pairs']:,} audits due at "
                  f"once, then {p['rate']:,.0f}/s for {p['seconds']:g} s", "",
                  table(ENGINE_HEADER, [_engine_row(r) for r in result["engine"]])]  # fmt: skip
        for name, target in result["targets"].items():
            lines.append(f"target {name}: {target} -> {verdict(target['met'])}")
    lines += [f"WRONG: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
