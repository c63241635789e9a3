"""A submitted failure's repair, with `[executor] executor = broker`, runs where an engine's
would: on a worker of the host's zone (issue 17 item 4), never in the submitting process.

Real `entropy result submit` processes, a real `entropy worker run` of zone `a`, the real
RabbitMQ (a prefix of the test's own, tests/brokers.py). The repair and the audit it
verifies are shell commands that say where they run: the zone from the worker's
environment (only the worker has WORKER_ZONE) and their parent's pid (the worker's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokers import Broker, a_job
from entropy.broker.connection import describe
from entropy.engine.broker_runs import OneOffRuns
from entropy.model import Outcome, Result
from fleets import write_fleet
from processes import entropy

pytestmark = pytest.mark.slow

HOST_A, HOST_B = "web-1.a.test", "web-1.b.test"


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    made = Broker(rabbitmq_url)
    yield made
    made.cleanup()


def make_fleet(tmp_path: Path) -> tuple[Path, Path]:
    """Hosts in zones a and b; audit `marked` is ok once the repair `fix` left its line."""
    marker = tmp_path / "repaired"
    fix = f'echo "${{WORKER_ZONE:-none}} $PPID" >> {marker}'
    check = (f'if [ -s {marker} ]; then echo "OK zone ${{WORKER_ZONE:-none}} pid $PPID"; '
             f'else echo "CRITICAL not repaired"; exit 2; fi')  # fmt: skip
    hosts = {name: {"ip_address": "127.0.0.1", "host_type": "web", "zone": zone}
             for name, zone in ((HOST_A, "a"), (HOST_B, "b"))}  # fmt: skip
    scripts = {
        "marked": {"kind": "command", "command": ["sh", "-c", check], "timeout": "1s"},
        "fix": {"kind": "command", "command": ["sh", "-c", fix], "timeout": "1s"},
    }
    schedules = {"web.yaml": {"web": {"audits": {"marked": {"run_every": "1h"}}}}}
    repairs = {"fix": {"when": {"audit": "marked", "outcome": ["critical"], "consecutive": 1},
                       "run": "fix", "verify": True}}  # fmt: skip
    root = write_fleet("dir", tmp_path / "fleet", hosts=hosts, scripts=scripts,
                       schedules=schedules, repairs=repairs)  # fmt: skip
    return root, marker


def submit(root: Path, host: str, env: dict[str, str]) -> dict[str, Any]:
    return entropy(root, "result", "submit", "marked", "--host", host, "--outcome", "critical",
                   "--summary", "broken", "--json", env=env)  # fmt: skip


def broker_mode(broker: Broker, **extra: str) -> dict[str, str]:
    """The submitter's environment: executor = broker, no WORKER_ZONE of its own."""
    env = broker.env(OS_EXECUTOR__EXECUTOR="broker", **extra)
    env.pop("WORKER_ZONE", None)
    return env


def test_a_submitted_repair_and_its_verify_run_on_a_worker_of_the_hosts_zone(
    broker: Broker, tmp_path: Path
) -> None:
    root, marker = make_fleet(tmp_path)
    worker = broker.process("a", env=broker.env(WORKER_ZONE="a"))
    try:
        done = submit(root, HOST_A, broker_mode(broker))
    finally:
        status, _, err = worker.stop()
    assert status == 0, err
    pid = worker.proc.pid
    assert marker.read_text() == f"a {pid}\n"  # the repair ran on the worker, once
    (repair,) = done["repairs"]
    assert (repair["repair_name"], repair["verdict"]) == ("fix", "ran"), repair
    run = repair["run"]
    assert (run["outcome"], run["attempt"], run["verify"]) == ("ok", 1, "fixed"), run
    assert run["verify_summary"] == f"OK zone a pid {pid}"  # the verify: there too
    assert "worker stopped; 2 jobs done" in err  # the repair and its verify
    (history,) = entropy(root, "results", "--kind", "repair", "--json")
    assert (history["repair_name"], history["host"], history["outcome"]) == ("fix", HOST_A, "ok")
    assert history["engine_id"].startswith("entropy result submit by ")
    verified, submitted = entropy(root, "results", "--host", HOST_A, "--audit", "marked",
                                  "--json")  # fmt: skip
    assert (submitted["outcome"], submitted["summary"]) == ("critical", "broken")
    assert (verified["outcome"], verified["summary"]) == ("ok", f"OK zone a pid {pid}")
    assert broker.waiting("a") == 0


