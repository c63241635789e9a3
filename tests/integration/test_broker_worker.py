"""Workers against the real RabbitMQ (127.0.0.1:5672), with a test "engine" as their peer.

The engine side is played by brokers.EngineStub (plain kombu, not the
JobClient under test elsewhere). Workers run in this process (Worker, on
threads) where that is enough, and as real `entropy worker run` processes
where a process must die, be stopped or be listed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokers import SLOT, Broker, EngineStub, a_job, marked, runs
from entropy.broker.connection import describe
from entropy.broker.protocol import Claim, JobMessage
from entropy.broker.topology import ENGINE_HEADER
from entropy.model import Outcome, Result
from processes import ENTROPY, wait_for

pytestmark = pytest.mark.slow


def hang(host: Any, params: Any) -> None:
    """A python audit that outlives its timeout (kind python cannot be killed)."""
    time.sleep(float(params.get("seconds", 3)))


TOGETHER = threading.Barrier(32)  # 2 engines x 16 jobs, on one worker of 32 threads


def together(host: Any, params: Any) -> Result:
    """A python audit that finishes at the same moment as 31 others."""
    TOGETHER.wait(timeout=30)
    return Result(Outcome.OK, "together")


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    b = Broker(rabbitmq_url)
    yield b
    b.cleanup()


@pytest.fixture
def engine(broker: Broker) -> Iterator[EngineStub]:
    stub = EngineStub(broker)
    yield stub
    stub.close()


# -- one worker, its replies ---------------------------------------------------------------


def test_a_worker_answers_each_job_with_its_outcome_and_its_identity(
    broker: Broker, engine: EngineStub
) -> None:
    say = {"ok": "echo 'OK - fine | load=0.5;1;2'", "critical": "echo CRITICAL - bad; exit 2",
           "unknown": "echo UNKNOWN - who; exit 3"}  # fmt: skip
    jobs = {name: a_job(name, "default", ["sh", "-c", text], row_id=n)
            for n, (name, text) in enumerate(say.items(), 1)}  # fmt: skip
    jobs["timeout"] = a_job("timeout", "default", ["sleep", "30"], timeout=0.5, row_id=4)
    running = broker.worker("default")
    try:
        for job in jobs.values():
            engine.send(job)
        replies = {r.audit: r for r in engine.wait(len(jobs))}
    finally:
        running.stop()
    got = {name: (r.result.outcome.value, r.result.summary) for name, r in replies.items()}
    assert got == {
        "ok": ("ok", "OK - fine"),
        "critical": ("critical", "CRITICAL - bad"),
        "unknown": ("unknown", "UNKNOWN - who"),
        "timeout": ("timeout", "timed out after 0.5s"),
    }
    assert replies["ok"].result.metrics["load"]["value"] == 0.5
    for name, reply in replies.items():
        job = jobs[name]
        assert (reply.job_id, reply.host, reply.row_id, reply.slot, reply.claim, reply.context) == (
            job.job_id,
            job.job.host.name,
            job.row_id,
            SLOT,
            Claim("engine-1", 7),
            job.context,
        )
        assert (reply.worker_id, reply.zone, reply.redelivered) == (
            running.worker.worker_id,
            "default",
            False,
        )
        assert reply.result.started_at <= reply.result.finished_at
    assert 0.5 <= replies["timeout"].result.duration < 5
    # Each job was acknowledged once its reply was in: none waits, none comes back.
    assert broker.waiting("default") == 0
    assert running.worker.done == 4


def test_results_ready_together_go_to_their_engines_together_each_to_its_own(
    broker: Broker, engine: EngineStub
) -> None:
    """Results for the same engine share a message (RabbitMQ's cost is per message); a
    message never mixes engines: each engine gets exactly its own results."""
    other = EngineStub(broker, "engine-2")
    TOGETHER.reset()
    running = broker.worker("default", max_workers=32)
    try:
        mine = [a_job(f"m{n}", "default", f"{__name__}:together", row_id=n, kind="python")
                for n in range(16)]  # fmt: skip
        theirs = [a_job(f"t{n}", "default", f"{__name__}:together", row_id=n, kind="python")
                  for n in range(16)]  # fmt: skip
        for a, b in zip(mine, theirs, strict=True):  # interleaved in the worker's queue
            engine.send(a)
            other.send(b)
        got_mine, got_theirs = engine.wait(16, timeout=30), other.wait(16, timeout=30)
        engine.idle(0.3)
        other.idle(0.3)
    finally:
        running.stop()
        other.close()
    assert sorted(r.job_id for r in got_mine) == sorted(j.job_id for j in mine)
    assert sorted(r.job_id for r in got_theirs) == sorted(j.job_id for j in theirs)
    assert len(engine.replies) == len(other.replies) == 16  # nothing else, nothing twice
    assert {(r.result.outcome, r.result.summary) for r in got_mine + got_theirs} == {
        (Outcome.OK, "together")
    }
    assert engine.messages + other.messages < 32  # some came together
    assert broker.waiting("default") == 0 and running.worker.done == 32


def test_a_reply_carries_no_more_output_than_the_job_allows(
    broker: Broker, engine: EngineStub
) -> None:
    job = a_job("chatty", "default", ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"])
    job = JobMessage(job.job_id, job.job, job.claim, job.row_id, job.slot, output_limit=1000)
    running = broker.worker("default")
    try:
        engine.send(job)
        (reply,) = engine.wait(1)
    finally:
        running.stop()
    assert reply.result.output.startswith("x" * 1000)
    assert reply.result.output.endswith("[... output cut at 1000 of 5000 bytes ...]")


def test_a_job_a_worker_cannot_read_or_is_not_its_zones_goes_back_dead_to_its_engine(
    broker: Broker, engine: EngineStub
) -> None:
    running = broker.worker("a")
    try:
        engine.send_raw(b'{"type": "job", "v": 99}', "a")
        # Published straight into zone a's queue, but for a host of zone b.
        stray = a_job("stray", "b", ["touch", "/nonexistent/never"])
        engine.producer.publish(
            stray.encode(), exchange="", routing_key=broker.topology.zone_queue("a"),
            content_type="application/json", content_encoding="binary",
            reply_to=engine.queue, headers={ENGINE_HEADER: engine.engine_id},
        )  # fmt: skip
        dead = engine.wait_dead(2)
    finally:
        running.stop()
    assert [reason for reason, _ in dead] == ["rejected", "rejected"]
    assert running.worker.refused == 2 and running.worker.done == 0
    assert engine.replies == []


def test_a_job_no_worker_takes_in_time_dies_and_comes_back_to_its_engine(
    broker: Broker, engine: EngineStub
) -> None:
    engine.send(a_job("late", "nobody-here", ["true"]), ttl=0.2)
    ((reason, body),) = engine.wait_dead(1)
    assert reason == "expired"
    assert json.loads(body)["audit"] == "late"


def test_a_python_audit_stuck_past_its_timeout_is_answered_and_its_thread_replaced(
    broker: Broker, engine: EngineStub
) -> None:
    running = broker.worker("default", max_workers=1)
    try:
        engine.send(a_job("stuck", "default", f"{__name__}:hang", timeout=0.2, row_id=1,
                          kind="python"))  # fmt: skip
        engine.send(a_job("after", "default", ["true"], row_id=2))
        replies = {r.audit: r for r in engine.wait(2, timeout=20)}
    finally:
        running.stop()
    assert replies["stuck"].result.outcome.value == "timeout"
    assert "still running after its 0.2s timeout" in replies["stuck"].result.summary
    assert replies["after"].result.outcome.value == "ok"  # the one worker slot was freed


def test_a_job_whose_engine_is_gone_is_still_acknowledged_and_the_worker_goes_on(
    broker: Broker, engine: EngineStub
) -> None:
    """Its reply goes to a queue that no longer exists (RabbitMQ drops it): the job is
    done all the same, not handed out again and again."""
    orphan = a_job("orphan", "default", ["true"], row_id=1)
    running = broker.worker("default")
    try:
        engine.producer.publish(
            orphan.encode(), exchange=broker.topology.jobs_exchange, routing_key="default",
            content_type="application/json", content_encoding="binary", delivery_mode=2,
            reply_to=broker.topology.results_queue("engine-that-died"),
        )  # fmt: skip
        engine.send(a_job("next", "default", ["true"], row_id=2))
        (reply,) = engine.wait(1)
        wait_for(lambda: running.worker.done == 2, 10, "both jobs done")
    finally:
        running.stop()
    assert reply.audit == "next"
    assert broker.waiting("default") == 0


def test_a_quick_job_done_behind_a_long_one_is_acknowledged_alone(
    broker: Broker, engine: EngineStub, tmp_path: Path
) -> None:
    """Acknowledgements go out as soon as each reply is confirmed, but a run of them as one
    (multiple) only up to the first job still running: that one stays the broker's."""
    running = broker.worker("default", max_workers=2)
    gate = tmp_path / "go"
    try:
        long = a_job("long", "default", f"while [ ! -f {gate} ]; do sleep 0.05; done",
                     row_id=1, shell=True)  # fmt: skip
        engine.send(long)
        wait_for(lambda: running.worker.running == 1, 10, "the long job running")
        engine.send(a_job("quick", "default", ["true"], row_id=2))
        (quick,) = engine.wait(1)
        link = running.worker._link
        assert link is not None
        # The engine can read the reply before the worker reads RabbitMQ's confirm of it
        # and acknowledges the job (after that read): wait for the ack to be sent.
        wait_for(lambda: list(link.unacked.values()) == [False], 10,
                 "the quick job acknowledged, the long one not")  # fmt: skip
        # Cut the worker off: what is not acknowledged goes back to the queue.
        link.connection.connection.sock.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: running.worker._link is not link and running.worker._link, 15,
                 "the worker connected again")  # fmt: skip
        gate.touch()
        replies = engine.wait(3)
    finally:
        running.stop()
    assert quick.audit == "quick"
    # The long job was still the broker's: handed out again, it ran once more.
    assert sorted((r.audit, r.redelivered) for r in replies) == [
        ("long", False),
        ("long", True),
        ("quick", False),
    ]
    assert broker.waiting("default") == 0


