"""The engine's side (JobClient) against the real RabbitMQ, with real workers as its peer.

What phase 2's broker executor builds on: jobs published with confirms and
routed by zone, replies back on the engine's own queue, and jobs that die
(delivery limit, TTL) handed back to the engine that sent them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import kombu
import pytest

from brokers import Broker, a_job
from entropy.broker import connection
from entropy.broker.client import JobClient
from entropy.broker.protocol import JobMessage, ResultMessage
from entropy.broker.topology import DELIVERY_LIMIT
from faults import held_replies
from processes import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    b = Broker(rabbitmq_url)
    yield b
    b.cleanup()


class Inbox:
    def __init__(self) -> None:
        self.results: list[ResultMessage] = []
        self.dead: list[tuple[JobMessage, str]] = []
        self.lock = threading.Lock()

    def result(self, message: ResultMessage) -> None:
        with self.lock:
            self.results.append(message)

    def died(self, job: JobMessage, reason: str) -> None:
        with self.lock:
            self.dead.append((job, reason))


def client(broker: Broker, inbox: Inbox, engine_id: str = "engine-1") -> JobClient:
    broker.engines.add(engine_id)
    made = JobClient(broker.url, engine_id, inbox.result, inbox.died, broker.topology,
                     result_expiry=60)  # fmt: skip
    made.start()
    return made


def test_jobs_go_to_their_zones_workers_and_every_reply_comes_back(broker: Broker) -> None:
    inbox = Inbox()
    engine = client(broker, inbox)
    a, b = broker.worker("a", max_workers=8), broker.worker("b", max_workers=8)
    try:
        jobs = [a_job(f"j{n}", zone, ["true"], row_id=n) for n in range(100) for zone in "ab"]
        engine.publish(jobs[:150])
        engine.publish(jobs[150:])
        wait_for(lambda: len(inbox.results) == len(jobs), 30, "every reply")
        wait_for(lambda: engine.unconfirmed == 0, 10, "every job confirmed")
    finally:
        a.stop()
        b.stop()
        engine.close()
    assert sorted(r.job_id for r in inbox.results) == sorted(j.job_id for j in jobs)
    assert {(r.zone, r.worker_id) for r in inbox.results} == {
        ("a", a.worker.worker_id),
        ("b", b.worker.worker_id),
    }
    assert engine.confirmed == len(jobs) and engine.received == len(jobs)
    assert inbox.dead == []
    assert broker.waiting("a") == broker.waiting("b") == 0


def test_a_job_handed_out_and_never_finished_too_often_comes_back_dead(broker: Broker) -> None:
    """Workers that die holding a job (their connection closes unacknowledged) make the
    broker hand it out again, DELIVERY_LIMIT times; then it goes back to its engine."""
    inbox = Inbox()
    engine = client(broker, inbox)
    job = a_job("deadly", "z", ["true"])
    broker.zones.add("z")
    deliveries: list[dict[str, Any]] = []
    try:
        engine.publish([job])
        wait_for(lambda: engine.confirmed == 1, 10, "the job confirmed")
        for _ in range(DELIVERY_LIMIT + 1):  # a "worker" takes it and dies, each time
            with kombu.Connection(broker.url) as connection:
                zone = kombu.Queue(broker.topology.zone_queue("z"), no_declare=True)
                queue = connection.SimpleQueue(zone, no_ack=False)
                message = queue.get(timeout=10)
                deliveries.append(
                    {
                        "redelivered": message.delivery_info["redelivered"],
                        "count": (message.headers or {}).get("x-delivery-count"),
                    }
                )
                # no ack: the connection closes with the job unacknowledged
        wait_for(lambda: inbox.dead, 10, "the job coming back dead")
    finally:
        engine.close()
    assert [d["redelivered"] for d in deliveries] == [False] + [True] * DELIVERY_LIMIT
    ((dead, reason),) = inbox.dead
    assert (dead.job_id, reason) == (job.job_id, "delivery_limit")
    assert inbox.results == [] and broker.waiting("z") == 0


def test_dead_jobs_go_back_only_to_the_engine_that_sent_them(broker: Broker) -> None:
    mine, theirs = Inbox(), Inbox()
    broker.zones.add("nobody")
    one, other = client(broker, mine, "engine-1"), client(broker, theirs, "engine-2")
    try:
        one.publish([a_job("expires", "nobody", ["true"])], ttl=0.1)
        wait_for(lambda: mine.dead, 10, "the expired job")
        wait_for(lambda: one.unconfirmed == 0, 5, "confirmed")
    finally:
        one.close()
        other.close()
    assert [reason for _, reason in mine.dead] == ["expired"]
    assert theirs.dead == []


def test_a_job_client_says_when_the_broker_is_no_rabbitmq(redis_url: str) -> None:
    made = JobClient(redis_url, "e", lambda _: None)
    with pytest.raises(Exception, match="needs RabbitMQ"):
        made.start()


def test_a_zone_whose_queue_is_not_entropys_refuses_its_jobs_and_the_rest_go_on(
    broker: Broker,
) -> None:
    broker.zones.update({"odd", "fine"})
    with kombu.Connection(broker.url) as connection:  # someone else's queue, classic
        connection.default_channel.queue_declare(broker.topology.zone_queue("odd"), durable=True)
    inbox = Inbox()
    engine = client(broker, inbox)
    worker = broker.worker("fine")
    try:
        engine.publish([a_job("lost", "odd", ["true"]), a_job("kept", "fine", ["true"])])
        wait_for(lambda: inbox.results, 20, "the other zone's reply")
    finally:
        worker.stop()
        engine.close()
    assert [(job.job.audit_name, reason) for job, reason in inbox.dead] == [("lost", "refused")]
    assert [r.audit for r in inbox.results] == ["kept"]


def test_a_declare_whose_reply_never_comes_is_given_up_with_its_connection(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A synchronous call waits REPLY_TIMEOUT for its reply, not for ever: the client's
    thread (publishing, taking results) was once seen blocked on a declare's reply."""
    monkeypatch.setattr(connection, "REPLY_TIMEOUT", 1.0)
    where = urlsplit(broker.url)
    with held_replies((where.hostname or "127.0.0.1", where.port or 5672)) as proxy:
        url = where._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}").geturl()
        broker.engines.add("engine-1")
        inbox = Inbox()
        engine = JobClient(url, "engine-1", inbox.result, inbox.died, broker.topology,
                           result_expiry=60)  # fmt: skip
        engine.start()
        try:
            proxy.hold()  # from now on the broker's replies on this connection are lost
            broker.zones.add("late")
            with caplog.at_level(logging.WARNING, logger="entropy.broker.client"):
                engine.publish([a_job("j", "late", ["true"], row_id=1)])  # declares "late"
                wait_for(lambda: engine.confirmed == 1, 20, "the job confirmed")
        finally:
            engine.close()
    assert proxy.accepted == 2  # confirmed on a second connection
    assert "lost the connection" in caplog.text
    assert broker.waiting("late") == 1
