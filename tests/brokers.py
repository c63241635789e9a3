"""Playing the engine's side of the broker in tests, and driving workers.

Broker gives a test exchange and queue names of its own (a unique prefix)
on the shared RabbitMQ and deletes them afterwards, so tests in parallel
never see each other's jobs. EngineStub is the engine's side written with
plain kombu (not entropy's JobClient): it publishes job messages and reads
replies and dead jobs the way the protocol says. Workers run on threads of
the test's process (RunningWorker) or as real `entropy worker run`
processes (WorkerProcess).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kombu

from entropy.broker.protocol import Claim, JobMessage, ResultMessage, decode_result
from entropy.broker.topology import ENGINE_HEADER, Topology
from entropy.broker.worker import Worker, WorkerSettings
from entropy.clock import SystemClock
from entropy.model import Host, Script
from entropy.runners.base import Job
from processes import ENTROPY, wait_for

SLOT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Broker:
    """A unique prefix on the shared RabbitMQ; deletes what the test declared under it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.topology = Topology(f"t{uuid.uuid4().hex[:10]}")
        self.zones: set[str] = set()
        self.engines: set[str] = set()

    def waiting(self, zone: str) -> int:
        """Jobs ready in a zone's queue (passive declare)."""
        with kombu.Connection(self.url) as connection:
            _, ready, _ = connection.default_channel.queue_declare(
                self.topology.zone_queue(zone), passive=True
            )
            return ready

    def worker(self, zone: str, max_workers: int = 4, grace: float = 2.0) -> RunningWorker:
        self.zones.add(zone)
        settings = WorkerSettings(self.url, zone, max_workers, f"w-{zone}-{uuid.uuid4().hex[:4]}",
                                  heartbeat_interval=1.0, shutdown_grace=grace,
                                  topology=self.topology)  # fmt: skip
        return RunningWorker(Worker(settings, SystemClock()))

    def process(self, zone: str, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        self.zones.add(zone)
        return WorkerProcess(self, zone, *args, env=env)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "OS_EXECUTOR__TRANSPORT_URL": self.url,
                "OS_EXECUTOR__PREFIX": self.topology.prefix,
                "OS_EXECUTOR__HEARTBEAT_INTERVAL": "1", **extra}  # fmt: skip

    def cleanup(self) -> None:
        t = self.topology
        with kombu.Connection(self.url) as connection:
            channel = connection.channel()
            for queue in [t.zone_queue(z) for z in self.zones] + [
                t.results_queue(e) for e in self.engines
            ]:
                channel.queue_delete(queue)
            for name in (t.jobs_exchange, t.dead_exchange, t.workers_exchange, t.ping_exchange):
                channel.exchange_delete(name)