# -- zones ---------------------------------------------------------------------------------


def test_jobs_of_zone_b_never_run_on_a_worker_of_zone_a(broker: Broker, engine: EngineStub) -> None:
    a, b = broker.worker("a"), broker.worker("b")
    try:
        jobs = [a_job(f"j{n}", zone, ["true"], row_id=n)
                for n in range(20) for zone in ("a", "b")]  # fmt: skip
        for job in jobs:
            engine.send(job)
        engine.send(a_job("waits", "c", ["true"], row_id=99))  # zone c: no worker
        replies = engine.wait(len(jobs))
        engine.idle(0.5)
    finally:
        a.stop()
        b.stop()
    by_zone = {"a": a.worker.worker_id, "b": b.worker.worker_id}
    zone_of = {job.job_id: job.zone for job in jobs}
    for reply in replies:
        assert reply.zone == zone_of[reply.job_id]
        assert reply.worker_id == by_zone[reply.zone]
    assert len(engine.replies) == len(jobs)  # zone c's job was not run by anyone
    assert broker.waiting("c") == 1


# -- real worker processes ------------------------------------------------------------------


def test_a_worker_never_runs_more_jobs_at_once_than_max_workers(
    broker: Broker, engine: EngineStub, tmp_path: Path
) -> None:
    worker = broker.process("default", "--max-workers", "3")
    try:
        # 1.5 s each: the look at the queue below comes well within the first three's run,
        # even on a loaded machine (at 0.5 s the second three had started once, under load).
        jobs = [a_job(f"j{n}", "default", marked(tmp_path, 1.5), row_id=n, shell=True)
                for n in range(9)]  # fmt: skip
        for job in jobs:
            engine.send(job)
        wait_for(lambda: len(runs(tmp_path)) >= 3, 10, "the first jobs starting")
        assert broker.waiting("default") >= 3  # the rest wait on the broker, not in the worker
        engine.wait(len(jobs))
    finally:
        status, _, err = worker.stop()
    assert status == 0, err
    spans = [(float(run[1]), float(run[2])) for run in runs(tmp_path)]
    assert len(spans) == 9
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 3
    assert "worker stopped; 9 jobs done, 0 handed back, 0 refused" in err


