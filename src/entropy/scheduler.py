"""The central scheduler: keeps the time table, yields the audits due now.

It refreshes itself from the backend every refresh_interval (and when the
YAML files change): load, validate, sync the rows, rebuild the table. A
refresh that finds invalid definitions logs every problem and keeps the
previous table running. The engine takes batches from `wait_next()` and
reports each one back with `done()`, which puts the pair's next slot on
the table; the scheduler never runs anything itself.

The table is a heap of plain ints, (millisecond << 24 | pair index), so a
pair costs one int on the heap plus one id in an array: O(log n) per audit
and no scan of all pairs per tick.
"""

from __future__ import annotations

import gc
import heapq
import logging
import threading
from array import array
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .backends import Backend
from .clock import Clock
from .errors import BackendError, ValidationError
from .model import Catalog, Pair

LOG = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INDEX_BITS = 24  # up to 16.7 million pairs
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_GONE = -1  # in flight, but its pair left the definitions


def to_ms(t: datetime) -> int:
    return (t - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class Due:
    """One (audit, host) pair due for one slot."""

    row_id: int
    pair: Pair
    slot: datetime


class Scheduler:
    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        refresh_interval: float = 300.0,
        watch_interval: float = 2.0,
        refresh_in_background: bool = True,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.refresh_interval = timedelta(seconds=refresh_interval)
        self.watch_interval = timedelta(seconds=watch_interval)
        self.catalog: Catalog | None = None
        self.last_problem: Exception | None = None  # why the latest refresh was refused
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._refresh_requested = False
        self._heap: list[int] = []
        self._pairs: list[Pair] = []
        self._ids = array("q")
        self._out: dict[tuple[str, str], int] = {}  # yielded, not yet done: key -> index
        self._next_refresh = clock.now()
        self._next_watch = clock.now()
        self._signature: Hashable = None
        # Periodic refreshes run on a thread of their own so due audits keep
        # flowing meanwhile (a refresh takes ~1 s per 100,000 pairs). Tests on a
        # fake clock turn this off to keep refreshes in step with the clock.
        self.refresh_in_background = refresh_in_background
        self._refresher: threading.Thread | None = None

    # -- refreshing -----------------------------------------------------------

    def refresh(self) -> bool:
        """Reload, sync and rebuild. Raises on the first refresh; later ones keep the old table.

        Returns False when the definitions (or the state store) were refused.
        """
        now = self.clock.now()
        self._next_refresh = now + self.refresh_interval
        self._signature = self.backend.definitions_signature()
        try:
            catalog = self.backend.load()
            report = self.backend.sync(catalog, now)
            rows = self.backend.state.schedule_rows()
        except (ValidationError, BackendError) as exc:
            if self.catalog is None:
                raise
            self.last_problem = exc
            LOG.error("refresh refused, the previous schedule keeps running: %s", exc)
            return False
        self.last_problem = None
        self._rebuild(catalog, rows)
        LOG.info("refreshed: %s; %s", catalog.summary(), report)
        return True

    def _refresh_on_a_thread(self) -> None:
        if self._refresher is not None and self._refresher.is_alive():
            return
        self._next_refresh = self.clock.now() + self.refresh_interval

        def refresh_then_wake() -> None:
            try:
                self.refresh()
            except Exception:  # refresh() logs what it refuses; this is anything else
                LOG.exception("refresh failed; the previous schedule keeps running")
            self._wake.set()  # the table changed: recompute what to wait for

        self._refresher = threading.Thread(target=refresh_then_wake, name="entropy-refresh",
                                           daemon=True)  # fmt: skip
        self._refresher.start()

    def request_refresh(self) -> None:
        self._refresh_requested = True
        self._wake.set()

    def _rebuild(self, catalog: Catalog, rows: list) -> None:
        pairs = catalog.pairs
        index = {pair.key: i for i, pair in enumerate(pairs)}
        ids = array("q", bytes(8 * len(pairs)))
        heap: list[int] = []
        with self._lock:
            out = dict.fromkeys(self._out, _GONE)
            for row_id, audit_name, host, next_run, disabled, _status in rows:
                key = (audit_name, host)
                i = index.get(key)
                if i is None:
                    continue
                ids[i] = row_id
                if key in out:
                    out[key] = i  # its engine will hand it back through done()
                elif not disabled:
                    heap.append((to_ms(next_run) << _INDEX_BITS) | i)
            heapq.heapify(heap)
            self.catalog, self._pairs, self._ids, self._heap, self._out = (
                catalog,
                pairs,
                ids,
                heap,
                out,
            )
        # The catalog lives until the next refresh: keep the cyclic GC from walking
        # its million objects on every full collection while audits run.
        gc.freeze()

    def _refresh_due(self, now: datetime) -> bool:
        if self._refresh_requested or now >= self._next_refresh:
            self._refresh_requested = False
            return True
        if now >= self._next_watch:
            self._next_watch = now + self.watch_interval
            return self.backend.definitions_signature() != self._signature
        return False

    # -- handing out due audits -----------------------------------------------

    def next_batch(self, timeout: float | None = None) -> list[Due]:
        """Block until audits are due and return them all; [] on wake(), stop() or timeout.

        A wake() that came before this call returns at once, so a caller
        that decided to wait just as a worker freed up is not left waiting.
        """
        deadline = None if timeout is None else self.clock.now() + timedelta(seconds=timeout)
        while not self._stopped:
            if self._wake.is_set():
                self._wake.clear()
                return []
            now = self.clock.now()
            if self._refresh_due(now):
                if not self.refresh_in_background:
                    self.refresh()
                    continue
                self._refresh_on_a_thread()
            now_ms = to_ms(now)
            with self._lock:
                heap = self._heap
                if heap and heap[0] >> _INDEX_BITS <= now_ms:
                    return self._pop_due(now_ms)
                next_ms = heap[0] >> _INDEX_BITS if heap else None
            wake_at = min(self._next_refresh, self._next_watch)
            if next_ms is not None:
                wake_at = min(wake_at, from_ms(next_ms))
            if deadline is not None:
                if now >= deadline:
                    return []
                wake_at = min(wake_at, deadline)
            self.clock.wait(self._wake, max((wake_at - now).total_seconds(), 0.0))
        return []

    def wait_next(self, timeout: float | None = None) -> Iterator[list[Due]]:
        """Yield each batch of audits due at the same moment, until stop().

        With a timeout, the iteration also ends when nothing came due for
        that many seconds.
        """
        idle_until = None if timeout is None else self.clock.now() + timedelta(seconds=timeout)
        while not self._stopped:
            batch = self.next_batch(timeout)
            if batch:
                yield batch
                if timeout is not None:
                    idle_until = self.clock.now() + timedelta(seconds=timeout)
            elif idle_until is not None and self.clock.now() >= idle_until:
                return

    def _pop_due(self, now_ms: int) -> list[Due]:
        heap, pairs, ids, out = self._heap, self._pairs, self._ids, self._out
        batch = []
        while heap and heap[0] >> _INDEX_BITS <= now_ms:
            entry = heapq.heappop(heap)
            i = entry & _INDEX_MASK
            pair = pairs[i]
            out[pair.key] = i
            batch.append(Due(ids[i], pair, from_ms(entry >> _INDEX_BITS)))
        return batch

    def done(self, due: Due, finished_at: datetime, next_run: datetime | None = None) -> datetime:
        """Put the pair's next slot on the table; return it, for the state store.

        Fixed-rate: the next slot on the pair's grid after the one that ran
        and after `finished_at`, so missed slots coalesce into one run.
        `next_run` overrides that, e.g. with the time another engine stored.
        """
        if next_run is None:
            next_run = due.pair.schedule.timing.next_slot(due.slot, finished_at)
        entry_ms = to_ms(next_run)
        with self._lock:
            i = self._out.pop(due.pair.key, _GONE)
            if i == _GONE:
                return next_run
            earliest = not self._heap or entry_ms < self._heap[0] >> _INDEX_BITS
            heapq.heappush(self._heap, (entry_ms << _INDEX_BITS) | i)
        if earliest:
            self._wake.set()
        return next_run

    def wake(self) -> None:
        """Make a blocked next_batch() return at once (with [])."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    # -- looking in -------------------------------------------------------------

    def __len__(self) -> int:
        """Pairs on the table (not counting those in flight)."""
        return len(self._heap)

    def in_flight(self) -> int:
        return len(self._out)

    def next_due(self) -> datetime | None:
        with self._lock:
            return from_ms(self._heap[0] >> _INDEX_BITS) if self._heap else None
