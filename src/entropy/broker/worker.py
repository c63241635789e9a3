"""`entropy worker run`: take a zone's jobs from RabbitMQ, run them, reply, acknowledge.

One thread (the caller's) does all the AMQP work in an event loop (see
connection.pump); max_workers threads run the jobs with the runners the
engine uses (runners.run_job: command with its reaper, ssh, http, tcp,
python). For each job:

1. the broker delivers it; at most max_workers are unacknowledged at once
   (prefetch), and a delivered job starts at once: nothing waits here that
   another worker could run;
2. a thread runs it and hands the result to the loop;
3. the loop publishes the result (persistent) to the job's reply_to queue;
4. only when the broker confirms the result, the job is acknowledged.

So a worker killed at any point leaves its jobs unacknowledged and the
broker hands them to another worker (at-least-once): the slot runs once
more, and its result says `redelivered`. The zone queue's delivery limit
(topology.DELIVERY_LIMIT) bounds how often that happens.

A job that cannot be read, or is meant for another zone, is rejected
without requeue: it is dead-lettered back to its engine. A job still
running WATCHDOG_MARGIN seconds past its timeout (a python audit cannot
be killed) is answered `timeout` and its thread replaced.

When the broker goes away the loop reconnects with backoff; jobs already
running finish and their results are sent on the new connection (their
deliveries died with the old one: the broker hands them out again).
Stopping is graceful: no new jobs, running ones get shutdown_grace, then
they are killed and handed back to the broker (requeued).
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import amqp
import kombu

from .. import runners
from ..clock import Clock
from ..model import DEFAULT_ZONE, Outcome, Result
from .beats import Beat
from .connection import (
    CONNECTION_ERRORS,
    Backoff,
    LoginRefused,
    Wakeup,
    covered,
    describe,
    open_connection,
    pump,
    read_ahead,
)
from .framing import Batch, properties
from .protocol import (
    CONTENT_TYPE,
    RESULTS_BYTES,
    RESULTS_PER_MESSAGE,
    JobMessage,
    ProtocolError,
    ResultMessage,
    bundle_results,
    decode_job,
    reply,
)
from .topology import Topology

LOG = logging.getLogger(__name__)

WATCHDOG_MARGIN = 2.0  # seconds past a job's timeout before it is answered `timeout` anyway
_PING_GAP = 0.1  # seconds between two heartbeats asked for by pings, at least
_AMQP_CHECK = 5.0  # seconds between checks of the AMQP connection heartbeat

ReplyCallback = Callable[[ResultMessage], None]
NoticeCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    url: str
    zone: str = DEFAULT_ZONE
    max_workers: int = 8
    worker_id: str = ""  # default: HOSTNAME:PID
    heartbeat_interval: float = 5.0
    shutdown_grace: float = 10.0
    topology: Topology = field(default_factory=Topology)


class _State(enum.Enum):
    RUNNING = 1
    FINISHED = 2  # its thread handed the reply over
    REPLACED = 3  # the watchdog answered it `timeout`; its thread ends when it returns
    ABANDONED = 4  # killed at shutdown and requeued: its result is not sent


@dataclass(slots=True, eq=False)
class _Task:
    message: JobMessage
    tag: int  # the delivery tag, valid on `link` only
    link: int  # which connection delivered it
    reply_to: str
    redelivered: bool
    delivery_count: int | None
    deadline: float  # monotonic: timeout + WATCHDOG_MARGIN after it started
    state: _State = _State.RUNNING
    reply: ResultMessage | None = None
    body: bytes = b""


@dataclass(slots=True, eq=False)
class _Link:
    """One connection to the broker and its channels."""

    number: int
    connection: kombu.Connection
    jobs: amqp.Channel
    results: amqp.Channel  # in confirm mode
    control: amqp.Channel
    consumer_tag: str | None = None
    prefetch: int = 0
    published: int = 0  # the last publish sequence number on `results`
    unconfirmed: dict[int, list[_Task]] = field(default_factory=dict)  # sequence -> tasks
    # Delivery tags not yet acknowledged, in delivery order -> whether their reply is in.
    unacked: dict[int, bool] = field(default_factory=dict)
    confirmed: list[int] = field(default_factory=list)  # to acknowledge after this read

    def ack_confirmed(self) -> None:
        """Acknowledge the jobs whose replies the broker confirmed during the last read of
        the connection: one ack for all of them, not one per confirm it sent."""
        if self.confirmed:
            tags, self.confirmed = self.confirmed, []
            self.ack(tags)

    def ack(self, tags: list[int]) -> None:
        """Acknowledge these deliveries: one multiple-ack for the run of them that comes
        first, one ack each for the rest (a long job must not hold back those after it)."""
        if not tags:
            return
        unacked = self.unacked
        for tag in tags:
            unacked[tag] = True
        last = None
        while unacked:
            tag = next(iter(unacked))
            if not unacked[tag]:
                break
            del unacked[tag]
            last = tag
        if last is not None:
            self.jobs.basic_ack(last, multiple=True)
        for tag in tags:
            if unacked.pop(tag, False):  # behind a job still running
                self.jobs.basic_ack(tag)

    def reject(self, tag: int, requeue: bool) -> None:
        self.unacked.pop(tag, None)
        self.jobs.basic_reject(tag, requeue=requeue)


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        clock: Clock,
        on_reply: ReplyCallback | None = None,
        on_notice: NoticeCallback | None = None,
    ) -> None:
        """on_reply: called (on the loop's thread) with each result the broker confirmed."""
        self.settings = settings
        self.clock = clock
        self.on_reply = on_reply
        self.on_notice = on_notice or LOG.warning
        self.worker_id = settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.hostname = socket.gethostname()
        self.done = 0  # results confirmed by the broker
        self.refused = 0  # job messages rejected (unreadable, another zone)
        self.requeued = 0  # jobs handed back at shutdown
        self.stuck = 0  # threads still inside a job the watchdog answered
        self.started = False  # connected and consuming at least once
        self._started_at = time.time()
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._wakeup = Wakeup()
        self._lock = threading.Lock()  # task states, between the loop and the threads
        self._inbox: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._finished: deque[_Task] = deque()  # from the threads to the loop
        self._outbox: deque[_Task] = deque()  # replies to publish (again, after a reconnect)
        self._running: set[_Task] = set()  # delivered, not yet replied to (nor given up)
        self._threads: list[threading.Thread] = []
        self._link: _Link | None = None
        self._links = 0
        self._next_beat = 0.0
        self._last_ping = 0.0
        self._next_watch = 0.0  # monotonic: when the watchdog looks next
        self._orphans = False  # jobs from a lost connection may still run (see _adjust_prefetch)

    # -- lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking jobs and finish; again: end the grace period now. Signal-safe."""
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()
        self._wakeup.wake()

    @property
    def running(self) -> int:
        return len(self._running)

    def run(self, seconds: float | None = None) -> None:
        """Take and run jobs until stop() (or for `seconds`), riding out broker outages."""
        until = None if seconds is None else time.monotonic() + seconds
        for _ in range(self.settings.max_workers):
            self._add_thread()
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                try:
                    link = self._connect()
                except LoginRefused as exc:
                    if not self.started:  # a mistake in the URL: say so, don't retry for ever
                        raise
                    self._unreachable(exc, backoff)  # the broker's users changed meanwhile
                    continue
                except CONNECTION_ERRORS as exc:
                    self._unreachable(exc, backoff)
                    continue
                down = backoff.connected()
                if down is not None:
                    LOG.warning("connected to %s again after %.0fs", describe(self.settings.url),
                                down)  # fmt: skip
                try:
                    self._serve(link, until)
                    return
                except CONNECTION_ERRORS as exc:
                    LOG.warning("lost the connection to %s (%s); reconnecting",
                                describe(self.settings.url), exc or type(exc).__name__)  # fmt: skip
                    self._lost(link)
        finally:
            self._finish()

    def _unreachable(self, exc: BaseException, backoff: Backoff) -> None:
        first = backoff.down_since is None
        pause = backoff.failed()
        if first or isinstance(exc, LoginRefused):  # once per outage; a refused login each time
            LOG.warning("cannot reach %s (%s); retrying", describe(self.settings.url),
                        exc or type(exc).__name__)  # fmt: skip
        self._sleep(pause)

    def _sleep(self, seconds: float) -> None:
        """Pause, but not past a stop()."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            select.select([self._wakeup], [], [], left)
            self._wakeup.clear()

    def _connect(self) -> _Link:
        connection = open_connection(self.settings.url)
        try:
            read_ahead(connection)
            self._links += 1
            topology = self.settings.topology
            jobs, results, control = (connection.channel() for _ in range(3))
            link = _Link(self._links, connection, jobs, results, control)
            topology.declare_zone(jobs, self.settings.zone)
            results.confirm_select()
            results.events["basic_ack"].add(self._confirmed)
            results.events["basic_nack"].add(self._refused)
            topology.declare_workers(control)
            ping_queue, _, _ = control.queue_declare("", exclusive=True, auto_delete=True)
            control.queue_bind(ping_queue, topology.ping_exchange)
            control.basic_consume(ping_queue, callback=self._pinged, no_ack=True)
        except BaseException:
            connection.release()
            raise
        self._link = link
        return link

    def _lost(self, link: _Link) -> None:
        """The connection died: its deliveries are the broker's again; resend its replies."""
        self._link = None
        self._orphans = True
        unconfirmed = [task for tasks in link.unconfirmed.values() for task in tasks]
        link.unconfirmed.clear()
        self._outbox.extendleft(reversed(unconfirmed))
        try:
            link.connection.release()
        except Exception:  # already broken: nothing more to close
            LOG.debug("closing a lost connection", exc_info=True)

    # -- the loop -------------------------------------------------------------------------

    def _serve(self, link: _Link, until: float | None) -> None:
        """Run the loop on one connection until stopped (returns) or it fails (raises)."""
        settings = self.settings
        self._beat(link)
        next_check = time.monotonic() + _AMQP_CHECK
        grace_ends: float | None = None
        while True:
            now = time.monotonic()
            self._publish(link)
            if now >= self._next_watch:
                self._watchdog(now)
            if until is not None and now >= until:
                self._stopping.set()
            if self._stopping.is_set():
                if grace_ends is None:
                    grace_ends = now + settings.shutdown_grace
                    self._stop_consuming(link)
                if not self._running and not self._outbox and not link.unconfirmed:
                    self._beat(link, "stopped")
                    return
                if now >= grace_ends or self._hurry.is_set():
                    self._abandon(link)
                    self._beat(link, "stopped")
                    return
            else:
                self._adjust_prefetch(link)
            if now >= self._next_beat:
                self._beat(link)
            if now >= next_check:
                link.connection.heartbeat_check()
                next_check = now + _AMQP_CHECK
            wait = min(self._next_beat, next_check) - now
            if until is not None:
                wait = min(wait, until - now)
            wait = min(wait, self._next_watch - now)
            if grace_ends is not None:
                wait = min(wait, grace_ends - now, 0.5)
            link.ack_confirmed()  # any a synchronous call (basic_qos) read meanwhile
            pump(link.connection, self._wakeup, max(wait, 0.0))
            link.ack_confirmed()

    def _adjust_prefetch(self, link: _Link) -> None:
        """Consume with a prefetch of what the threads can start now.

        Jobs still running from a lost connection hold threads: until they
        end, the new connection takes that many fewer (prefetch 0 would be
        unlimited, so with none free it does not consume at all).
        """
        orphans = 0
        if self._orphans:
            orphans = sum(1 for task in self._running
                          if task.link != link.number and task.state is _State.RUNNING)  # fmt: skip
            self._orphans = orphans > 0
        capacity = self.settings.max_workers - orphans
        if capacity == link.prefetch:
            return
        if capacity <= 0:
            if link.consumer_tag is not None:
                link.jobs.basic_cancel(link.consumer_tag)
                link.consumer_tag = None
            link.prefetch = 0
            return
        link.jobs.basic_qos(0, capacity, False)
        link.prefetch = capacity
        if link.consumer_tag is None:
            link.consumer_tag = link.jobs.basic_consume(
                self.settings.topology.zone_queue(self.settings.zone),
                callback=lambda message: self._received(link, message),
                no_ack=False,
            )
            if not self.started:
                self.started = True
                self.on_notice(
                    f"worker {self.worker_id} takes zone {self.settings.zone!r} jobs from "
                    f"{describe(self.settings.url)}, {self.settings.max_workers} at a time"
                )

    def _received(self, link: _Link, message: amqp.Message) -> None:
        tag = message.delivery_tag
        if self._stopping.is_set():  # delivered while the cancel was on its way
            link.jobs.basic_reject(tag, requeue=True)
            return
        try:
            job = decode_job(message.body)
            reply_to = message.properties.get("reply_to")
            if not reply_to:
                raise ProtocolError("job message without reply_to: no one to answer")
            if job.zone != self.settings.zone:
                raise ProtocolError(
                    f"job {job.job_id} is for host {job.job.host.name!r} of zone {job.zone!r}, "
                    f"not this worker's zone {self.settings.zone!r}"
                )
        except ProtocolError as exc:
            self.refused += 1
            LOG.error("refused a job (it goes to the dead letters of its engine): %s", exc)
            link.jobs.basic_reject(tag, requeue=False)
            return
        link.unacked[tag] = False
        headers = message.headers or {}
        count = headers.get("x-delivery-count")
        started = time.monotonic()
        task = _Task(
            job, tag, link.number, reply_to, bool(message.delivery_info.get("redelivered")),
            count if isinstance(count, int) else None,
            started + job.job.timeout + WATCHDOG_MARGIN,
        )  # fmt: skip
        self._running.add(task)
        self._inbox.put(task)

    def _publish(self, link: _Link) -> None:
        """Send the replies the threads handed over, and any a lost connection left unsent:
        those for the same engine together in one message (protocol.bundle_results), the
        frames of many messages with each write (framing.Batch)."""
        while self._finished:
            self._outbox.append(self._finished.popleft())
        if not self._outbox:
            return
        batch, written = Batch(link.results), []  # added to the batch, not yet written
        try:
            while self._outbox:
                tasks = self._bundle()
                written.append(tasks)
                first = tasks[0]
                props = properties(content_type=CONTENT_TYPE, delivery_mode=2,
                                   correlation_id=first.message.job_id if len(tasks) == 1
                                   else None)  # fmt: skip
                batch.add("", first.reply_to, props,
                          bundle_results([task.body for task in tasks]))  # fmt: skip
                if batch.full or not self._outbox:
                    batch.flush()
                    for tasks in written:
                        link.published += 1
                        link.unconfirmed[link.published] = tasks
                    written.clear()
        except BaseException:
            self._outbox.extendleft(reversed([task for tasks in written for task in tasks]))
            raise

    def _bundle(self) -> list[_Task]:
        """The next replies of the outbox to send as one message: the first, and those after
        it for the same engine, RESULTS_PER_MESSAGE and RESULTS_BYTES at most."""
        outbox = self._outbox
        first = outbox.popleft()
        tasks, size = [first], len(first.body)
        while (outbox and len(tasks) < RESULTS_PER_MESSAGE
               and outbox[0].reply_to == first.reply_to
               and size + len(outbox[0].body) <= RESULTS_BYTES):  # fmt: skip
            task = outbox.popleft()
            tasks.append(task)
            size += len(task.body)
        return tasks

    def _confirmed(self, sequence: int, multiple: bool) -> None:
        """The broker has the results up to `sequence`: acknowledge their jobs."""
        link = self._link
        if link is None:
            return
        tasks = [task for sent in covered(link.unconfirmed, sequence, multiple) for task in sent]
        number, gone = link.number, _State.ABANDONED
        link.confirmed += [task.tag for task in tasks
                           if task.link == number and task.state is not gone]  # fmt: skip
        for task in tasks:
            self._running.discard(task)
            self.done += 1
            if self.on_reply is not None and task.reply is not None:
                try:
                    self.on_reply(task.reply)
                except Exception:  # a broken printer must not stop the worker
                    LOG.exception("reply callback failed")

    def _refused(self, sequence: int, multiple: bool) -> None:
        """The broker could not take these results (nack): send them again."""
        link = self._link
        if link is None:
            return
        tasks = [task for sent in covered(link.unconfirmed, sequence, multiple) for task in sent]
        LOG.warning("the broker refused %d results; sending them again", len(tasks))
        self._outbox.extend(tasks)

    def _pinged(self, _message: amqp.Message) -> None:
        now = time.monotonic()
        if now - self._last_ping >= _PING_GAP:
            self._last_ping = now
            self._next_beat = now  # beat on the loop's next turn, not inside this callback

    def _beat(self, link: _Link, state: str | None = None) -> None:
        settings = self.settings
        if state is None:
            state = "stopping" if self._stopping.is_set() else "running"
        beat = Beat(
            self.worker_id, self.hostname, os.getpid(), settings.zone, settings.max_workers,
            self.running, self.done, self._started_at, time.time(), settings.heartbeat_interval,
            state,
        )  # fmt: skip
        link.control.basic_publish(
            amqp.Message(beat.encode(), content_type=CONTENT_TYPE),
            exchange=settings.topology.workers_exchange,
        )
        self._next_beat = time.monotonic() + settings.heartbeat_interval

    # -- running jobs ---------------------------------------------------------------------

    def _add_thread(self) -> None:
        thread = threading.Thread(target=self._work, name="entropy-worker-job", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while (task := self._inbox.get()) is not None:
            try:
                result = runners.run_job(task.message.job, self.clock)
                answer = reply(task.message, result, self.worker_id, task.redelivered,
                               task.delivery_count)  # fmt: skip
                body = answer.encode()
            except Exception as exc:  # a bug: still answer, or the job would hang
                LOG.exception("job %s could not be answered", task.message.job_id)
                answer = reply(task.message, Result(Outcome.ERROR, f"worker: {exc!r}"),
                               self.worker_id, task.redelivered, task.delivery_count)  # fmt: skip
                body = answer.encode()
            with self._lock:
                if task.state is _State.REPLACED:
                    self.stuck -= 1
                    return  # answered by the watchdog; a new thread took this one's place
                if task.state is _State.ABANDONED:
                    continue
                task.state, task.reply, task.body = _State.FINISHED, answer, body
            self._finished.append(task)
            self._wakeup.wake()

    def _watchdog(self, now: float) -> None:
        """Answer `timeout` for jobs still running well past their timeout.

        Looks again at the earliest deadline, or within a second: a job that
        starts meanwhile has WATCHDOG_MARGIN past its timeout anyway.
        """
        running = [t for t in self._running if t.state is _State.RUNNING]
        self._next_watch = min([now + 1.0] + [t.deadline for t in running if t.deadline >= now])
        for task in [t for t in running if t.deadline < now]:
            with self._lock:
                if task.state is not _State.RUNNING:
                    continue
                task.state = _State.REPLACED
                self.stuck += 1
            job = task.message.job
            LOG.warning("%s on %s still running after its %gs timeout; answered timeout",
                        job.audit_name, job.host.name, job.timeout)  # fmt: skip
            summary = (
                f"still running after its {job.timeout:g}s timeout; a {job.script.kind} audit "
                "cannot be stopped, it keeps a worker thread until it returns"
            )
            stamp = self.clock.now()
            result = Result(Outcome.TIMEOUT, summary, started_at=stamp, finished_at=stamp)
            task.reply = reply(task.message, result, self.worker_id, task.redelivered,
                               task.delivery_count)  # fmt: skip
            task.body = task.reply.encode()
            self._outbox.append(task)
            self._add_thread()

    # -- stopping ---------------------------------------------------------------------------

    def _stop_consuming(self, link: _Link) -> None:
        if link.consumer_tag is not None:
            link.jobs.basic_cancel(link.consumer_tag)
            link.consumer_tag = None
        running = self.running
        if running:
            grace = self.settings.shutdown_grace
            self.on_notice(
                f"stopping: no new jobs; {running} running get {grace:g}s "
                "(stop again to end them now)"
            )
        else:
            self.on_notice("stopping: no new jobs; none running")

    def _abandon(self, link: _Link) -> None:
        """Past the grace period: kill what still runs and hand its jobs back to the broker."""
        left = []
        with self._lock:
            for task in self._running:
                if task.state is _State.RUNNING:
                    task.state = _State.ABANDONED
                    left.append(task)
        for task in left:
            self._running.discard(task)
            if task.link == link.number:
                link.reject(task.tag, requeue=True)
        self.requeued += len(left)
        if left:
            self.on_notice(f"grace period over: killed {len(left)} running jobs; "
                           "the broker hands them out again")  # fmt: skip
            runners.kill_all()

    def _finish(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            try:
                link.connection.release()
            except Exception:
                LOG.debug("closing the connection", exc_info=True)
        if self._running:  # stopped while the broker was out of reach
            with self._lock:
                for task in self._running:
                    task.state = _State.ABANDONED
            self.on_notice(f"stopping without the broker: killed {len(self._running)} running "
                           "jobs; the broker hands them out again")  # fmt: skip
            self.requeued += len(self._running)
            self._running.clear()
            runners.kill_all()
        for _ in self._threads:
            self._inbox.put(None)
        self._wakeup.close()

    def describe(self) -> str:
        return describe(self.settings.url)