def test_a_worker_killed_mid_audit_leaves_its_job_to_another_worker_which_runs_it_once_more(
    broker: Broker, engine: EngineStub, tmp_path: Path
) -> None:
    first = broker.process("default")
    job = a_job("long", "default", marked(tmp_path, 1.5), shell=True)
    engine.send(job)
    (started,) = wait_for(lambda: runs(tmp_path), 10, "the job starting on the first worker")
    first.proc.kill()  # SIGKILL: no goodbye, the job unacknowledged
    first.proc.wait(10)
    # The first run's command died with its worker (the reaper), not left running.
    wait_for(lambda: not Path(f"/proc/{started[0]}").exists(), 5, "the first run's command gone")
    second = broker.process("default")
    try:
        (reply,) = engine.wait(1, timeout=20)
        engine.idle(1.0)
    finally:
        status, out, err = second.stop()
    assert status == 0, err
    both = runs(tmp_path)
    assert len(both) == 2  # the killed run, and one more
    assert len(both[0]) + len(both[1]) == 5  # one of them never finished (no end time)
    assert (reply.job_id, reply.result.outcome.value, reply.redelivered) == (job.job_id, "ok", True)
    assert reply.delivery_count == 1
    assert reply.worker_id != "" and f":{second.proc.pid}" in reply.worker_id
    assert len(engine.replies) == 1
    assert json.loads(out.splitlines()[0])["job_id"] == job.job_id  # --json: the reply sent
    assert broker.waiting("default") == 0


