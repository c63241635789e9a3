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
import threading
import time
import uuid
from typing import Any

import kombu

from entropy.broker.client import JobClient
from entropy.broker.connection import CONNECTION_ERRORS, BrokerError, describe
from entropy.broker.protocol import Claim, JobMessage, ResultMessage
from entropy.broker.topology import Topology
from entropy.model import Host, Script
from entropy.runners.base import Job

from ..common import REPO, environment, percentile, process_cpu_seconds, table

SUMMARY = "no-op jobs through RabbitMQ and 1, 2 `entropy worker run`: audits/s, latency, CPU/msg"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"jobs": 5000, "seconds": 3, "warmup": 500}
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    params = {"workers": counts, "max_workers": args.max_workers, "jobs": args.jobs,
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
    except (BrokerError, *CONNECTION_ERRORS) as exc:
        result.update(skipped=f"RabbitMQ at {describe(args.url)}: {exc}", ok=True, targets={},
                      targets_met=None)  # fmt: skip
        return result
    result["ok"] = not result["problems"]
    result["reference"] = {
        "audits_per_s": {"min": TARGET_RATE, "got": max(r["audits_per_s"] for r in result["runs"])},
        "p99_added_ms": {"max": TARGET_P99_MS,
                         "got": min(r["latency"]["p99_added_ms"] for r in result["runs"])},
    }  # fmt: skip
    result["targets"] = {}
    result["targets_met"] = None  # phase 2 judges the engine's round trip, not this
    return result


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


def _start_worker(env: dict[str, str], max_workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "entropy", "worker", "run", "--quiet", "--zone", ZONE,
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


def _delete(url: str, topology: Topology, engine_id: str) -> None:
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        for queue in (topology.zone_queue(ZONE), topology.results_queue(engine_id)):
            channel.queue_delete(queue)
        for name in (topology.jobs_exchange, topology.dead_exchange, topology.workers_exchange,
                     topology.ping_exchange):  # fmt: skip
            channel.exchange_delete(name)


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
        f"for phase 2 (the engine as producer, not judged here): >= {TARGET_RATE:,.0f} "
        f"audits/s (best here {ref['audits_per_s']['got']:,.0f}); p99 added <= "
        f"{TARGET_P99_MS:g} ms at 1,000/s (best here {ref['p99_added_ms']['got']:.1f} ms)",
    ]
    lines += [f"WRONG: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
