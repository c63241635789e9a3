"""The central scheduler: keeps the time table, yields the audits due now.

It refreshes itself from the backend every refresh_interval (and when the
YAML files change): load, validate, sync the rows, rebuild the table. A
refresh that finds invalid definitions logs every problem and keeps the
previous table running. The engine takes batches from `wait_next()` and
reports each one back with `done()`, which puts the pair's next slot on
the table; the scheduler never runs anything itself.

The table (timetable.TimeTable) keeps (millisecond, pair index) entries as
8-byte numbers in one array per second of due time, and the pairs are kept
as indexes too (timetable.PairTable): a pair costs three array slots, about
24 bytes, and no Python object until it falls due. O(1) to put a pair back,
a sorted slice to take what is due, no scan of all pairs per tick.
"""

from __future__ import annotations

import gc
import logging
import pickle
import threading
import time
from array import array
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .backends import Backend
from .clock import Clock
from .errors import BackendError, ValidationError
from .gcpause import gc_paused
from .memory import give_back_free_memory
from .model import Catalog, Pair
from .removal import RemovalRefused
from .timetable import PairTable, TimeTable

LOG = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
COMPACT_FROM = 50_000  # pairs; below this the memory a refresh leaves is small
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
        actor: str = "an engine's refresh",
    ) -> None:
        self.backend = backend
        self.actor = actor  # who syncs, remembered with the operator disables a sync removes
        self.clock = clock
        self.refresh_interval = timedelta(seconds=refresh_interval)
        self.watch_interval = timedelta(seconds=watch_interval)
        self._catalog_lock = threading.Lock()  # held while the catalog is re-made
        self._catalog: Catalog | None = None
        self.last_problem: Exception | None = None  # why the latest refresh was refused
        self._refused_since: datetime | None = None  # when the refusals now running began
        self._refusal_text = ""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._refresh_requested = False
        self._table = TimeTable()
        self._pairs: Sequence[Pair] = []
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
        # No cyclic GC during the refresh: a full collection over the new catalog's
        # objects holds the GIL for a few hundred ms (audits due meanwhile wait), and
        # _rebuild/_compact freeze them anyway. Nothing here makes cycles to collect.
        with gc_paused():
            try:
                catalog = self.backend.load()
                report = self.backend.sync(catalog, now, previous=self.catalog, actor=self.actor)
                rows = self.backend.state.schedule_rows()
            except (ValidationError, BackendError, RemovalRefused) as exc:
                if self.catalog is None:
                    raise
                self._log_refusal(exc, now)
                return False
            self.last_problem = None
            self._refused_since = None
            self._rebuild(catalog, rows)
            del catalog, rows
            self._compact()
        LOG.info("refreshed: %s; %s", self.catalog.summary() if self.catalog else "", report)
        for line in report.put_back:
            LOG.warning("an operator's disable came back with its pair: %s", line)
        return True

    def _log_refusal(self, exc: Exception, now: datetime) -> None:
        """At ERROR on every refused refresh; in full once, then one line while it lasts."""
        text = str(exc)
        same = self.last_problem is not None and text == self._refusal_text
        self.last_problem, self._refusal_text = exc, text
        if same and self._refused_since is not None:
            headline = exc.headline() if isinstance(exc, RemovalRefused) else text
            LOG.error("refresh still refused since %s, the previous schedule keeps running: %s",
                      self._refused_since.isoformat(timespec="seconds"),
                      headline.splitlines()[0].rstrip(":"))  # fmt: skip
            return
        self._refused_since = now
        LOG.error("refresh refused, the previous schedule keeps running: %s", text)

    @property
    def catalog(self) -> Catalog | None:
        """The definitions the table was built from: hosts and scripts for the jobs."""
        with self._catalog_lock:
            return self._catalog

    @catalog.setter
    def catalog(self, catalog: Catalog | None) -> None:
        with self._catalog_lock:
            self._catalog = catalog

    def _compact(self) -> None:
        """Re-make the catalog in fresh memory, once the refresh's garbage is gone.

        The hosts were made while loading, among millions of short-lived
        objects, and each one left alive pins an arena (1 MiB) of Python's
        allocator that is otherwise free: at a million pairs that was 600
        bytes per pair of RSS for 80 bytes of hosts (bench memory). So the
        catalog is pickled, dropped, and loaded again: the old arenas empty
        and go back to the OS, and the copy fills a few new ones. The copy
        must not be made while the old one lives, or it fills the holes
        among the old hosts instead, so `catalog` readers and the table wait
        while it is loaded (see docs/performance.md for how long). Small
        catalogs are left alone.
        """
        catalog = self.catalog
        if catalog is None or len(catalog.pairs) < COMPACT_FROM:
            return
        try:  # no lock needed: nothing changes a catalog once it is built
            blob = pickle.dumps(catalog, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # e.g. a backend's odd host vars: keep it as it is
            LOG.debug("catalog not compacted: %s", exc)
            return
        started = time.monotonic()
        with self._catalog_lock:
            if self._catalog is not catalog:
                return  # replaced meanwhile
            del catalog
            with self._lock:  # the pairs go too: due audits wait for the copy
                self._catalog = self._pairs = None  # type: ignore[assignment]
                copy = pickle.loads(blob)
                del blob
                self._catalog, self._pairs = copy, copy.pairs
        LOG.debug("catalog re-made in %.3f s", time.monotonic() - started)
        del copy
        gc.freeze()  # see _rebuild
        give_back_free_memory()

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
        entries: list[tuple[int, int]] = []
        # Keep the pairs as indexes, not a Pair object each (see timetable).
        compact = PairTable.of(pairs, catalog.hosts, catalog.schedules)
        with self._catalog_lock, self._lock:  # always in this order
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
                    entries.append((to_ms(next_run), i))
            del index
            table = TimeTable(entries)
            del entries
            if compact is not None:
                catalog.pairs = compact  # type: ignore[assignment]
            self._catalog, self._pairs, self._ids, self._table, self._out = (
                catalog,
                catalog.pairs,
                ids,
                table,
                out,
            )
        del pairs, rows, compact
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
                next_ms = self._table.first_ms()
                if next_ms is not None and next_ms <= now_ms:
                    return self._pop_due(now_ms)
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
        pairs, ids, out = self._pairs, self._ids, self._out
        batch = []
        for ms, i in self._table.pop_due(now_ms):
            pair = pairs[i]
            out[pair.key] = i
            batch.append(Due(ids[i], pair, from_ms(ms)))
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
            first = self._table.first_ms()
            earliest = first is None or entry_ms < first
            self._table.push(entry_ms, i)
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
        return len(self._table)

    def in_flight(self) -> int:
        return len(self._out)

    def next_due(self) -> datetime | None:
        with self._lock:
            first = self._table.first_ms()
            return None if first is None else from_ms(first)