class EngineStub:
    """The engine's side, written with plain kombu: publish jobs, read replies and dead jobs."""

    def __init__(self, broker: Broker, engine_id: str = "engine-1") -> None:
        self.broker, self.engine_id = broker, engine_id
        broker.engines.add(engine_id)
        self.topology = broker.topology
        self.connection = kombu.Connection(broker.url)
        channel = self.connection.channel()
        # A reply that never comes (seen once under load: a declare's) fails the test
        # after 30 s rather than hanging it: drain_events(timeout) sets its own and puts
        # this one back.
        self.connection.connection.sock.settimeout(30)
        self.queue = self.topology.declare_results(channel, engine_id, expires=60)
        self.replies: list[dict[str, Any]] = []
        self.messages = 0  # result messages read (a worker may send several results in one)
        self.dead: list[tuple[str, dict[str, Any] | bytes]] = []
        self._consumer = kombu.Consumer(channel, [kombu.Queue(self.queue, no_declare=True)],
                                        callbacks=[self._take], accept=None)  # fmt: skip
        self._consumer.consume()
        # Publishing (with its synchronous declares) on a connection of its own: a declare's
        # reply was twice never seen (30 s) under load while replies were being delivered on
        # the same connection, with RabbitMQ's channel idle.
        self._publishing = kombu.Connection(broker.url)
        self._publishing.connect()
        self._publishing.connection.sock.settimeout(30)
        self.producer = kombu.Producer(self._publishing.channel())

    def _take(self, _body: Any, message: kombu.Message) -> None:
        deaths = (message.headers or {}).get("x-death")
        if deaths:
            self.dead.append((deaths[0]["reason"], message.body))
        else:
            doc = json.loads(message.body)  # one result, or a worker's several together
            self.replies += doc if isinstance(doc, list) else [doc]
            self.messages += 1
        message.ack()

    def send(self, job: JobMessage, ttl: float | None = None) -> None:
        self.send_raw(job.encode(), job.zone, message_id=job.job_id, ttl=ttl)

    def send_raw(self, body: bytes, zone: str, message_id: str = "", ttl: float | None = None):
        self.topology.declare_zone(self.producer.channel, zone)
        self.broker.zones.add(zone)
        self.producer.publish(
            body, exchange=self.topology.jobs_exchange, routing_key=zone,
            content_type="application/json", content_encoding="binary", delivery_mode=2,
            reply_to=self.queue, correlation_id=message_id, headers={ENGINE_HEADER: self.engine_id},
            expiration=ttl,
        )  # fmt: skip

    def wait(self, count: int, timeout: float = 15.0) -> list[ResultMessage]:
        deadline = time.monotonic() + timeout
        while len(self.replies) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"got {len(self.replies)} of {count} replies in {timeout}s"
            with contextlib.suppress(TimeoutError):
                self.connection.drain_events(timeout=min(left, 0.5))
        return [decode_result(json.dumps(r)) for r in self.replies[:count]]

    def wait_dead(self, count: int, timeout: float = 15.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.dead) < count:
            assert time.monotonic() < deadline, f"got {len(self.dead)} of {count} dead jobs"
            with contextlib.suppress(TimeoutError):
                self.connection.drain_events(timeout=0.5)
        return self.dead

    def idle(self, seconds: float) -> None:
        """Read whatever else arrives for a while (to show nothing more does)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                self.connection.drain_events(timeout=left)

    def close(self) -> None:
        self._publishing.release()
        self.connection.release()


class RunningWorker:
    """A Worker on a thread of this process."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)
        self.thread.start()
        wait_for(lambda: worker.started, 15, "the worker consuming")

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


class WorkerProcess:
    """A real `entropy worker run` process; its stderr collected line by line."""

    def __init__(self, broker: Broker, zone: str, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [*ENTROPY, "worker", "run", "--zone", zone, "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or broker.env(),
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out),
                                               (self.proc.stderr, self.err))]  # fmt: skip
        for reader in self._readers:
            reader.start()
        wait_for(lambda: any("takes zone" in line for line in self.err) or self.proc.poll(), 20,
                 "the worker process consuming")  # fmt: skip
        assert self.proc.poll() is None, "".join(self.err)

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def stop(self, signum: int | None = signal.SIGTERM) -> tuple[int, str, str]:
        """Signal it (None: let it end by itself), wait; (exit status, stdout, stderr)."""
        if signum is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
        self.proc.wait(30)
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode, "".join(self.out), "".join(self.err)


def a_job(name: str, zone: str, command: list[str] | str, timeout: float = 10.0,
          row_id: int = 1, kind: str = "command", **params: Any) -> JobMessage:  # fmt: skip
    host = Host(f"{name.replace('_', '-')}.{zone}.test", "127.0.0.1", "web", zone=zone)
    key = "function" if kind == "python" else "command"
    script = Script(name, kind, {key: command, **params})
    return JobMessage(uuid.uuid4().hex, Job(name, host, script, {}, timeout),
                      Claim("engine-1", 7), row_id, SLOT, context={"n": row_id})  # fmt: skip


def marked(tmp_path: Path, seconds: float) -> str:
    """A shell command that records each run (a file per run: pid, start, end) and sleeps."""
    return (f"f=$(mktemp {tmp_path}/run.XXXXXX); echo \"$$ $(date +%s.%N)\" > $f; "
            f"sleep {seconds}; echo \"$(date +%s.%N)\" >> $f")  # fmt: skip


def runs(tmp_path: Path) -> list[list[str]]:
    """What marked() recorded: [pid, start, end] per run ([pid, start] for one cut short)."""
    return [p.read_text().split() for p in sorted(tmp_path.glob("run.*"))]
