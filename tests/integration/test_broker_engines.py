"""Real `entropy engine run` processes with `[executor] executor = broker`, real
`entropy worker run` processes, the real RabbitMQ and PostgreSQL (issue 17, phase 2).

Each test has a prefix of its own on the shared RabbitMQ (tests/brokers.py)
and a PostgreSQL schema of its own. The python audits, run on the workers,
note each run in a file (host, and the zone of the worker that ran it) and
say that zone in their summary, so the stored results show where each ran.
They poll for what they wait for; no fixed sleeps for schedules.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_engines_shared import (
    Cluster,
    assert_every_slot_ran_once,
    per_slot,
    wait_for,
)

from brokers import Broker, WorkerProcess
from fleets import write_fleet
from processes import ENTROPY

# Each test runs engines and workers as real processes together: the serial phase's.
pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.multiprocess]

SECONDS = float(os.environ.get("ENTROPY_TEST_SHARED_SECONDS", "30"))
AUDITS = (
    "import os, time\n"
    "def _note(host):\n"
    "    with open(os.environ['RUNS_FILE'], 'a') as f:\n"
    "        f.write(host.name + ' ' + os.environ['WORKER_ZONE'] + '\\n')\n"
    "    return ('ok', 'zone=' + os.environ['WORKER_ZONE'])\n"
    "def fine(host, params):\n    return _note(host)\n"
    "def slow(host, params):\n    time.sleep(float(params.get('seconds', 5)))\n"
    "    return _note(host)\n"
    "def _marker(host):\n"
    "    return os.path.join(os.path.dirname(os.environ['RUNS_FILE']), 'marker.' + host.name)\n"
    "def marker(host, params):\n"
    "    _note(host)\n"
    "    there = os.path.exists(_marker(host))\n"
    "    return ('ok' if there else 'critical', 'zone=' + os.environ['WORKER_ZONE'])\n"
    "def remake(host, params):\n"
    "    with open(_marker(host), 'w') as f:\n"
    "        f.write(os.environ['WORKER_ZONE'])\n"
)


def hosts(zones: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {f"web-{n}.{zone}.test": {"ip_address": "127.0.0.1", "host_type": "web",
                                     "zone": zone}
            for zone, count in zones.items() for n in range(count)}  # fmt: skip


class BrokerCluster(Cluster):
    """Engines of Cluster with executor = broker on a Broker's prefix, and workers."""

    def __init__(self, tmp: Path, state_url: str, broker: Broker, **options: str) -> None:
        super().__init__(tmp, state_url, **options)
        (tmp / "shared_mod.py").write_text(AUDITS)
        self.broker = broker
        self.env.update({"OS_EXECUTOR__EXECUTOR": "broker",
                         "OS_EXECUTOR__TRANSPORT_URL": broker.url,
                         "OS_EXECUTOR__PREFIX": broker.topology.prefix,
                         "OS_EXECUTOR__HEARTBEAT_INTERVAL": "1"})  # fmt: skip
        self.workers: list[WorkerProcess] = []

    def write_zones(self, zones: dict[str, int], scripts: dict, schedules: dict) -> None:
        self.fleet = write_fleet("dir", self.tmp / "fleet", hosts=hosts(zones), scripts=scripts,
                                 schedules=schedules)  # fmt: skip

    def start(self, count: int) -> None:
        super().start(count)
        self.broker.engines.update(self.engines)

    def restart(self, name: str) -> None:
        """Start engine `name` again (its log goes on in the same file)."""
        out = open(self.tmp / f"{name}.out", "a")  # noqa: SIM115 - the child keeps it
        err = open(self.tmp / f"{name}.err", "a")  # noqa: SIM115
        self.engines[name] = subprocess.Popen(
            [*ENTROPY, "--backend", f"dir:{self.fleet}", "engine", "run", "--json"],
            stdout=out, stderr=err, env={**self.env, "OS_DEFAULT__ENGINE_ID": name},
        )  # fmt: skip
        wait_for(lambda: name in self.live(), 30, f"{name} to register again")

    def worker(self, zone: str, max_workers: int = 8) -> WorkerProcess:
        env = self.broker.env(PYTHONPATH=self.env["PYTHONPATH"], RUNS_FILE=str(self.runs),
                              WORKER_ZONE=zone)  # fmt: skip
        made = self.broker.process(zone, "--max-workers", str(max_workers), env=env)
        self.workers.append(made)
        return made

    def ran(self) -> list[tuple[str, str]]:
        """(host, worker's zone) of every run the python audits finished."""
        if not self.runs.exists():
            return []
        return [tuple(line.split()) for line in self.runs.read_text().splitlines()]  # type: ignore[misc]

    def kill_everything(self) -> None:
        super().kill_everything()
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    made = Broker(rabbitmq_url)
    yield made
    made.cleanup()


