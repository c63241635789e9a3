"""The engine's broker executor (entropy.engine.broker_executor) against the real RabbitMQ.

Its edges, driven in-process with a worker thread or a hand-played one
(plain kombu): a result delivered twice is recorded once and fenced out
once; a job no worker of its zone takes waits (published again at each
TTL) until one comes; a job that keeps killing its workers is answered
`error`; a job lost on the broker is answered `error` once it is overdue;
zones with jobs and no consumer are named once per outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import amqp
import kombu
import pytest

from brokers import SLOT, Broker, a_job
from entropy.broker.protocol import decode_job, reply
from entropy.broker.topology import DELIVERY_LIMIT
from entropy.engine import broker_lost
from entropy.engine.broker_executor import BrokerExecutor, BrokerSettings
from entropy.model import Outcome, Pair, Result, Schedule
from entropy.scheduler import Due
from entropy.timing import Every
from faults import held_replies
from processes import wait_for

pytestmark = pytest.mark.slow


class Recorder:
    """The engine's outlet, as the executor sees it."""

    def __init__(self) -> None:
        self.got: list[tuple[Due, Result]] = []
        self.given_up_on: list[Due] = []
        self.lock = threading.Lock()

    def finished(self, due: Due, result: Result) -> None:
        with self.lock:
            self.got.append((due, result))

    def finished_many(self, finished: list[tuple[Due, Result]]) -> None:
        with self.lock:
            self.got += finished

    def given_up(self, due: Due) -> None:
        with self.lock:
            self.given_up_on.append(due)


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    b = Broker(rabbitmq_url)
    yield b
    b.cleanup()


def executor(broker: Broker, recorder: Recorder, lease: float = 30.0,
             watch_interval: float = 3600) -> BrokerExecutor:  # fmt: skip
    broker.engines.add("engine-1")
    made = BrokerExecutor(BrokerSettings(broker.url, broker.topology, "engine-1", lease,
                                         watch_interval=watch_interval))  # fmt: skip
    made.start(recorder)
    return made


def work(zone: str, row_id: int = 1, command: list[str] | None = None, timeout: float = 10.0):
    message = a_job(f"audit{row_id}", zone, command or ["true"], timeout, row_id=row_id)
    job = message.job
    pair = Pair(job.audit_name, job.host.name, job.host.ip_address,
                Schedule("web", job.audit_name, Every(60)))  # fmt: skip
    return Due(row_id, pair, SLOT), job


def ready(broker: Broker, zone: str) -> int:
    """Jobs ready in the zone's queue; 0 while it is not declared yet."""
    try:
        return broker.waiting(zone)
    except amqp.exceptions.NotFound:
        return 0


def take_one(broker: Broker, zone: str) -> kombu.Message:
    """Play a worker: take one job off the zone's queue, unacknowledged."""
    wait_for(lambda: ready(broker, zone), 10, f"a job ready in zone {zone}")
    connection = kombu.Connection(broker.url)
    queue = connection.SimpleQueue(kombu.Queue(broker.topology.zone_queue(zone),
                                               no_declare=True), no_ack=False)  # fmt: skip
    message = queue.get(timeout=10)
    message.connection = connection  # type: ignore[attr-defined]
    return message