def test_a_stopped_worker_finishes_within_its_grace_then_hands_the_rest_back(
    broker: Broker, engine: EngineStub, tmp_path: Path
) -> None:
    worker = broker.process("default", "--max-workers", "2",
                            env=broker.env(OS_DEFAULT__SHUTDOWN_GRACE="3"))  # fmt: skip
    engine.send(a_job("short", "default", marked(tmp_path, 1.0), row_id=1, shell=True))
    engine.send(a_job("long", "default", marked(tmp_path, 30), row_id=2, shell=True))
    wait_for(lambda: len(runs(tmp_path)) == 2, 10, "both jobs running")
    status, _, err = worker.stop(signal.SIGTERM)
    assert status == 0, err
    (reply,) = engine.wait(1)
    assert reply.audit == "short"
    assert "stopping: no new jobs; 2 running get 3s" in err
    assert "grace period over: killed 1 running jobs; the broker hands them out again" in err
    assert "worker stopped; 1 jobs done, 1 handed back, 0 refused" in err
    assert broker.waiting("default") == 1  # the long one, for the next worker


@pytest.mark.multiprocess  # several real workers at once: the serial phase's
def test_entropy_workers_lists_live_workers_by_zone_and_names_a_zone_without_one(
    broker: Broker,
) -> None:
    a, b = broker.process("a", "--max-workers", "2"), broker.process("b")
    try:
        listed = subprocess.run([*ENTROPY, "workers", "--json", "--wait", "3"], env=broker.env(),
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        missing = subprocess.run(
            [*ENTROPY, "workers", "--zone", "a", "--zone", "c"], env=broker.env(),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        a.stop()
        b.stop()
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert [(w["zone"], w["pid"], w["max_workers"], w["state"]) for w in report["workers"]] == [
        ("a", a.proc.pid, 2, "running"),
        ("b", b.proc.pid, 8, "running"),
    ]
    assert all(w["age"] < 5 and w["running"] == 0 for w in report["workers"])
    assert [(z["zone"], z["workers"], z["consumers"]) for z in report["zones"]] == [
        ("a", 1, 1),
        ("b", 1, 1),
    ]
    assert missing.returncode == 1
    assert "zone c: 0 live workers; no queue yet" in missing.stderr
    assert "entropy: zone 'c' has no live worker" in missing.stderr
    # Stopped workers say goodbye: nobody is listed any more.
    gone = subprocess.run([*ENTROPY, "workers", "--json"], env=broker.env(),
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert json.loads(gone.stdout)["workers"] == []


def test_worker_commands_need_a_broker_and_say_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    done = subprocess.run([*ENTROPY, "worker", "run"], env=env, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert "entropy: error: no broker: set [executor] transport_url" in done.stderr
    bad = subprocess.run([*ENTROPY, "worker", "run", "--zone", "a b"], env=env,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "zone must be a simple name" in bad.stderr
    env["OS_EXECUTOR__TRANSPORT_URL"] = "redis://127.0.0.1:6379/0"
    redis = subprocess.run([*ENTROPY, "workers"], env=env, capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert redis.returncode == 1
    assert "the broker executor needs RabbitMQ (amqp:// or amqps://), not redis" in redis.stderr
    assert "Traceback" not in done.stderr + bad.stderr + redis.stderr


def test_a_worker_that_cannot_reach_its_broker_retries_and_a_signal_ends_it_at_once(
    tmp_path: Path,
) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    env = {**os.environ, "OS_EXECUTOR__TRANSPORT_URL": f"amqp://guest:guest@127.0.0.1:{port}//"}
    proc = subprocess.Popen([*ENTROPY, "worker", "run"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        first = proc.stderr.readline() + proc.stderr.readline()  # type: ignore[union-attr]
        assert "cannot reach" in first and "retrying" in first, first
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert time.monotonic() - started < 5
    assert "interrupted by SIGTERM during start-up; the worker did not start" in err
    assert "Traceback" not in first + err


def test_a_wrong_password_is_an_error_at_start_up_not_a_retry_loop(rabbitmq_url: str) -> None:
    url = rabbitmq_url.replace("guest:guest@", "guest:wrong@")
    env = {**os.environ, "OS_EXECUTOR__TRANSPORT_URL": url}
    done = subprocess.run([*ENTROPY, "worker", "run"], env=env, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert "refused the login" in done.stderr and "ACCESS_REFUSED" in done.stderr
    assert "Traceback" not in done.stderr


# -- the broker connection going away --------------------------------------------------------


def _rabbitmqctl(*args: str) -> str:
    tool = next((t for t in ("/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl")
                 if os.path.exists(t)), None)  # fmt: skip
    if tool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("rabbitmqctl is not here (CI=true: this test must run)")
        pytest.skip("rabbitmqctl is not here to close a connection from RabbitMQ's side")
    done = subprocess.run([tool, "-q", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _connection_from(port: int) -> str:
    """RabbitMQ's name (pid) for the one connection whose client end is this local port."""
    for line in _rabbitmqctl("list_connections", "pid", "peer_port").splitlines():
        pid, _, peer_port = line.partition("\t")
        if peer_port.strip() == str(port):
            return pid.strip()
    raise AssertionError(f"no connection from port {port}")


def test_a_worker_rides_out_its_connection_closed_by_the_broker(
    broker: Broker, engine: EngineStub, tmp_path: Path
) -> None:
    running = broker.worker("default", max_workers=2)
    try:
        link = running.worker._link
        assert link is not None
        connection = _connection_from(link.connection.connection.sock.getsockname()[1])
        # The first run lasts until the connection went under it; the next is quick.
        first_waits = (f"if [ $(ls {tmp_path} | grep -c run) -le 1 ]; then "
                       f"while [ ! -f {tmp_path}/closed ]; do sleep 0.05; done; fi")  # fmt: skip
        job = a_job("across", "default", f"{marked(tmp_path, 0)}; {first_waits}", shell=True)
        engine.send(job)
        wait_for(lambda: runs(tmp_path), 10, "the job starting")
        _rabbitmqctl("close_connection", connection, "test: connection dropped")  # only ours
        (tmp_path / "closed").touch()
        after = a_job("after", "default", ["true"], row_id=2)
        engine.send(after)
        replies = engine.wait(3, timeout=30)
    finally:
        running.stop()
    # The run that was going on is still answered (on the new connection); its delivery
    # died with the old one, so the broker handed the job out again: it ran once more.
    across = [r for r in replies if r.job_id == job.job_id]
    assert sorted(r.redelivered for r in across) == [False, True]
    assert [r.result.outcome.value for r in replies if r.job_id == after.job_id] == ["ok"]
    assert len(runs(tmp_path)) == 2
    assert broker.waiting("default") == 0


@pytest.mark.disruptive
def test_a_worker_process_survives_a_broker_restart(broker: Broker, tmp_path: Path) -> None:
    worker = broker.process("default")
    try:
        _rabbitmqctl("stop_app")
        try:
            wait_for(lambda: any("cannot reach" in line for line in worker.err), 30,
                     "the worker retrying")  # fmt: skip
            assert worker.proc.poll() is None
        finally:
            _rabbitmqctl("start_app")
        stub = wait_for(lambda: _try(lambda: EngineStub(broker)), 60, "RabbitMQ back")
        try:
            job = a_job("after", "default", ["true"])
            stub.send(job)
            (reply,) = stub.wait(1, timeout=60)
        finally:
            stub.close()
    finally:
        status, _, err = worker.stop()
    assert reply.job_id == job.job_id and reply.result.outcome.value == "ok"
    assert status == 0, err
    assert f"lost the connection to {describe(broker.url)}" in err


def _try(make: Any) -> Any:
    try:
        return make()
    except Exception:
        return None


def test_the_worker_never_opens_a_state_store(broker: Broker, tmp_path: Path) -> None:
    """Its whole configuration is the broker: a bogus backend does not matter."""
    env = broker.env(OS_DEFAULT__ENTROPY_BACKEND="no-such-backend")
    worker = broker.process("default", "--for", "1s", env=env)
    status, _, err = worker.stop(None)  # --for ends it
    assert status == 0, err
    assert "worker stopped; 0 jobs done" in err