@pytest.fixture
def cluster(tmp_path: Path, postgresql_url: str, broker: Broker) -> Iterator[BrokerCluster]:
    made = BrokerCluster(tmp_path, postgresql_url, broker)
    yield made
    made.kill_everything()


FAST = {"scripts": {"a": {"kind": "python", "function": "shared_mod:fine"},
                    "b": {"kind": "python", "function": "shared_mod:fine"},
                    "c": {"kind": "command", "command": ["true"]}},
        "schedules": {"s.yaml": {"web": {"audits": {"a": {"run_every": "2s"},
                                                    "b": {"run_every": "2s"},
                                                    "c": {"run_every": "2s"}}}}}}  # fmt: skip
SLOW = {"scripts": {"slow": {"kind": "python", "function": "shared_mod:slow", "timeout": "30s"}},
        "schedules": {"s.yaml": {"web": {"audits": {"slow": {"run_every": "1h"}}}}}}  # fmt: skip


@pytest.mark.multiprocess
def test_two_engines_and_three_workers_run_every_slot_exactly_once(
    cluster: BrokerCluster,
) -> None:
    cluster.write_zones({"default": 10}, **FAST)
    for _ in range(3):
        cluster.worker("default")
    cluster.start(2)
    started, stop_asked = cluster.run_then_stop(SECONDS)

    history = cluster.history()
    assert_every_slot_ran_once(history, started, stop_asked)
    assert set(Counter(r.engine_id for r in history)) == {"engine-1", "engine-2"}
    python = [r for r in history if r.audit_name != "c"]
    assert {r.summary for r in python} == {"zone=default"}, Counter(r.summary for r in python)
    assert len(cluster.ran()) == len(python)  # every run on a worker stored once
    assert all(r.status.value != "processing" for r in cluster.rows())
    assert all("fenced out" not in cluster.stderr(name) for name in cluster.engines)
    replies = [json.loads(line) for w in cluster.workers for line in w.stop()[1].splitlines()]
    assert len(replies) == len(history)  # every job went through a worker, once
    assert {r["zone"] for r in replies} == {"default"}


def test_jobs_run_only_on_workers_of_their_hosts_zone(cluster: BrokerCluster) -> None:
    cluster.write_zones({"a": 3, "b": 3}, **FAST)
    a, b = cluster.worker("a"), cluster.worker("b")
    cluster.start(1)
    wait_for(lambda: len({h for h, _ in cluster.ran()}) == 6 and len(cluster.ran()) >= 36, 60,
             "every python audit of both zones to run a few times")  # fmt: skip
    cluster.stop_all()

    assert cluster.ran() and all(host.split(".")[1] == zone for host, zone in cluster.ran())
    history = cluster.history()
    for r in history:
        if r.audit_name != "c":
            assert r.summary == f"zone={r.host.split('.')[1]}", r
    for worker, zone in ((a, "a"), (b, "b")):
        replies = [json.loads(line) for line in worker.stop()[1].splitlines()]
        assert replies and {r["zone"] for r in replies} == {zone}
        assert {r["host"].split(".")[1] for r in replies} == {zone}
    assert {key: n for key, n in per_slot(history).items() if n > 1} == {}


def test_a_zone_without_a_worker_waits_and_is_not_run_elsewhere(cluster: BrokerCluster) -> None:
    cluster.write_zones({"a": 2, "c": 2}, **FAST)
    cluster.worker("a")
    cluster.start(1)
    wait_for(lambda: "zone c has no live worker" in cluster.stderr("engine-1"), 30,
             "the engine's warning about zone c")  # fmt: skip
    status = cluster.cli("status", check=False)
    assert "zone c: no live worker" in status.stdout, status.stdout + status.stderr
    assert "zone a" not in status.stdout
    workers = cluster.cli("workers", "--json", check=False)
    zones = {z["zone"]: z for z in json.loads(workers.stdout)["zones"]}
    assert zones["c"]["workers"] == 0 and zones["c"]["waiting"] > 0, zones
    assert zones["a"]["workers"] == 1
    assert "zone 'c' has no live worker" in workers.stderr and workers.returncode == 1
    ran_before = cluster.ran()
    assert ran_before and {host.split(".")[1] for host, _ in ran_before} == {"a"}
    assert all(r.host.split(".")[1] == "a" for r in cluster.history())
    held = [r for r in cluster.rows() if r.host.endswith(".c.test")]
    assert held and all(r.status.value == "processing" for r in held)  # waiting, leases renewed

    cluster.worker("c")  # a worker comes: zone c's audits run, there
    wait_for(lambda: any(zone == "c" for _, zone in cluster.ran()), 30, "zone c's audits")
    wait_for(lambda: "zone c has a worker again" in cluster.stderr("engine-1"), 30,
             "the engine noticing zone c's worker")  # fmt: skip
    cluster.stop_all()
    assert all(host.split(".")[1] == zone for host, zone in cluster.ran())
    assert {key: n for key, n in per_slot(cluster.history()).items() if n > 1} == {}


