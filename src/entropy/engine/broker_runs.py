"""Jobs outside the schedule (a repair, its verify) run on a worker of their host's zone.

RemoteRuns publishes one such job (no row, no slot) with a JobClient and
waits for what comes back for it: its result; its death on the broker (not
taken by a worker of its zone within its TTL, refused, ...: an `error`
result saying so, see death()); or nothing within the job's timeout + a
margin (a `timeout` result saying so; a late one is dropped). The broker
executor's Repairer runs through it on the engine's own client.

OneOffRuns is the same for a process that is no engine (`entropy result
submit`, the API's submit route): a short-lived client of its own,
connected at its first job (a submit whose repairs are all held never
touches the broker), with a result queue named after the submitter and
unique to this process, closed at the end.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import dataclass

from ..broker.client import JobClient
from ..broker.connection import CONNECTION_ERRORS, BrokerError, describe
from ..broker.protocol import Claim, JobMessage, ResultMessage
from ..broker.topology import DELIVERY_LIMIT, Topology
from ..model import Outcome, Result
from ..runners.base import Job
from .broker_lost import WORKER_MARGIN

LOG = logging.getLogger(__name__)

_DEATHS = {
    "delivery_limit": "handed to a worker of zone {zone} {times} times and never finished "
    "(each worker died or was stopped while running it); not run again for this slot",
    "rejected": "refused by a worker of zone {zone} (a message it cannot read, or for "
    "another zone); see that worker's log",
    "expired": "not taken by any worker of zone {zone} within {lease:g}s (no live worker "
    "there?); not run",
    "refused": "zone {zone}'s queue on the broker is not Entropy's (other arguments); "
    "see the engine's log",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@:-]+")  # kept out of a queue name (rabbitmqctl, logs)


def death(message: JobMessage, reason: str, lease: float) -> str:
    """What became of a job the broker dead-lettered, for reason (RabbitMQ's x-death)."""
    text = _DEATHS.get(reason, "died on the broker ({reason}) in zone {zone}")
    return text.format(zone=message.zone, times=1 + DELIVERY_LIMIT, reason=reason, lease=lease)


@dataclass(slots=True)
class _Call:
    """A run() waiting for its result."""

    done: threading.Event
    result: Result | None = None


class RemoteRuns:
    """Jobs outside the schedule (repairs, verifies) run on workers, each waited for."""

    def __init__(self, client: JobClient, claim: Claim, lease: float) -> None:
        self.client, self.claim, self.lease = client, claim, lease
        self.margin = lease + WORKER_MARGIN  # waited for besides a job's timeout
        self._calls: dict[str, _Call] = {}  # job id -> a run() waiting
        self._lock = threading.Lock()

    def waiting(self) -> int:
        return len(self._calls)

    def run(self, job: Job) -> Result:
        """Publish the job, wait for its result. None within its timeout + margin (no live
        worker in the zone, say): a `timeout` result saying so (a late one is fenced out)."""
        message = JobMessage(uuid.uuid4().hex, job, self.claim, context={"run": "repair"})
        call = _Call(threading.Event())
        with self._lock:
            self._calls[message.job_id] = call
        self.client.publish([message], ttl=self.lease)
        wait = job.timeout + self.margin
        if not call.done.wait(wait):
            with self._lock:
                self._calls.pop(message.job_id, None)
            if call.result is None:
                return Result(
                    Outcome.TIMEOUT,
                    f"no result from a worker of zone {job.host.zone} "
                    f"within {wait:g}s (no live worker there, or the job was lost)",
                )
        assert call.result is not None
        return call.result

    def answer(self, job_id: str, result: Result) -> bool:
        """Hand a run()'s result to its caller; False if none waits for it."""
        with self._lock:
            call = self._calls.pop(job_id, None)
        if call is None:
            return False
        call.result = result
        call.done.set()
        return True

    def dead(self, message: JobMessage, reason: str) -> bool:
        """Answer a run() whose job died on the broker with an `error` saying how."""
        summary = death(message, reason, self.lease)
        return self.answer(message.job_id, Result(Outcome.ERROR, f"the job was {summary}"))


class OneOffRuns:
    """RemoteRuns on a connection of this process's own, for a process that is no engine.

    `who` names the result queue (made unique: two submits by the same user at once must
    not take each other's results) and the claim the workers echo. run() never raises
    for the broker: out of reach, or refusing us, it answers `error` naming it (its
    password hidden), so the claimed repair is recorded as not run, not left running.
    """

    def __init__(self, url: str, topology: Topology, who: str, lease: float) -> None:
        self.url = url
        self.client_id = f"{_UNSAFE.sub('-', who)[:100]}.{uuid.uuid4().hex[:8]}"
        self._connected = False
        self._failure: str | None = None
        self._lock = threading.Lock()
        # The queue outlives this process by a margin only: nobody waits on it after.
        self.client = JobClient(url, self.client_id, self._result, self._dead, topology,
                                result_expiry=lease + WORKER_MARGIN)  # fmt: skip
        # Epoch 0: the id is this process's alone, there is no earlier run of it to fence.
        self.remote = RemoteRuns(self.client, Claim(self.client_id), lease)
        self.margin = self.remote.margin  # a run waits at most a job's timeout + this

    def run(self, job: Job) -> Result:
        """Run the job on a worker of its host's zone (see RemoteRuns.run)."""
        failure = self._connect()
        if failure is not None:
            return Result(Outcome.ERROR, failure)
        return self.remote.run(job)

    def close(self) -> None:
        """Disconnect (a few seconds at most), if connected."""
        with self._lock:
            connected, self._connected = self._connected, False
            self._failure = self._failure or "not run: its connection to the broker is closed"
        if connected:
            self.client.close()

    def _connect(self) -> str | None:
        """Connect at the first run; what stops it (the same for every run after), or None."""
        with self._lock:
            if not self._connected and self._failure is None:
                try:
                    self.client.start()
                    self._connected = True
                except CONNECTION_ERRORS as exc:
                    self._failure = f"not run: cannot reach {describe(self.url)}: {exc}"
                except BrokerError as exc:
                    self._failure = f"not run: {exc}"
                if self._failure is not None:
                    LOG.error("repairs on workers: %s", self._failure)
            return self._failure

    def _result(self, reply: ResultMessage) -> None:
        if not self.remote.answer(reply.job_id, reply.to_result()):
            LOG.warning("dropped a late result: %s on %s job %s from worker %s (%s)",
                        reply.audit, reply.host, reply.job_id, reply.worker_id,
                        reply.result.outcome.value)  # fmt: skip

    def _dead(self, message: JobMessage, reason: str) -> None:
        self.remote.dead(message, reason)
