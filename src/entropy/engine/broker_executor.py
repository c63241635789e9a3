"""The `broker` executor: an engine's claimed audits run as jobs on `entropy worker run`.

The engine claims due rows exactly as with its pool (a lease, fenced by
its engine id in the store); this executor (an Executor, see executor.py)
publishes each claimed audit as a job message to its host's zone queue
(entropy.broker.client.JobClient), keeps it in flight until its result
comes back on the engine's own result queue, and hands the result to the
outlet (outlet.finished: the same recorder as the pool's).

Fencing, on top of the store's (which refuses a result for a row the
engine no longer holds): a result is taken only for the job now in flight
for its row, by job id. Anything else, a result for a row this engine does
not hold, from an earlier run of the same engine id (its claim's epoch
says which), or one delivered twice, is fenced out and logged.

While a job is in flight its row stays among the engine's leases, so the
engine's heartbeat renews it however long the job waits for a worker.
Jobs are published with a TTL of the lease: if this engine dies, a job no
worker took by then dies unrun (a peer has taken the row back meanwhile)
instead of running late. A job that expired while this engine lives is
published again: its zone has no worker taking jobs, and its audits wait
there, not anywhere else. A watcher checks, every heartbeat, which zones
with jobs in flight have no consumer on their queue, and says so once per
outage.

A job out longer than it can be (a lease waiting for a worker, its timeout
running, and a margin) is lost on the broker: its queue deleted, its result
sent to a result queue that is gone, a worker that holds it and never
answers. The watcher answers it `error` for its slot, so its pair runs
again at the next; a result that still comes is fenced out (broker_lost).

Jobs that died otherwise are answered with an `error` result for their
slot (recorded: an operator sees it; the next slot tries again), not given
up (a rerun after the lease would kill its workers again): handed to
workers 1 + DELIVERY_LIMIT times and never finished (each died), refused
by a worker, or a zone whose queue is not Entropy's.

run() runs one job outside the schedule (a repair, its verify) the same
way, for the Repairer, and waits for its result (broker_runs.RemoteRuns).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from ..broker.client import JobClient
from ..broker.connection import CONNECTION_ERRORS, describe
from ..broker.protocol import Claim, JobMessage, ResultMessage
from ..broker.topology import Topology
from ..errors import EntropyError
from ..model import Outcome, Result
from ..runners.base import Job
from ..scheduler import Due
from .broker_lost import longest, lost_result
from .broker_runs import RemoteRuns, death
from .broker_zones import ZoneWatcher
from .executor import Outlet, Work

LOG = logging.getLogger(__name__)

RESULT_QUEUE_LEASES = 10  # the result queue outlives its engine by this many leases
# Seconds results may wait for the recorder to write them together. Not the pool's 50 ms:
# a result here has already waited for a worker's round trip, and it comes at a few
# thousand a second at most, a read of the socket's worth at a time.
RESULTS_FLUSH_INTERVAL = 0.005
# Seconds a due audit waits for the ones due just after it, to be claimed together: at a
# steady 1,000/s, claims of one or two rows were most of the engine's CPU (bench broker).
CLAIM_LINGER = 0.005


@dataclass(slots=True)
class _Flight:
    job_id: str
    due: Due
    job: Job
    published: float  # monotonic: first published (how long its audit has waited)
    sent: float  # monotonic: this job id published (again, after a TTL: see _dead)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str
    topology: Topology
    engine_id: str
    lease: float  # seconds: the jobs' TTL, and (x RESULT_QUEUE_LEASES) the result queue's
    max_in_flight: int = 2000  # claimed audits out on the broker at most
    watch_interval: float = 5.0  # seconds between checks of the zones' consumers


class BrokerExecutor:
    """An Executor: claimed audits published as jobs, their results taken back; what is not
    this engine's (any more) fenced out."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.epoch = int(time.time() * 1000) % 2**31  # this run of the engine id, for the logs
        self.client = JobClient(
            settings.url, settings.engine_id, self._result, self._dead, settings.topology,
            result_expiry=settings.lease * RESULT_QUEUE_LEASES, on_drained=self._drained,
        )  # fmt: skip
        self._received: list[tuple[Due, Result]] = []  # results of this read (client thread)
        self.stuck = 0  # nothing here holds a thread of the engine
        self.flush_interval = RESULTS_FLUSH_INTERVAL  # the recorder's window for its results
        self.claim_linger = CLAIM_LINGER  # the dispatcher's, for claims of several rows
        self._outlet: Outlet | None = None
        self._flight: dict[int, _Flight] = {}  # row id -> the job out for it
        self._claim = Claim(settings.engine_id, self.epoch)
        self._run_id, self._count = uuid.uuid4().hex[:16], itertools.count()
        self.remote = RemoteRuns(self.client, self._claim, settings.lease)
        self._lock = threading.Lock()
        self._completed = 0
        self.fenced = 0  # results fenced out
        self.republished = 0  # jobs published again after waiting a lease for a worker
        self._stop = threading.Event()  # stopping: jobs that expire are not published again
        self.lost = 0  # jobs answered `error` after waiting longer than they can (sweep)
        self._swept_on = 0  # the client's connection at the last sweep (0: none)
        self.zones = ZoneWatcher(settings.url, settings.topology, self.waiting_by_zone,
                                 settings.watch_interval, self.sweep)  # fmt: skip

    # -- the Executor seam ----------------------------------------------------------

    def start(self, outlet: Outlet) -> None:
        """Connect (an EntropyError naming the broker if it cannot) and take results."""
        self._outlet = outlet
        try:
            self.client.start()
        except CONNECTION_ERRORS as exc:
            raise EntropyError(
                f"[executor] executor = broker: cannot reach {describe(self.settings.url)}: {exc}"
            ) from None
        self.zones.start()

    def window(self) -> int | None:
        """[executor] max_in_flight: workers run them, the pool's rate-based window is moot."""
        return self.settings.max_in_flight

    def submit(self, work: list[Work]) -> None:
        """Publish each claimed audit to its host's zone."""
        messages, now = [], time.monotonic()
        with self._lock:
            for due, job in work:
                message = self._message(due, job)
                self._flight[due.row_id] = _Flight(message.job_id, due, job, now, now)
                messages.append(message)
        self.client.publish(messages, ttl=self.settings.lease)

    def in_flight(self) -> int:
        return len(self._flight)

    running = in_flight  # jobs out on the broker (waiting for a worker or running on one)

    def holds(self, row_id: int) -> bool:
        return row_id in self._flight

    def completed(self) -> int:
        return self._completed

    def stop_starting(self) -> None:
        """Published jobs cannot be called back: those out get the grace period."""
        self._stop.set()  # no more republishing of jobs that waited a lease

    def abandon(self) -> None:
        """Past the grace period: their rows go back to `new`; late results are fenced out."""
        with self._lock:
            self._flight.clear()

    def shutdown(self) -> None:
        """Disconnect, once the repairs waiting on run() are answered (a lease at most)."""
        self._stop.set()
        deadline = time.monotonic() + self.settings.lease
        while self.remote.waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.close()
        self.zones.stop()

    def run(self, job: Job) -> Result:
        """Run one job outside the schedule (a repair, its verify) on a worker of its host's
        zone, and wait for its result (see RemoteRuns)."""
        return self.remote.run(job)

    def wait_margin(self) -> float:
        """Seconds a run() may wait for a worker besides the job's timeout."""
        return self.remote.margin

    def waiting_by_zone(self, older_than: float = 0.0) -> dict[str, int]:
        """Jobs in flight per zone (published more than older_than seconds ago)."""
        before = time.monotonic() - older_than
        with self._lock:
            return dict(Counter(flight.job.host.zone for flight in self._flight.values()
                                if flight.published <= before))  # fmt: skip

    def sweep(self, now: float | None = None) -> None:
        """Answer `error` for the jobs out longer than they can be (broker_lost); none while
        the broker is out of reach, and their time starts again once it is back."""
        now = time.monotonic() if now is None else now
        connection, lease = self.client.connections, self.settings.lease
        with self._lock:
            if not connection or connection != self._swept_on:  # out of reach, or back
                self._swept_on = connection
                for flight in self._flight.values():
                    flight.sent = max(flight.sent, now)
                return
            lost = [self._flight.pop(row_id) for row_id, flight in list(self._flight.items())
                    if now - flight.sent > longest(flight.job, lease)]  # fmt: skip
        for flight in lost:
            self.lost += 1
            self._finish(
                flight.due,
                lost_result(
                    flight.job, flight.job_id, lease, flight.due.slot, self.settings.engine_id
                ),
            )

    # -- the client's thread --------------------------------------------------------

    def _message(self, due: Due, job: Job) -> JobMessage:
        return JobMessage(self._job_id(), job, self._claim, due.row_id, due.slot)

    def _job_id(self) -> str:
        """Unique: this run's random half, then a count (uuid4 per job costs an os.urandom)."""
        return f"{self._run_id}{next(self._count):016x}"

    def _take(self, row_id: int | None, job_id: str) -> _Flight | None:
        if row_id is None:
            return None
        with self._lock:
            flight = self._flight.get(row_id)
            if flight is None or flight.job_id != job_id:
                return None
            return self._flight.pop(row_id)

    def _result(self, reply: ResultMessage) -> None:
        if reply.row_id is None and self.remote.answer(reply.job_id, reply.to_result()):
            return
        flight = self._take(reply.row_id, reply.job_id)
        if flight is None:
            self._fence(reply)
            return
        result = reply.to_result()
        result.slot, result.engine_id = flight.due.slot, self.settings.engine_id
        self._completed += 1  # this thread only
        self._received.append((flight.due, result))  # handed on by _drained, with the others

    def _drained(self) -> None:  # after a read of the connection: its results, together
        if self._received:
            received, self._received = self._received, []
            assert self._outlet is not None
            self._outlet.finished_many(received)

    def _finish(self, due: Due, result: Result) -> None:
        self._completed += 1  # the client's thread, or the watcher's (a count for a rate)
        assert self._outlet is not None
        self._outlet.finished(due, result)

    def _fence(self, reply: ResultMessage) -> None:
        self.fenced += 1
        _log_fenced(reply, self.settings.engine_id, self.epoch, reply.row_id in self._flight)

    def _dead(self, message: JobMessage, reason: str) -> None:
        if message.row_id is None:  # a run(): its caller gets the reason
            self.remote.dead(message, reason)
            return
        with self._lock:
            flight = self._flight.get(message.row_id) if message.row_id is not None else None
            if flight is None or flight.job_id != message.job_id:
                return  # not ours any more: nothing to answer
            if reason == "expired" and not self._stop.is_set():
                # No worker of its zone took it in a lease: it waits there, published again.
                again = self._message(flight.due, flight.job)
                flight.job_id, flight.sent = again.job_id, time.monotonic()
                self.republished += 1
            else:
                again = None
                del self._flight[message.row_id]
        if again is not None:
            self.client.publish([again], ttl=self.settings.lease)
            return
        assert self._outlet is not None
        if reason == "expired":  # stopping: never ran; its row goes back to `new`
            self._outlet.given_up(flight.due)
            return
        summary = death(message, reason, self.settings.lease)
        LOG.error("%s on %s: the job %s", message.job.audit_name, message.job.host.name, summary)
        result = Result(Outcome.ERROR, f"the job was {summary}", slot=flight.due.slot,
                        engine_id=self.settings.engine_id, audit_name=message.job.audit_name,
                        host=message.job.host.name)  # fmt: skip
        self._finish(flight.due, result)


def _log_fenced(reply: ResultMessage, engine_id: str, epoch: int, row_busy: bool) -> None:
    """Say why a result was fenced out: whose claim it carries, or what became of its row."""
    slot = reply.slot.isoformat() if reply.slot else "-"
    if reply.claim.engine_id != engine_id or reply.claim.epoch != epoch:
        why = (f"its claim (engine {reply.claim.engine_id}, epoch {reply.claim.epoch}) is "
               f"not this engine's (epoch {epoch})")  # fmt: skip
    elif row_busy:
        why = "another job is out for that row now"
    else:
        why = "this engine no longer holds the row (recorded already, or given back)"
    LOG.warning(
        "fenced out a late result: %s on %s slot %s row %s job %s from worker %s (%s): %s",
        reply.audit, reply.host, slot, reply.row_id, reply.job_id, reply.worker_id,
        reply.result.outcome.value, why,
    )  # fmt: skip
