"""`entropy api serve` under requests: GET /v1/audits?host=H, GET /metrics, the overview page.

A fleet of --pairs pairs (hosts x --audits) is synced into a fresh state
store (PostgreSQL by default, --store sqlite for a file) and every row is
given a latest result and one history entry (90% ok, 6% warning, 4%
critical), so /metrics exports a full scrape. A real `entropy api serve`
process serves it; --clients threads (keep-alive HTTP/1.1, one connection
each) then send, one endpoint at a time:

  host query   GET /v1/audits?host=H, H a random host (its --audits rows)
  metrics      GET /metrics, the full scrape (2 samples per pair)
  overview     GET /, the dashboard's overview page

Each endpoint reports requests/s over its phase, the p50 and p99 latency
as the client sees it, and the server process's CPU per request (which
moves less than wall time on a shared machine; the database's is not in
it). Targets at 100,000 pairs: p99 <= 50 ms for the host query, <= 1 s for
a full /metrics scrape.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from entropy.backends.syncplan import latest_of
from entropy.model import Outcome, Result, Status
from entropy.service.tokens import TokenFile

from ..common import (
    Spread,
    Unreachable,
    context_line,
    environment,
    hosts_for,
    in_fresh_process,
    open_backend,
    percentile,
    postgresql_state,
    process_cpu_seconds,
    sqlite_url,
    table,
    verdict,
)
from ..fleet import Fleet, host_name, write_fleet

SUMMARY = "the HTTP API at 100,000 pairs: host query, /metrics scrape, overview page (p99, req/s)"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"pairs": 5_000, "requests": 50, "scrapes": 3, "pages": 3, "runs": 1}
ENDPOINTS = ("host query", "metrics", "overview")
TARGET_PAIRS = 100_000
TARGETS_P99_S = {"host query": 0.050, "metrics": 1.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs (default: %(default)s)")
    parser.add_argument("--audits", type=int, default=10, help="audits per host (default: 10)")
    parser.add_argument("--requests", type=int, default=500,
                        help="host queries per run (default: %(default)s)")  # fmt: skip
    parser.add_argument("--scrapes", type=int, default=20,
                        help="/metrics scrapes per run (default: %(default)s)")  # fmt: skip
    parser.add_argument("--pages", type=int, default=20,
                        help="overview pages per run (default: %(default)s)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=1,
                        help="client threads sending at once (default: %(default)s)")  # fmt: skip
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--runs", type=int, default=1, help="runs (default: %(default)s)")
    parser.add_argument("--tmpdir", metavar="DIR", help="where the fleets go (default: system)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if min(args.runs, args.requests, args.scrapes, args.pages, args.clients) < 1:
        raise SystemExit("--runs, --requests, --scrapes, --pages and --clients must be >= 1")
    hosts = hosts_for(args.pairs, args.audits)
    params = {"pairs": args.pairs, "hosts": hosts, "audits": args.audits,
              "requests": args.requests, "scrapes": args.scrapes, "pages": args.pages,
              "clients": args.clients,
              "store": args.store, "runs": args.runs}  # fmt: skip
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="entropy-bench-api-", dir=args.tmpdir) as tmp:
            try:
                with _state(args.store, Path(tmp)) as state_url:
                    one = _one_run(Path(tmp), state_url, hosts, args)
            except Unreachable as exc:
                return {"scenario": "api", "params": params, "environment": environment(),
                        "skipped": str(exc), "ok": True, "targets": {},
                        "targets_met": None}  # fmt: skip
        one["run"] = number
        problems += [f"run {number}: {p}" for p in one.pop("problems")]
        runs.append(one)
    summary = {
        name: {key: Spread.of([r[name][key] for r in runs]).as_dict()
               for key in ("per_s", "p50_ms", "p99_ms", "cpu_ms")}
        for name in ENDPOINTS
    }  # fmt: skip
    targets = {}
    if args.pairs == TARGET_PAIRS:
        for name, limit in TARGETS_P99_S.items():
            got = summary[name]["p99_ms"]["median"] / 1000
            targets[f"{name} p99"] = {"median_s": got, "limit_s": limit, "met": got <= limit}
    return {
        "scenario": "api",
        "params": params,
        "environment": environment(),
        "runs": runs,
        "summary": summary,
        "problems": problems,
        "ok": not problems,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets.values()) if targets else None,
    }


@contextlib.contextmanager
def _state(store: str, tmp: Path) -> Iterator[str]:
    if store == "sqlite":
        yield sqlite_url(tmp / "state.sqlite")
        return
    with postgresql_state() as url:
        yield url


def _one_run(tmp: Path, state_url: str, hosts: int, args: argparse.Namespace) -> dict[str, Any]:
    fleet = write_fleet("dir", tmp / "fleet", hosts, args.audits)
    setup_s = in_fresh_process(fill_store, fleet, state_url)
    tokens = TokenFile(tmp / "tokens.json")
    token = tokens.add("bench", "reader", datetime.now(UTC))
    with _server(fleet, state_url, tokens.path, tmp / "api.log") as (base, pid):
        headers = {"Authorization": f"Bearer {token}"}
        rng = random.Random(1)
        names = [host_name(rng.randint(1, hosts)) for _ in range(args.requests)]
        found: dict[str, Any] = {"setup_s": setup_s}
        problems: list[str] = []

        def host_query(http: httpx.Client, n: int) -> None:
            got = http.get("/v1/audits", params={"host": names[n], "limit": 1000})
            if got.status_code != 200 or len(got.json()["items"]) != args.audits:
                problems.append(f"host query {names[n]}: {got.status_code} {got.text[:200]}")

        def scrape(http: httpx.Client, _n: int) -> None:
            got = http.get("/metrics")
            samples = got.text.count("\nentropy_audit_outcome{")
            if got.status_code != 200 or samples != args.pairs:
                problems.append(f"/metrics: {got.status_code}, {samples} outcome samples")

        def overview(http: httpx.Client, _n: int) -> None:
            got = http.get("/")
            if got.status_code != 200 or "Failing audits" not in got.text:
                problems.append(f"overview: {got.status_code} {got.text[:200]}")

        for name, call, count in (("host query", host_query, args.requests),
                                  ("metrics", scrape, args.scrapes),
                                  ("overview", overview, args.pages)):  # fmt: skip
            found[name] = _measure(base, headers, call, count, args.clients, pid)
        found["problems"] = sorted(set(problems))[:10]
    return found


def fill_store(fleet: Fleet, state_url: str) -> float:
    """Sync the fleet, then give every row a latest result and one history entry."""
    started = time.perf_counter()
    backend = open_backend(fleet, state_url)
    try:
        now = datetime.now(UTC)
        backend.sync(backend.load(), now)
        dump = backend.state.export_rows()
        rng = random.Random(7)
        for row in dump.rows:
            pick = rng.random()
            outcome = Outcome.OK if pick < 0.9 else (
                Outcome.WARNING if pick < 0.96 else Outcome.CRITICAL)  # fmt: skip
            ended = now - timedelta(seconds=rng.uniform(0, 1500))
            result = Result(outcome, f"{outcome.value} (bench)", started_at=ended,
                            finished_at=ended, slot=ended, engine_id="bench",
                            audit_name=row.audit_name, host=row.host)  # fmt: skip
            row.result, row.status = latest_of(result), Status.PROCESSED
            dump.results.append(result)
        backend.state.import_rows(dump)
    finally:
        backend.close()
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(fleet: Fleet, state_url: str, tokens: Path, log: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
           f"OS_{fleet.backend.upper()}__STATE_CONNECTION": state_url,
           "OS_API__TOKENS_FILE": str(tokens)}  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "entropy", "--backend", fleet.url, "api", "serve",
             "--bind", f"127.0.0.1:{port}"], stdout=out, stderr=out, env=env,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"entropy api serve exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/openapi.json", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("entropy api serve did not answer within 120 s")
            time.sleep(0.2)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def _measure(base: str, headers: dict[str, str], call: Any, count: int, clients: int,
             pid: int) -> dict[str, float]:  # fmt: skip
    """`count` calls shared by `clients` threads, after one warm-up call each; the server's
    CPU per request (process `pid`; the database's is not counted)."""
    latencies: list[float] = []
    lock = threading.Lock()
    numbers = iter(range(count))

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            call(http, 0)  # warm-up: the connection, the first load of the definitions
            barrier.wait()
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                started = time.perf_counter()
                call(http, n)
                with lock:
                    latencies.append(time.perf_counter() - started)

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started, cpu = time.perf_counter(), process_cpu_seconds(pid)
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - started, process_cpu_seconds(pid) - cpu
    return {"per_s": len(latencies) / elapsed, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "cpu_ms": cpu / max(len(latencies), 1) * 1000}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    head = (f"api: {p['pairs']:,} pairs ({p['hosts']:,} hosts x {p['audits']} audits), "
            f"{p['store']} state, {p['clients']} client(s), {p['runs']} run(s); "
            "medians")  # fmt: skip
    if "skipped" in result:
        return f"{head}\nSKIPPED: {result['skipped']}"
    s = result["summary"]
    rows = []
    for name in ENDPOINTS:
        limit = TARGETS_P99_S.get(name)
        met = result["targets"].get(f"{name} p99", {}).get("met")
        rows.append([
            name, f"{s[name]['per_s']['median']:,.1f}", f"{s[name]['p50_ms']['median']:,.1f}",
            f"{s[name]['p99_ms']['median']:,.1f}", f"{s[name]['cpu_ms']['median']:,.1f}",
            f"<= {limit * 1000:,.0f}" if limit else "-", verdict(met) if limit else "-",
        ])  # fmt: skip
    lines = [head, context_line(result["environment"]), "",
             table(["endpoint", "req/s", "p50 ms", "p99 ms", "server CPU ms", "target p99 ms",
                    "verdict"], rows),
             f"\nsetup (sync + a result per row): "
             f"{result['runs'][0]['setup_s']:.1f} s"]  # fmt: skip
    lines += [f"WRONG: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
