"""Events: every audit result and repair run, published on a message bus.

Through kombu, to the topic exchange `entropy`, as JSON, with routing keys
`audit.<audit>.<outcome>` and `repair.<repair>.<outcome>`; any kombu
transport works (`memory://` for tests, `amqp://` for RabbitMQ, `redis://`).

With the monitoring rules (issue 15): `state.<audit>.<outcome>` on a hard
state change, `flapping.<audit>.start|end`; a problem event in a downtime
carries `downtime`/`downtime_reason`, an acknowledged one `acknowledged`,
and those of an unreachable pair, or repeated ones of an acknowledged
problem, are not published (monitoring.problem_event_marks).

Publishing never blocks nor breaks the engine: events go into a bounded
buffer that one background thread drains. While the broker is down the
buffer keeps the newest `buffer_size` events; older ones are dropped and
counted, with a warning. When the broker is back the buffer is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import kombu

from .jsonout import to_json
from .model import RepairRun, Result
from .monitoring import Transition, flap_percent

LOG = logging.getLogger(__name__)

EXCHANGE = "entropy"
_RETRY = (0.5, 5.0)  # first and longest pause between tries to reach the broker
_DROP_WARNING_EVERY = 1000  # one warning per this many dropped events


def exchange(name: str = EXCHANGE) -> kombu.Exchange:
    # Durable, so it survives a broker restart; the events themselves are transient.
    return kombu.Exchange(name, type="topic", durable=True, delivery_mode="transient")


def _segment(name: str) -> str:
    """A name as one routing-key word: dots would split it."""
    return name.replace(".", "_")


def audit_event(result: Result) -> tuple[str, dict[str, Any]]:
    key = f"audit.{_segment(result.audit_name)}.{result.outcome.value}"
    body = {"kind": "audit", **_plain(result.to_dict())}
    return key, body


def marked_audit_event(item: tuple[Result, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """An audit event with the monitoring rules' marks (downtime, acknowledged) in its body."""
    result, marks = item
    key, body = audit_event(result)
    return key, {**body, **_plain(marks)}


