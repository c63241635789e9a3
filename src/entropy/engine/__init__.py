"""The engine: claims due audits, has them run, records the results.

It takes batches from the scheduler, claims them in the state store (new
-> processing, with a lease), hands them to an executor, and writes each
result through a recorder thread in batches (processing -> processed,
next_run advanced, one history row each). It claims no more than the
executor can start soon; the rest wait as `new`. Recorded results are
handed on (printer, events, repairs) in one place, the publisher.

The parts, each a module owning its state behind one lock or one queue,
each testable alone:

- dispatcher: due rows not yet claimed, the claim window, claim retries
  (the engine loop's thread only);
- executor: the seam claimed audits go through (executor.py says what an
  executor does); pool.WorkerPool, the futurist pool and its watchdog, is
  `executor = pool`;
- results: the bounded queue from the executor to the recorder;
- recorder: batched writes, retries, one-by-one fallback, drops; pruning;
- publisher: where each recorded result goes next;
- leases: the rows this engine holds, which the heartbeat renews;
- heartbeat: the registry row, lease renewal, taking back expired leases,
  stops asked through the store (Registration: the registry row itself);
- shutdown: the stop request and the grace period;
- metrics: what the parts report for `engine run --metrics-port`;
- core: Engine, wiring them, its loop (run) and one pass of it (run_once).

State store errors are typed (entropy.errors): what can recover
(StoreUnavailable, StoreConflict) is retried with backoff; what cannot
(StorageFailure, SchemaOutOfDate, anything else) is not retried for ever:
claims skip to the next slot, results are tried a few times, then one by
one, and those the store still refuses are logged with their content and
released. Results wait in a bounded queue: when it is full the workers
pause (logged) until the recorder makes room.

Several engines may share one state store. Each registers in it and beats
a heartbeat: its leases are renewed while it lives, expired ones (of an
engine that died) are taken back, and a stop asked through the store
(`entropy engine stop`) stops it as SIGTERM would.

Time: deadlines, rates, log repeats, pruning and the grace period are read
on the injected clock (now(), monotonic()). The pace of threads waiting on
each other or on a real store (the result queue's flush wait, backoffs,
the heartbeat's and the watchdog's period) is real time.

No process-wide setting is changed here (the GC's: entropy.gctuning, by
the program that owns the process).
"""

from .core import Engine
from .executor import Executor, Outlet, Work
from .heartbeat import Heartbeat
from .metrics import EngineMetrics
from .pool import WorkerPool
from .publisher import ResultCallback
from .settings import EngineSettings
from .shutdown import NoticeCallback

__all__ = ["Engine", "EngineMetrics", "EngineSettings", "Executor", "Heartbeat",
           "NoticeCallback", "Outlet", "ResultCallback", "Work", "WorkerPool"]  # fmt: skip