def test_a_result_delivered_twice_is_recorded_once_and_fenced_out_once(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    engine = executor(broker, recorder)
    broker.zones.add("z")
    try:
        engine.submit([work("z")])
        message = take_one(broker, "z")
        job = decode_job(message.body)
        answer = reply(job, Result(Outcome.OK, "fine"), "w-1")
        with kombu.Connection(broker.url) as connection:  # confirmed twice, acked late
            producer = connection.Producer()
            for _ in range(2):
                producer.publish(answer.encode(), routing_key=message.properties["reply_to"],
                                 content_type="application/json", delivery_mode=2,
                                 content_encoding="binary")  # fmt: skip
        message.ack()
        message.connection.release()  # type: ignore[attr-defined]
        wait_for(lambda: engine.fenced == 1, 10, "the second copy fenced out")
    finally:
        engine.shutdown()
    ((due, result),) = recorder.got
    assert (due.row_id, result.outcome, result.summary, result.slot) == (1, Outcome.OK, "fine",
                                                                         SLOT)  # fmt: skip
    assert result.engine_id == "engine-1" and engine.in_flight() == 0
    assert "fenced out a late result: audit1" in caplog.text
    assert "no longer holds the row" in caplog.text


def test_a_job_of_a_zone_without_worker_waits_then_runs_once_a_worker_comes(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    engine = executor(broker, recorder, lease=0.5)  # jobs expire every half second
    broker.zones.add("late")
    try:
        engine.submit([work("late")])
        wait_for(lambda: engine.republished >= 2, 15, "the job published again, twice")
        assert engine.zones.watch_once() == {"late": 1}
        assert "zone late has no live worker: 1 audits wait" in caplog.text
        assert recorder.got == [] and engine.in_flight() == 1
        worker = broker.worker("late")
        try:
            wait_for(lambda: recorder.got, 15, "the job's result")
            assert engine.zones.watch_once() == {}
        finally:
            worker.stop()
    finally:
        engine.shutdown()
    ((_, result),) = recorder.got
    assert result.outcome is Outcome.OK and engine.fenced == 0
    assert "zone late has a worker again" in caplog.text


def test_a_job_that_every_worker_dies_on_is_answered_error(broker: Broker) -> None:
    recorder = Recorder()
    engine = executor(broker, recorder)
    broker.zones.add("deadly")
    try:
        engine.submit([work("deadly")])
        for _ in range(DELIVERY_LIMIT + 1):  # taken, and the "worker" dies each time
            take_one(broker, "deadly").connection.release()  # type: ignore[attr-defined]
        wait_for(lambda: recorder.got, 15, "the dead job answered")
    finally:
        engine.shutdown()
    ((_, result),) = recorder.got
    assert result.outcome is Outcome.ERROR and result.slot == SLOT
    assert "never finished" in result.summary and "zone deadly" in result.summary
    assert engine.in_flight() == 0


def test_a_job_lost_on_the_broker_is_answered_error_once_overdue(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator deletes the zone's queue with the job in it: nothing ever comes back for
    it (no result, no dead letter). Its row must not stay held for ever."""
    monkeypatch.setattr(broker_lost, "WORKER_MARGIN", 0.5)
    recorder = Recorder()
    engine = executor(broker, recorder, lease=0.5, watch_interval=0.2)
    broker.zones.add("gone")
    try:
        engine.submit([work("gone", timeout=0.5)])
        wait_for(lambda: ready(broker, "gone"), 10, "the job in its queue")
        with kombu.Connection(broker.url) as connection:
            connection.default_channel.queue_delete(broker.topology.zone_queue("gone"))
        wait_for(lambda: recorder.got, 15, "the lost job answered")
    finally:
        engine.shutdown()
    ((due, result),) = recorder.got
    assert (due.row_id, result.outcome, result.slot) == (1, Outcome.ERROR, SLOT)
    assert "lost on the broker" in result.summary and "zone gone" in result.summary
    assert engine.in_flight() == 0 and engine.lost == 1
    assert "audit1 on audit1.gone.test: job" in caplog.text


def test_no_job_counts_as_lost_while_the_broker_is_out_of_reach(broker: Broker) -> None:
    """An outage delays results; it loses none: the sweep waits for the connection, and
    each job's time starts again once it is back."""
    recorder = Recorder()
    where = urlsplit(broker.url)
    with held_replies((where.hostname or "127.0.0.1", where.port or 5672)) as proxy:
        url = where._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}").geturl()
        broker.engines.add("engine-1")
        engine = BrokerExecutor(BrokerSettings(url, broker.topology, "engine-1", 1.0,
                                               watch_interval=3600))  # fmt: skip
        engine.start(recorder)
    try:  # the proxy is gone: the broker is out of reach, the client retrying
        wait_for(lambda: engine.client.connections == 0, 10, "the connection lost")
        engine.submit([work("down", timeout=1.0)])
        later = time.monotonic() + 60  # overdue many times over
        engine.sweep(later)
        engine.sweep(later)
        assert (engine.lost, engine.in_flight(), recorder.got) == (0, 1, [])
    finally:
        engine.shutdown()
