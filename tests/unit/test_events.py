"""Events through kombu: what is published, and that a dead broker never blocks the caller."""

from __future__ import annotations

import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import kombu

from entropy.events import Events, exchange, tail
from entropy.model import Outcome, RepairRun, Result, Verify

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def a_result(audit: str = "check.disk", outcome: Outcome = Outcome.CRITICAL) -> Result:
    return Result(outcome, "disk 97% full", "details", {"used": {"value": 97.0}},
                  started_at=T0, finished_at=T0, slot=T0, engine_id="e1", audit_name=audit,
                  host="h1.example")  # fmt: skip


def collect(url: str, pattern: str = "#") -> tuple[kombu.Connection, kombu.SimpleQueue]:
    """A queue bound to the exchange before anything is published."""
    connection = kombu.Connection(url)
    queue = kombu.Queue(f"test-{uuid.uuid4().hex[:8]}", exchange(), routing_key=pattern,
                        auto_delete=True)  # fmt: skip
    return connection, connection.SimpleQueue(queue)


def take(queue: kombu.SimpleQueue, count: int) -> list[tuple[str, dict[str, Any]]]:
    got = []
    for _ in range(count):
        message = queue.get(timeout=5)
        message.ack()
        got.append((message.delivery_info["routing_key"], message.payload))
    return got


def test_audit_and_repair_events_carry_their_routing_keys_and_json() -> None:
    url = "memory://"
    connection, queue = collect(url)
    events = Events(url)
    events.audit(a_result())
    trigger = a_result()
    repair_result = Result(Outcome.OK, "cleaned /var/tmp", started_at=T0, finished_at=T0,
                           engine_id="e1", audit_name="clean_tmp", host="h1.example")  # fmt: skip
    run = RepairRun("free_disk", "check.disk", "clean_tmp", 2, repair_result, trigger,
                    Verify.FIXED, a_result(outcome=Outcome.OK))  # fmt: skip
    events.repair(run)
    events.close()
    (audit_key, audit), (repair_key, repair) = take(queue, 2)
    # A dot inside a name would split it into two routing-key words.
    assert audit_key == "audit.check_disk.critical"
    assert audit == {
        "kind": "audit", "host": "h1.example", "audit_name": "check.disk",
        "outcome": "critical", "summary": "disk 97% full", "output": "details",
        "metrics": {"used": {"value": 97.0}}, "started_at": T0.isoformat(),
        "finished_at": T0.isoformat(), "slot": T0.isoformat(), "engine_id": "e1",
    }  # fmt: skip
    assert repair_key == "repair.free_disk.ok"
    assert (repair["repair_name"], repair["attempt"], repair["verify"]) == ("free_disk", 2, "fixed")
    assert repair["trigger_result"]["outcome"] == "critical"
    assert events.published == 2 and events.dropped == 0
    queue.close()
    connection.release()


def test_a_topic_pattern_selects_events() -> None:
    url = "memory://"
    connection, queue = collect(url, "audit.*.critical")
    events = Events(url)
    events.audit(a_result(outcome=Outcome.OK))
    events.audit(a_result(audit="other", outcome=Outcome.CRITICAL))
    events.close()
    assert [key for key, _ in take(queue, 1)] == ["audit.other.critical"]
    assert queue.qsize() == 0
    connection.release()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once it is closed


def test_a_dead_broker_costs_the_caller_nothing_and_drops_the_oldest_beyond_the_bound() -> None:
    events = Events(f"amqp://guest:guest@127.0.0.1:{_closed_port()}//", buffer_size=100)
    caller = threading.Thread(target=lambda: [events.audit(a_result()) for _ in range(5000)])
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert events.published == 0
    assert events.dropped >= 5000 - 100  # the publisher thread may hold one in hand
    assert len(events._buffer) <= 100
    # Long enough for the publisher thread's last connection attempt to end: left running,
    # it logged "cannot publish events" into whatever test came next in this process.
    events.close(timeout=10)


def test_tail_prints_what_is_published() -> None:
    url = "memory://"
    seen: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()
    reader = threading.Thread(
        target=lambda: tail(url, lambda key, body: seen.append((key, body)), "audit.#",
                            count=2, seconds=10, on_problem=lambda text: ready.set()),
    )  # fmt: skip
    reader.start()
    events = Events(url)
    # The reader binds its queue when it starts; publish until both arrive.
    for _ in range(100):
        events.audit(a_result())
        reader.join(timeout=0.05)
        if not reader.is_alive():
            break
    events.close()
    assert not reader.is_alive()
    assert [key for key, _ in seen] == ["audit.check_disk.critical"] * 2
    assert not ready.is_set()  # no connection problem on the way


def test_an_odd_metric_value_is_published_as_text() -> None:
    from decimal import Decimal

    url = "memory://"
    connection, queue = collect(url)
    events = Events(url)
    odd = a_result()
    odd.metrics = {"load": {"value": Decimal("1.5")}}
    events.audit(odd)
    events.close()
    ((_, body),) = take(queue, 1)
    assert body["metrics"] == {"load": {"value": "1.5"}}
    connection.release()