def test_a_worker_killed_mid_audit_has_its_job_rerun_once_and_recorded_once(
    cluster: BrokerCluster,
) -> None:
    cluster.write_zones({"default": 1}, scripts=SLOW["scripts"], schedules={"s.yaml": {"web": {
        "audits": {"slow": {"run_every": "1h", "params": {"seconds": 10}}}}}})  # fmt: skip
    # A lease (the jobs' TTL) longer than the audit: the job goes back to the queue
    # and out again, not dead of old age (then its engine would publish it anew).
    cluster.env["OS_DEFAULT__CLAIM_LEASE"] = "30"
    first = cluster.worker("default")
    cluster.start(1)
    wait_for(lambda: any(r.status.value == "processing" for r in cluster.rows()), 30,
             "the audit claimed")  # fmt: skip
    wait_for(lambda: _running_in(cluster, first), 30, "the audit running on the first worker")
    second = cluster.worker("default")
    first.proc.send_signal(signal.SIGKILL)  # mid-audit: its job is not acknowledged
    first.proc.wait()
    wait_for(lambda: len(cluster.history()) == 1, 30, "the audit's result")
    cluster.stop_all()

    (result,) = cluster.history()
    assert result.summary == "zone=default"
    assert cluster.ran() == [("web-0.default.test", "default")]  # the first run died with it
    (reply,) = [json.loads(line) for line in second.stop()[1].splitlines()]
    assert reply["redelivered"] is True and reply["job_id"]
    assert all(r.status.value != "processing" for r in cluster.rows())


def _running_in(cluster: BrokerCluster, worker: WorkerProcess) -> bool:
    """Whether the worker process has a job running, as its heartbeat says."""
    listed = json.loads(cluster.cli("workers", "--json", "--wait", "1").stdout)["workers"]
    return any(w["pid"] == worker.proc.pid and w["running"] for w in listed)


@pytest.mark.multiprocess
def test_an_engine_killed_with_jobs_on_workers_is_taken_over_and_its_late_results_fenced(
    cluster: BrokerCluster,
) -> None:
    """Engine-1 dies (kill -9) while its 5 s audits run on the workers. Engine-2 takes its
    rows back once its lease runs out and runs each slot again. The first runs still
    finish and reply to engine-1's queue; engine-1, started again with the same id before
    that queue expires, reads them and fences every one out (its log says so)."""
    cluster.write_zones({"default": 6}, **SLOW)
    cluster.worker("default", max_workers=16)
    cluster.start(1)  # engine-1 alone claims every row
    wait_for(lambda: sum(r.status.value == "processing" for r in cluster.rows()) == 6, 30,
             "engine-1 holding every audit")  # fmt: skip
    victim = cluster.engines["engine-1"]
    victim.send_signal(signal.SIGKILL)  # its jobs are on the worker, 5 s each
    victim.wait()
    cluster.killed.add("engine-1")
    killed_at = datetime.now(UTC)
    assert all(r.status.value == "processing" for r in cluster.rows())
    cluster.start(1)  # engine-2

    wait_for(lambda: all(r.claimed_by == "engine-2" or r.status.value == "processed"
                         for r in cluster.rows()), 20, "engine-2 taking the rows back")  # fmt: skip
    taken_at = datetime.now(UTC)
    # Engine-1 again, same id: its result queue (10 leases) still holds the first runs'.
    cluster.killed.discard("engine-1")
    cluster.restart("engine-1")
    wait_for(lambda: len(cluster.history()) == 6, 30, "engine-2's reruns recorded")
    wait_for(lambda: cluster.stderr("engine-1").count("fenced out a late result") == 6, 30,
             "engine-1 fencing out the first runs' results")  # fmt: skip
    cluster.stop_all()

    history = cluster.history()
    assert {r.engine_id for r in history} == {"engine-2"}
    assert {key: n for key, n in per_slot(history).items() if n > 1} == {}
    assert all((r.started_at - killed_at).total_seconds() >= 4 for r in history)  # the lease
    assert (taken_at - killed_at).total_seconds() < 15
    assert len(cluster.ran()) == 12  # each slot ran twice: the first run, the rerun
    assert "epoch" in cluster.stderr("engine-1")
    assert all(r.status.value != "processing" for r in cluster.rows())