def test_a_zone_without_a_live_worker_runs_the_repair_nowhere_and_says_so(
    broker: Broker, tmp_path: Path
) -> None:
    """Host of zone b, only a worker of zone a: nothing runs, here or there; the repair is
    recorded as not run, naming the zone, once its job waited a lease (1 s here)."""
    root, marker = make_fleet(tmp_path)
    broker.zones.add("b")
    worker = broker.process("a", env=broker.env(WORKER_ZONE="a"))
    env = broker_mode(broker, OS_DEFAULT__CLAIM_LEASE="1", OS_DEFAULT__HEARTBEAT_INTERVAL="0.3")
    try:
        began = time.monotonic()
        done = submit(root, HOST_B, env)
        took = time.monotonic() - began
    finally:
        status, _, err = worker.stop()
    assert status == 0, err
    assert not marker.exists()  # not run anywhere: not here, not on zone a's worker
    assert "worker stopped; 0 jobs done" in err
    (repair,) = done["repairs"]
    assert repair["verdict"] == "ran", repair
    run = repair["run"]
    why = "not taken by any worker of zone b within 1s (no live worker there?); not run"
    assert (run["outcome"], run["verify"]) == ("error", "not_fixed"), run
    assert run["summary"] == f"the job was {why}"
    assert run["verify_summary"] == f"the job was {why}"
    assert took < 15, took  # two jobs of a lease each, not their timeouts + margins
    (history,) = entropy(root, "results", "--kind", "repair", "--json")
    assert (history["host"], history["outcome"]) == (HOST_B, "error")
    assert broker.waiting("b") == 0  # dead, not waiting for a worker to run them later


def test_a_broker_out_of_reach_records_the_repair_as_not_run_naming_it(tmp_path: Path) -> None:
    root, marker = make_fleet(tmp_path)
    url = "amqp://guest:s3cret@127.0.0.1:9//"  # nothing listens on port 9
    env = {**broker_mode(Broker(url)), "OS_EXECUTOR__PREFIX": "unused"}
    (repair,) = submit(root, HOST_A, env)["repairs"]
    run = repair["run"]
    assert run["outcome"] == "error", run
    assert run["summary"].startswith(f"not run: cannot reach {describe(url)}: ")
    assert "s3cret" not in run["summary"] and "s3cret" not in str(run["verify_summary"])
    assert not marker.exists()


def test_two_submits_by_the_same_user_at_once_each_get_their_own_results(
    broker: Broker,
) -> None:
    """Each process has a result queue of its own, named after the submitter: on one queue
    shared by both, the broker would hand each half of the other's results."""
    who = "entropy result submit by ops@web 1"
    made = [OneOffRuns(broker.url, broker.topology, who, 5.0) for _ in range(2)]
    broker.engines.update(r.client_id for r in made)
    queues = {r.client.results_queue for r in made}
    assert len(queues) == 2
    assert all(q.startswith(f"{broker.topology.prefix}.results.entropy-result-submit-by-ops@web-1.")
               for q in queues)  # fmt: skip
    worker = broker.worker("z")
    got: dict[int, list[Result]] = {0: [], 1: []}

    def submitter(n: int) -> None:
        for i in range(4):
            job = a_job(f"fix{n}", "z", ["sh", "-c", f"sleep 0.1; echo OK {n}.{i}"]).job
            got[n].append(made[n].run(job))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in (0, 1)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for r in made:
            r.close()
        worker.stop()
    for n in (0, 1):
        assert [(r.outcome, r.summary) for r in got[n]] == [
            (Outcome.OK, f"OK {n}.{i}") for i in range(4)]  # fmt: skip
    closed = made[0].run(a_job("late", "z", ["true"]).job)  # after close: not run, says so
    assert (closed.outcome, closed.summary) == (
        Outcome.ERROR, "not run: its connection to the broker is closed")  # fmt: skip
