"""The engine's side of the broker: publish jobs, take their results and dead jobs back.

A JobClient owns one connection on a thread of its own (the event loop of
connection.pump). publish() may be called from any thread: it queues the
jobs and wakes the loop, which publishes them, persistent, with publisher
confirms, to `entropy.jobs` with the host's zone as routing key (declaring
the zone's queue the first time it meets a zone, so jobs wait there until
a worker of that zone comes). Jobs the broker has not confirmed when the
connection drops are published again on the next one.

Results arrive on the engine's queue `entropy.results.<engine id>` and are
handed to on_result on the loop's thread, then acknowledged. Jobs that
died (delivery limit, TTL, refused by a worker) come back on the same
queue and go to on_dead with the reason RabbitMQ gives (`delivery_limit`,
`expired`, `rejected`); a job whose zone queue exists with other
arguments than Entropy's goes to on_dead at once (`refused`).

Used by the bench and the tests as "the engine"; the engine's broker
executor (later) drives it the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import amqp
import kombu

from .connection import (
    CONNECTION_ERRORS,
    Backoff,
    BrokerError,
    Wakeup,
    covered,
    describe,
    open_connection,
    pump,
    read_ahead,
)
from .framing import Batch, JobProperties, table
from .protocol import (
    CONTENT_TYPE,
    JobMessage,
    ProtocolError,
    ResultMessage,
    decode_job,
    read_results,
)
from .topology import ENGINE_HEADER, Topology

LOG = logging.getLogger(__name__)

ResultCallback = Callable[[ResultMessage], None]
DeadCallback = Callable[[JobMessage, str], None]


@dataclass(slots=True, eq=False)
class _Link:
    number: int
    connection: kombu.Connection
    channel: amqp.Channel  # confirm mode: jobs out, results in
    zones: set[str] = field(default_factory=set)  # zone queues declared on this connection
    published: int = 0
    unconfirmed: dict[int, tuple[JobMessage, float | None]] = field(default_factory=dict)
    handled: int = 0  # the last delivery tag handled: acknowledged with the ones before it
    acked: int = 0


class JobClient:
    """Publish jobs with confirms; results and dead jobs to callbacks. Thread-safe publish()."""

    def __init__(
        self,
        url: str,
        engine_id: str,
        on_result: ResultCallback,
        on_dead: DeadCallback | None = None,
        topology: Topology | None = None,
        result_expiry: float = 60.0,
        prefetch: int = 2000,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        """result_expiry: seconds the result queue outlives this engine (its lease);
        on_drained: called on the loop's thread after each read of the connection that
        handed results to on_result (so a consumer can pass them on together)."""
        self.url, self.engine_id = url, engine_id
        self.on_result, self.on_dead, self.on_drained = on_result, on_dead, on_drained
        self.topology = topology or Topology()
        self.result_expiry, self.prefetch = result_expiry, prefetch
        self.results_queue = self.topology.results_queue(engine_id)
        self._headers = table({ENGINE_HEADER: engine_id})  # each job's, encoded once
        self._templates: dict[float | None, JobProperties] = {}  # by TTL (_properties)
        self.confirmed = 0  # jobs the broker confirmed
        self.received = 0  # results handed to on_result
        self.dead = 0  # dead jobs handed to on_dead
        self._outbox: deque[tuple[JobMessage, float | None]] = deque()
        self._wakeup = Wakeup()
        self._closing = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="entropy-jobs", daemon=True)
        self._links = 0

    def start(self, timeout: float = 10.0) -> None:
        """Connect and start taking results; raise what stopped the first connection."""
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            self.close()
            raise self._failure or TimeoutError(f"no connection to {describe(self.url)}")

    def publish(self, jobs: Iterable[JobMessage], ttl: float | None = None) -> None:
        """Queue jobs for publishing; ttl: seconds a job may wait for a worker, then it dies."""
        self._outbox.extend((job, ttl) for job in jobs)
        self._wakeup.wake()

    @property
    def connections(self) -> int:
        """Connections made so far (a new one after each loss), while connected; 0 while
        not: what the broker holds may have waited meanwhile, through no fault of its own."""
        return self._links if self._link is not None else 0

    @property
    def unconfirmed(self) -> int:
        """Jobs published or queued that the broker has not confirmed yet."""
        link = self._link
        return len(self._outbox) + (len(link.unconfirmed) if link is not None else 0)

    def close(self, timeout: float = 5.0) -> None:
        """Publish what is queued (for up to timeout seconds), then disconnect."""
        self._closing.set()
        self._wakeup.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the loop's thread --------------------------------------------------------------

    _link: _Link | None = None

    def _loop(self) -> None:
        backoff = Backoff()
        deadline: float | None = None
        while True:
            try:
                link = self._connect()
            except CONNECTION_ERRORS as exc:
                if not self._ready.is_set():
                    self._failure = exc
                    self._ready.set()
                    return
                if self._closing.is_set():
                    return
                if backoff.down_since is None:
                    LOG.warning("cannot reach %s (%s); retrying", describe(self.url), exc)
                time.sleep(backoff.failed())
                continue
            except BaseException as exc:  # a BrokerError: the broker will not do
                self._failure = exc
                self._ready.set()
                return
            backoff.connected()
            self._ready.set()
            try:
                while True:
                    self._publish(link)
                    if self._closing.is_set():
                        deadline = deadline or time.monotonic() + 5.0
                        if not link.unconfirmed or time.monotonic() > deadline:
                            link.connection.release()
                            self._wakeup.close()
                            return
                    pump(link.connection, self._wakeup, 0.2 if self._closing.is_set() else 1.0)
                    if self.on_drained is not None:  # before the ack: they are handed on
                        self._drained()
                    if link.handled > link.acked:  # one ack for every result taken meanwhile
                        link.channel.basic_ack(link.handled, multiple=True)
                        link.acked = link.handled
                    link.connection.heartbeat_check()
            except CONNECTION_ERRORS as exc:
                LOG.warning("lost the connection to %s (%s); reconnecting", describe(self.url),
                            exc)  # fmt: skip
                self._link = None
                if self.on_drained is not None:  # what was taken before the loss
                    self._drained()
                self._outbox.extendleft(reversed(list(link.unconfirmed.values())))
                try:
                    link.connection.release()
                except Exception:
                    LOG.debug("closing a lost connection", exc_info=True)

    def _drained(self) -> None:
        assert self.on_drained is not None
        try:
            self.on_drained()
        except Exception:  # the callback's bug: keep taking results
            LOG.exception("result callback failed")

    def _connect(self) -> _Link:
        connection = open_connection(self.url)
        try:
            read_ahead(connection)
            self._links += 1
            channel = connection.channel()
            link = _Link(self._links, connection, channel)
            self.topology.declare_results(channel, self.engine_id, self.result_expiry)
            channel.confirm_select()
            channel.events["basic_ack"].add(lambda seq, many: self._confirmed(link, seq, many))
            channel.events["basic_nack"].add(lambda seq, many: self._nacked(link, seq, many))
            channel.basic_qos(0, self.prefetch, False)
            channel.basic_consume(
                self.results_queue, callback=lambda m: self._received(link, m), no_ack=False
            )
        except BaseException:
            connection.release()
            raise
        self._link = link
        return link

    def _publish(self, link: _Link) -> None:
        """Publish what is queued, the frames of many jobs with each write (framing.Batch)."""
        channel, exchange = link.channel, self.topology.jobs_exchange
        batch = Batch(channel)
        written: list[tuple[JobMessage, float | None]] = []  # added to the batch, not yet written
        try:
            while self._outbox:
                job, ttl = self._outbox[0]  # only this thread takes from the outbox
                if job.zone not in link.zones:
                    self._sent(link, written, batch)
                    self._declare(link, job)
                written.append(self._outbox.popleft())
                batch.add(exchange, job.zone, self._properties(job.job_id, ttl), job.encode())
                if batch.full:
                    self._sent(link, written, batch)
            self._sent(link, written, batch)
        except BaseException:
            self._outbox.extendleft(reversed(written))  # not on the broker: first next time
            raise

    def _sent(self, link: _Link, items: list[tuple[JobMessage, float | None]],
              batch: Batch) -> None:  # fmt: skip
        """Write the batch; its jobs are then the broker's to confirm, in order."""
        batch.flush()
        for item in items:
            link.published += 1
            link.unconfirmed[link.published] = item
        items.clear()

    def _declare(self, link: _Link, job: JobMessage) -> None:
        """Declare the job's zone queue the first time this connection meets its zone."""
        try:
            self.topology.declare_zone(link.channel, job.zone)
        except BrokerError as exc:  # its queue exists with other arguments
            LOG.error("cannot send a job to zone %r: %s", job.zone, exc)
            self._outbox.popleft()
            self.dead += 1
            if self.on_dead is not None:
                self.on_dead(job, "refused")
            # The broker closed the channel: carry on with a new connection.
            raise ConnectionAbortedError(f"zone {job.zone!r} refused") from None
        link.zones.add(job.zone)

    def _properties(self, job_id: str, ttl: float | None) -> bytes:
        """A job's AMQP properties: persistent, its ids, this engine's queue and header, and
        the TTL (in ms) after which it dies unrun; all but the ids encoded once per TTL."""
        template = self._templates.get(ttl)
        if template is None:
            template = self._templates[ttl] = JobProperties(
                content_type=CONTENT_TYPE, headers=self._headers, delivery_mode=2,
                reply_to=self.results_queue,
                expiration=None if ttl is None else str(max(int(ttl * 1000), 1)),
            )  # fmt: skip
        return template(job_id)

    def _confirmed(self, link: _Link, sequence: int, multiple: bool) -> None:
        self.confirmed += len(covered(link.unconfirmed, sequence, multiple))

    def _nacked(self, link: _Link, sequence: int, multiple: bool) -> None:
        items = covered(link.unconfirmed, sequence, multiple)
        LOG.warning("the broker refused %d jobs; publishing them again", len(items))
        self._outbox.extend(items)

    def _received(self, link: _Link, message: amqp.Message) -> None:
        headers = message.headers or {}
        try:
            if "x-death" in headers:
                deaths = headers["x-death"]
                reason = str(deaths[0].get("reason", "unknown")) if deaths else "unknown"
                job = decode_job(message.body)
                self.dead += 1
                if self.on_dead is not None:
                    self.on_dead(job, reason)
            else:
                for result in read_results(message.body):  # one, or a worker's several
                    self.received += 1
                    self.on_result(result)
        except ProtocolError as exc:
            LOG.error("dropped a message on %s: %s", self.results_queue, exc)
        except Exception:  # the callback's bug: keep taking results
            LOG.exception("result callback failed")
        link.handled = message.delivery_tag