def state_event(item: tuple[Result, Transition, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A hard state change: `state.<audit>.<outcome>`."""
    result, tr, marks = item
    after, before = tr.after, tr.before
    key = f"state.{_segment(result.audit_name)}.{after.hard_state.value}"
    body = {
        "kind": "state", "audit_name": result.audit_name, "host": result.host,
        "state": after.hard_state.value, "previous_state": before.hard_state.value,
        "state_type": after.state_type.value, "last_hard_state_change":
        after.last_hard_state_change, "summary": result.summary,
        "finished_at": result.finished_at, "engine_id": result.engine_id, **marks,
    }  # fmt: skip
    return key, _plain(body)


def flapping_event(item: tuple[Result, Transition]) -> tuple[str, dict[str, Any]]:
    """Flapping started or ended: `flapping.<audit>.start|end`."""
    result, tr = item
    edge = "start" if tr.flapping_started else "end"
    body = {"kind": "flapping", "audit_name": result.audit_name, "host": result.host,
            "flapping": tr.after.flapping, "percent": round(flap_percent(tr.after.flap_history), 1),
            "state": tr.after.state.value, "finished_at": result.finished_at}  # fmt: skip
    return f"flapping.{_segment(result.audit_name)}.{edge}", _plain(body)


def repair_event(run: RepairRun) -> tuple[str, dict[str, Any]]:
    key = f"repair.{_segment(run.repair_name)}.{run.result.outcome.value}"
    return key, {"kind": "repair", **_plain(run.to_dict())}


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values (datetimes as ISO 8601), the way --json prints them."""
    return json.loads(to_json(value, indent=None, lenient=True))


class Events:
    """A non-blocking publisher with a bounded buffer and its own thread."""

    def __init__(self, url: str, buffer_size: int = 10_000, exchange_name: str = EXCHANGE) -> None:
        self.url = url
        self.buffer_size = buffer_size
        self.published = 0
        self.dropped = 0
        self._exchange = exchange(exchange_name)
        # (how to make the event, what from): converted on the publishing
        # thread, so the engine's recorder only appends.
        self._buffer: deque[tuple[Callable[[Any], tuple[str, dict[str, Any]]], Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="entropy-events", daemon=True)
        self._thread.start()

    def describe(self) -> str:
        """The broker's URL, password hidden, for messages."""
        return kombu.Connection(self.url).as_uri()

    def audit(self, result: Result, marks: dict[str, Any] | None = None) -> None:
        if marks:
            self._put(marked_audit_event, (result, marks))
        else:
            self._put(audit_event, result)

    def state(self, result: Result, transition: Transition, marks: dict[str, Any]) -> None:
        self._put(state_event, (result, transition, marks))

    def flapping(self, result: Result, transition: Transition) -> None:
        self._put(flapping_event, (result, transition))

    def repair(self, run: RepairRun) -> None:
        self._put(repair_event, run)

    def _put(self, make: Callable[[Any], tuple[str, dict[str, Any]]], source: Any) -> None:
        with self._cond:
            if len(self._buffer) >= self.buffer_size:
                self._buffer.popleft()
                self.dropped += 1
                if self.dropped % _DROP_WARNING_EVERY == 1:
                    LOG.warning(
                        "event buffer full (%d): dropped %d events so far; is %s up?",
                        self.buffer_size, self.dropped, self.describe(),
                    )  # fmt: skip
            self._buffer.append((make, source))
            self._cond.notify()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is buffered, for up to timeout seconds, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._buffer:
            LOG.warning("dropped %d events not sent before stopping", len(self._buffer))

    # -- the publishing thread ----------------------------------------------------

    def _loop(self) -> None:
        connection: kombu.Connection | None = None
        pause, down_since = _RETRY[0], None
        while True:
            with self._cond:
                while not self._buffer and not self._closing:
                    self._cond.wait()
                if not self._buffer:
                    break
            try:
                if connection is None:
                    connection = kombu.Connection(self.url, connect_timeout=2)
                    connection.ensure_connection(max_retries=1)
                self._drain(connection.Producer(serializer="json"))
            except Exception as exc:  # the broker's or the network's: keep the events, retry
                if connection is not None:
                    connection.release()
                    connection = None
                if down_since is None:
                    down_since = time.monotonic()
                    LOG.warning(
                        "cannot publish events to %s (%s); buffering up to %d",
                        self.describe(), exc, self.buffer_size,
                    )  # fmt: skip
                if self._closing:
                    break
                with self._cond:
                    self._cond.wait(pause)
                pause = min(pause * 2, _RETRY[1])
                continue
            if down_since is not None:
                LOG.warning("publishing events again after %.0fs", time.monotonic() - down_since)
                down_since, pause = None, _RETRY[0]
        if connection is not None:
            connection.release()

    def _drain(self, producer: kombu.Producer) -> None:
        while True:
            with self._cond:
                if not self._buffer:
                    return
                item = self._buffer[0]
            try:
                key, body = item[0](item[1])
            except Exception:  # a bug in making this one event: drop it, keep the rest
                LOG.exception("dropping an event that could not be made")
                self._pop(item)
                continue
            producer.publish(
                body, exchange=self._exchange, routing_key=key, declare=[self._exchange],
                retry=False,
            )  # fmt: skip
            self._pop(item)
            self.published += 1

    def _pop(self, item: tuple[Any, Any]) -> None:
        with self._cond:
            # Unless the buffer overflowed meanwhile, the event sent is still first.
            if self._buffer and self._buffer[0] is item:
                self._buffer.popleft()


def tail(
    url: str,
    on_event: Callable[[str, dict[str, Any]], None],
    pattern: str = "#",
    count: int | None = None,
    seconds: float | None = None,
    on_problem: Callable[[str], None] = LOG.warning,
    exchange_name: str = EXCHANGE,
    stop: threading.Event | None = None,
) -> int:
    """Print events as they come, riding out broker restarts; return how many were seen.

    Stops after `count` events or `seconds`, or within a second of `stop` being
    set (an HTTP client gone), else runs until interrupted.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    stop = stop or threading.Event()
    seen = 0
    queue_name = f"entropy-tail-{uuid.uuid4().hex[:12]}"
    pause = _RETRY[0]

    def remaining() -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    def going() -> bool:
        """Neither `count` events seen nor the deadline passed, nor asked to stop."""
        return (
            (count is None or seen < count)
            and (deadline is None or deadline > time.monotonic())
            and not stop.is_set()
        )

    def receive(body: Any, message: kombu.Message) -> None:
        nonlocal seen
        seen += 1
        on_event(message.delivery_info.get("routing_key", ""), body)
        message.ack()

    while going():
        queue = kombu.Queue(
            queue_name, exchange(exchange_name), routing_key=pattern, auto_delete=True,
            durable=False,
        )  # fmt: skip
        try:
            with kombu.Connection(url, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
                with connection.Consumer(queue, callbacks=[receive], accept=["json"]):
                    pause = _RETRY[0]
                    while going():
                        try:
                            connection.drain_events(timeout=min(1.0, max(remaining() or 1.0, 0.01)))
                        except TimeoutError:
                            continue
        except Exception as exc:  # the broker went away: say so, and come back
            on_problem(f"cannot read events from {kombu.Connection(url).as_uri()}: {exc}; retrying")
            stop.wait(min(pause, max(remaining() or pause, 0)))
            pause = min(pause * 2, _RETRY[1])
    return seen
