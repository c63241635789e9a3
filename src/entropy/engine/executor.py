"""The executor seam: where the dispatcher's claimed audits go to be run.

The dispatcher claims due rows and hands each claimed (Due, Job) to an
Executor; whatever runs it, each outcome comes back through the Outlet the
engine gave the executor at start():

- ``outlet.finished(due, result)``: a result to record. The outlet puts the
  pair's next slot on the scheduler's table, queues the result for the
  recorder (the one recorder, whichever executor ran it; it may block while
  that queue is full) and wakes the dispatcher when there is room for a
  claim. Call it from any thread (a pool worker, a broker client's thread),
  once per row, with the result's slot, engine_id, audit_name and host set.
- ``outlet.finished_many([(due, result), ...])``: results that came in
  together (the broker's, one read from its socket), as finished() each
  but queued for the recorder with one operation and one wake-up.
- ``outlet.given_up(due)``: no result will come for this row (a bug while
  running it, a job the broker dead-lettered). Its lease is no longer
  renewed: it runs out and a heartbeat (this engine's or a peer's) puts the
  row back to `new`.

Leases are not the executor's business: the dispatcher adds every claimed
row to the engine's Leases, the heartbeat renews all of them while the
engine lives, and the recorder lets go of each once its result is stored.
So work out on a broker keeps its claim however long it takes, as long as
the engine beats.

An executor may also define ``window() -> int | None``: how many rows it
may hold at once (the broker executor: [executor] max_in_flight, since its
workers, not the engine's threads, run them). Without it, or None: the
dispatcher's window, two per max_workers plus recent throughput. And a
``flush_interval: float`` attribute: how long its results may wait for the
recorder to write them together, if not EngineSettings.flush_interval (the
broker executor's are shorter: see there). And a ``claim_linger: float``
attribute: how long a due audit may wait for the ones due just after it,
to be claimed with them (default 0: at once). A claim is a transaction;
where each audit costs the engine little else (the broker's, whose runs are
elsewhere), claims of one or two audits at a steady rate are most of it.

Implementations: WorkerPool (`executor = pool`, entropy.engine.pool), the
engine's own futurist threads; BrokerExecutor (`executor = broker`,
entropy.engine.broker_executor): jobs through
entropy.broker.client.JobClient to workers of each host's zone, results
from its on_result callback into outlet.finished.
"""

from __future__ import annotations

from typing import Protocol

from ..model import Result
from ..runners.base import Job
from ..scheduler import Due

Work = tuple[Due, Job]  # a claimed audit: its row, pair and slot, and what to run


class Outlet(Protocol):
    """What an executor hands outcomes to (the engine gives it one at start())."""

    def finished(self, due: Due, result: Result) -> None:
        """A result to record; from any thread, once per row handed over."""
        ...

    def finished_many(self, finished: list[tuple[Due, Result]]) -> None:
        """Results to record that came in together; from any thread."""
        ...

    def given_up(self, due: Due) -> None:
        """No result will come for this row: its lease runs out and it comes back."""
        ...


class Executor(Protocol):
    """Runs claimed audits; every method but submit() may be called from any thread."""

    stuck: int  # audits given up on that still hold a thread (the exit status mentions them)

    def start(self, outlet: Outlet) -> None:
        """Before the first submit(): open what it needs (threads, a connection)."""
        ...

    def submit(self, work: list[Work]) -> None:
        """Run these (the dispatcher's thread only); each ends in one outlet call."""
        ...

    def in_flight(self) -> int:
        """Rows handed over and not finished: what the claim window counts as taken."""
        ...

    def holds(self, row_id: int) -> bool:
        """Whether this row was handed over and is not finished."""
        ...

    def completed(self) -> int:
        """How many have finished since start (only grows): the claim window's rate."""
        ...

    def running(self) -> int:
        """How many are running right now (started, not finished): for the stop notice."""
        ...

    def stop_starting(self) -> None:
        """Stopping: start nothing more; what is handed over and not started is dropped
        (its claim goes back to `new` when the engine releases its rows). Called from a
        signal handler too: no lock, no I/O."""
        ...

    def abandon(self) -> None:
        """The grace period is over: end what still runs, and hand over nothing more."""
        ...

    def shutdown(self) -> None:
        """Close what start() opened, without waiting for stuck work."""
        ...