@pytest.mark.disruptive
def test_engines_and_workers_ride_out_a_rabbitmq_restart(tmp_path: Path, postgresql_url: str,
                                                         broker: Broker) -> None:  # fmt: skip
    """RabbitMQ stopped for a few seconds (stop_app), then started: engines and workers
    reconnect; results recorded before and after; no slot twice, nothing stuck."""
    if not (shutil.which("rabbitmqctl") or os.path.exists("/usr/sbin/rabbitmqctl")):
        pytest.skip("rabbitmqctl is not here to stop and start RabbitMQ")
    cluster = BrokerCluster(tmp_path, postgresql_url, broker, claim_lease="10",
                            heartbeat_interval="1")  # fmt: skip
    try:
        cluster.write_zones({"default": 5}, **FAST)
        cluster.worker("default")
        cluster.worker("default")
        cluster.start(2)
        wait_for(lambda: len(cluster.history()) >= 45, 30, "results before the restart")
        _rabbitmqctl("stop_app")
        try:
            down_until = datetime.now(UTC) + timedelta(seconds=5)
            wait_for(lambda: datetime.now(UTC) >= down_until, 10, "the outage")
        finally:
            _rabbitmqctl("start_app")
        back = datetime.now(UTC)
        wait_for(lambda: sum(r.finished_at >= back for r in cluster.history()) >= 60, 90,
                 "results after the restart")  # fmt: skip
        cluster.assert_all_alive()
        assert all(w.proc.poll() is None for w in cluster.workers)
        cluster.stop_all()
        history = cluster.history()
        assert {key: n for key, n in per_slot(history).items() if n > 1} == {}
        after = {(r.audit_name, r.host) for r in history if r.finished_at >= back}
        assert len(after) == 15  # every pair runs again
        assert all(r.status.value != "processing" for r in cluster.rows())
        assert any("reconnecting" in cluster.stderr(name) for name in cluster.engines)
    finally:
        cluster.kill_everything()


def _rabbitmqctl(*args: str) -> None:
    """rabbitmqctl on the node of ENTROPY_TEST_RABBITMQ_NODE (say, a node of one's own
    beside the shared one, with ENTROPY_TEST_RABBITMQ pointing at it), else the default."""
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    node = os.environ.get("ENTROPY_TEST_RABBITMQ_NODE")
    subprocess.run([tool, *(("-n", node) if node else ()), *args], check=True,
                   capture_output=True, timeout=120)  # fmt: skip


def test_repairs_and_their_verifies_run_on_a_worker_of_the_hosts_zone(
    cluster: BrokerCluster, tmp_path: Path
) -> None:
    scripts = {
        "marker": {"kind": "python", "function": "shared_mod:marker"},
        "remake": {"kind": "python", "function": "shared_mod:remake"},
    }
    cluster.fleet = write_fleet(
        "dir", tmp_path / "fleet", hosts=hosts({"a": 2, "b": 2}), scripts=scripts,
        schedules={"s.yaml": {"web": {"audits": {"marker": {"run_every": "1h"}}}}},
        repairs={"fix": {"when": {"audit": "marker"}, "run": "remake", "verify": True}},
    )  # fmt: skip
    cluster.worker("a")
    cluster.worker("b")
    cluster.start(1)
    wait_for(lambda: len(list(tmp_path.glob("marker.*"))) == 4, 60, "every host repaired")
    wait_for(lambda: len(repair_runs(cluster)) == 4, 30, "the four repair runs recorded")
    cluster.stop_all()

    made = sorted(tmp_path.glob("marker.*"))
    for marker in made:  # marker.web-0.a.test says zone a: the repair ran there
        assert marker.read_text() == marker.name.split(".")[2], marker
    runs = repair_runs(cluster)
    assert len(runs) == 4, runs
    assert all(run["verify"] == "fixed" for run in runs), runs
    # Audit, then its verify: both on a worker of the host's zone.
    assert all(host.split(".")[1] == zone for host, zone in cluster.ran())
    assert len(cluster.ran()) == 8


def repair_runs(cluster: BrokerCluster) -> list[dict[str, Any]]:
    return json.loads(cluster.cli("results", "--kind", "repair", "--json").stdout)


def test_an_engine_whose_broker_is_out_of_reach_says_so_and_leaves_no_live_engine(
    tmp_path: Path,
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=hosts({"default": 1}),
                        scripts=FAST["scripts"], schedules=FAST["schedules"])  # fmt: skip
    env = {**os.environ, "OS_EXECUTOR__EXECUTOR": "broker",
           "OS_EXECUTOR__TRANSPORT_URL": "amqp://guest:secret@127.0.0.1:9//"}  # fmt: skip
    done = subprocess.run([*ENTROPY, "--backend", f"dir:{fleet}", "engine", "run", "--for", "5s"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "executor = broker: cannot reach amqp://guest:**@127.0.0.1:9//" in done.stderr
    assert "secret" not in done.stderr
    listed = subprocess.run([*ENTROPY, "--backend", f"dir:{fleet}", "engines", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert [e["state"] for e in json.loads(listed.stdout)] == ["stopped"]
