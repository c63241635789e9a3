"""The central scheduler: keeps the time table, yields the audits due now.

It refreshes itself from the backend every refresh_interval (and when the
definitions change). A refresh that finds invalid definitions logs every
problem and keeps the previous table running. The engine takes batches
from `wait_next()` and reports each one back with `done()`, which puts the
pair's next slot on the table; the scheduler never runs anything itself.

Two kinds of refresh (docs/performance.md has their costs):

- incremental, the usual one: the whole catalog is loaded and validated
  (a definitions source re-reads only what changed), compared with the
  previous one (catalogdiff.changed_scope: the audits and hosts whose
  definitions changed), and only the rows of that scope are synced, read
  back and re-timed in place. Nothing changed: no database work at all.
- full, at start-up and every full_resync_interval: every row is synced
  (so rows removed or edited by other hands are put right) and the table
  is built anew off the lock, then swapped in.

In-flight audits, attempt counters and leases survive both: a sync never
touches a row's status, claim or attempts, and a pair's index stays put.

The table (timetable.TimeTable) keeps (millisecond, pair index) entries as
8-byte numbers in one array per second of due time; the pairs are indexes
too (timetable.LivePairs). `_when[i]` is the ms pair i is on the table for
(or NOT_ON): re-timing a pair pushes a new entry and leaves the old one to
be skipped when it comes up, so nothing is ever searched for in the table.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections.abc import Callable, Collection, Hashable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import resync
from .backends import Backend
from .backends.base import ScheduleRow
from .catalogdiff import SyncScope, changed_scope, pairs_in
from .clock import Clock
from .errors import BackendError, ValidationError
from .memory import give_back_free_memory
from .model import Catalog, Pair, Schedule, SyncReport
from .progress import counted, progress_on_terminal
from .removal import RemovalRefused
from .timetable import LivePairs, TimeTable

LOG = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_GONE = -1  # in flight, but its pair left the definitions
NOT_ON = -(1 << 62)  # _when[i] of a pair not on the table (in flight, disabled, dead)
Key = tuple[str, str]


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
        full_resync_interval: float = 3600.0,
        first_load_progress: bool = False,
        full_resync_in_child: bool | None = None,
        around_first_load: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """first_load_progress: show the first refresh's progress on a terminal (the CLI).

        around_first_load: a context the first refresh runs in, as the program that
        makes the scheduler chooses (`entropy engine run`: gctuning.collector_paused).

        full_resync_in_child: run the full re-syncs after the first in a process of
        their own (entropy.resync); by default when refreshes run in the background.
        """
        self.backend = backend
        self.actor = actor  # who syncs, remembered with the operator disables a sync removes
        self.clock = clock
        self.refresh_interval = timedelta(seconds=refresh_interval)
        self.watch_interval = timedelta(seconds=watch_interval)
        self.full_resync_interval = timedelta(seconds=full_resync_interval)
        self._catalog_lock = threading.Lock()  # held while the catalog is swapped
        self._catalog: Catalog | None = None
        self.last_problem: Exception | None = None  # why the latest refresh was refused
        self.last_refresh: str = ""  # "full" or "incremental", with what it touched
        self._refused_since: datetime | None = None  # when the refusals now running began
        self._refusal_text = ""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._refresh_requested = False
        self._full_requested = False
        self._table = TimeTable()
        self._live = LivePairs()
        self._when = array("q")
        self._count = 0  # pairs on the table (the table also holds stale entries)
        self._out: dict[Key, int] = {}  # yielded, not yet done: key -> index
        self._moved: dict[Key, int] | None = None  # done() while a refresh reads rows
        self._disabled: set[int] = set()  # ids of the rows read as disabled
        self._next_refresh = clock.now()
        self._next_full = clock.now()
        self._next_watch = clock.now()
        self._signature: Hashable = None
        # Periodic refreshes run on a thread of their own so due audits keep
        # flowing meanwhile. Tests on a fake clock turn this off to keep
        # refreshes in step with the clock.
        self.refresh_in_background = refresh_in_background
        self._refresher: threading.Thread | None = None
        self._refreshing = threading.Lock()  # one refresh (or retime) at a time
        self._retime_after: set[int] = set()  # rows to re-read once a refresh ends
        self.first_load_progress = first_load_progress
        self.around_first_load = around_first_load or nullcontext
        self.full_resync_in_child = (
            refresh_in_background if full_resync_in_child is None else full_resync_in_child
        )

    # -- refreshing -----------------------------------------------------------

    def refresh(self, full: bool | None = None) -> bool:
        """Reload, sync and re-time. Raises on the first refresh; later ones keep the old table.

        full None: full at the first refresh and once full_resync_interval has
        passed since the last full one, else incremental. Returns False when
        the definitions (or the state store) were refused.
        """
        with self._refreshing:
            now = self.clock.now()
            self._next_refresh = now + self.refresh_interval
            if full is None:
                full = self._full_requested or self.catalog is None or now >= self._next_full
            self._full_requested = False
            self._signature = self.backend.definitions_signature()
            report: SyncReport | None  # None: an incremental refresh found nothing changed
            try:
                if self.catalog is None:
                    with (progress_on_terminal(quiet=not self.first_load_progress),
                          self.around_first_load()):  # fmt: skip
                        report = self._full(now)
                elif not full:
                    report = self._incremental(now)
                elif self.full_resync_in_child:
                    report = self._full_in_child(now)
                else:
                    report = self._full(now)
            except (ValidationError, BackendError, RemovalRefused) as exc:
                with self._lock:
                    self._moved = None
                if self.catalog is None:
                    raise
                self._log_refusal(exc, now)
                return False
            finally:
                self._retime_later()
        self.last_problem = None
        self._refused_since = None
        LOG.info("refreshed (%s): %s; %s", self.last_refresh,
                 self.catalog.summary() if self.catalog else "", report)  # fmt: skip
        for line in report.put_back if report is not None else ():
            LOG.warning("an operator's disable came back with its pair: %s", line)
        return True

    def _full(self, now: datetime) -> SyncReport:
        """Sync every row, build a new table off the lock, swap it in."""
        started = time.monotonic()
        self._track_moves()
        catalog = self.backend.load()
        # The time the rows are read, not the refresh's start: a row recorded since has a
        # next_run up to an interval past now, which an older `now` takes for old timing.
        now = self.clock.now()
        report = self.backend.sync(catalog, now, previous=self.catalog, actor=self.actor)
        built = self._build(catalog, self.backend.state.schedule_rows())
        live, index, when, table, count, disabled_ids = built
        del built

        def find(key: Key) -> int | None:
            hosts = index.get(key[0])
            return hosts.get(key[1]) if hosts is not None else None

        with self._catalog_lock, self._lock:  # always in this order
            for key, ms in (self._moved or {}).items():
                i = find(key)
                if i is not None and key not in self._out and when[i] != ms:
                    count += when[i] == NOT_ON
                    when[i] = ms
                    table.push(ms, i)
            out = {}
            for key in self._out:
                i = find(key)
                out[key] = _GONE if i is None else i
                if i is not None and when[i] != NOT_ON:
                    when[i], count = NOT_ON, count - 1
            self._catalog, self._live, self._when, self._table = catalog, live, when, table
            self._out, self._count, self._moved = out, count, None
            self._disabled = disabled_ids
        self._next_full = now + self.full_resync_interval
        self.last_refresh = f"full, {time.monotonic() - started:.2f}s"
        del catalog, live, table
        give_back_free_memory()
        return report

    @staticmethod
    def _build(catalog: Catalog, rows: list[ScheduleRow]) -> tuple[
        LivePairs, dict[str, dict[str, int]], array, TimeTable, int, set[int]
    ]:  # fmt: skip
        """A new table for the catalog from every row: pairs, their index, times, disabled."""
        live = LivePairs.of(catalog.pairs)
        index = live.index()
        ids = live.ids
        when = array("q", (NOT_ON,)) * len(live)
        disabled_ids = set()
        for row_id, audit_name, host, next_run, disabled, _status in counted(
            rows, "building the time table", len(rows)
        ):
            hosts = index.get(audit_name)
            i = hosts.get(host) if hosts is not None else None
            if i is None:
                continue
            ids[i] = row_id
            if disabled:
                disabled_ids.add(row_id)
            else:
                when[i] = to_ms(next_run)
        del rows
        table = TimeTable.of_times(when, NOT_ON)
        return live, index, when, table, len(table), disabled_ids

    def _full_in_child(self, now: datetime) -> SyncReport:
        """The full re-sync in a child process; then only the rows it changed are re-read."""
        url = resync.backend_url(self.backend)
        if url is None:  # e.g. the memory backend: it lives in this process only
            return self._full(now)
        started = time.monotonic()
        try:
            report, touched = resync.full_resync(resync.job_for(self.backend, url, now,
                                                                self.actor))  # fmt: skip
        except RemovalRefused as exc:
            exc.previous = self.catalog
            raise
        if len(touched) > len(self._live) // 4:  # most rows changed: build the table anew
            return self._full(now)
        self._incremental(now, SyncScope(hosts=frozenset(host for _, host in touched)))
        self._next_full = now + self.full_resync_interval
        self.last_refresh = (
            f"full, in a child process: {len(touched)} rows changed there; "
            f"{time.monotonic() - started:.2f}s"
        )
        return report

    def _incremental(self, now: datetime, extra: SyncScope | None = None) -> SyncReport | None:
        """Sync and re-time only the rows of what changed since the catalog in use.

        extra: rows to re-read as well (those a full re-sync elsewhere changed).
        """
        started = time.monotonic()
        previous = self.catalog
        assert previous is not None
        self._track_moves()
        catalog = self.backend.load()
        scope = changed_scope(previous, catalog)
        if extra:
            scope = scope | extra
        report = None
        if scope:
            now = self.clock.now()  # as in _full: when the rows are read
            report = self.backend.sync(catalog, now, previous=previous, actor=self.actor,
                                       scope=scope)  # fmt: skip
            rows = self.backend.state.schedule_rows(scope=scope)
            wanted = {pair.key: pair for pair in pairs_in(catalog, scope)}
            old = self._live.find(scope.audits, scope.hosts)
            with self._catalog_lock, self._lock:
                self._apply(wanted, old, {(r.audit_name, r.host): r for r in rows})
                self._repoint(previous, catalog, scope)
                self._catalog, self._moved = catalog, None
        else:
            with self._catalog_lock, self._lock:
                self._repoint(previous, catalog, scope)
                self._catalog, self._moved = catalog, None
        # Operator disables (`entropy disable/enable`) change rows, not definitions.
        self._retime(self.backend.state.disabled_ids() ^ self._disabled)
        self.last_refresh = (
            f"incremental, {scope.describe()} changed, {time.monotonic() - started:.2f}s"
        )
        return report

    def _track_moves(self) -> None:
        """From now until the swap, note what done() puts back: rows read meanwhile may not
        show it yet (the recorder writes a moment later), and the swap must not undo it."""
        with self._lock:
            if self._moved is None:
                self._moved = {}

    def _apply(self, wanted: dict[Key, Pair], old: dict[Key, int],
               rows: dict[Key, ScheduleRow]) -> None:  # fmt: skip
        """Under the lock: the scope's pairs, rows and table entries as the new catalog has them."""
        live, out, moved = self._live, self._out, self._moved or {}
        for key, i in old.items():
            if key not in wanted:
                self._put(i, NOT_ON)
                self._disabled.discard(live.ids[i])
                live.kill(i)
                if key in out:
                    out[key] = _GONE
        for key, pair in wanted.items():
            row = rows.get(key)
            row_id = row.id if row is not None else 0
            k = live.host(pair.host, pair.ip_address, pair.schedule)
            s = live.schedule(pair.schedule)
            known = old.get(key)
            if known is None:
                i = live.append(k, s, row_id)
                self._when.append(NOT_ON)
            else:
                i = known
                live.host_of[i], live.schedule_of[i], live.ids[i] = k, s, row_id
            if row is not None and row.disabled:
                self._disabled.add(row_id)
            elif row is not None:
                self._disabled.discard(row_id)
            if key in out:
                out[key] = i  # its engine hands it back through done()
                self._put(i, NOT_ON)
            elif row is None or row.disabled:
                self._put(i, NOT_ON)
            else:
                self._put(i, moved.get(key, to_ms(row.next_run)))

    def _repoint(self, previous: Catalog, catalog: Catalog, scope: SyncScope) -> None:
        """Let the kept pairs use the new catalog's hosts and schedules (equal, maybe re-read)."""
        live = self._live
        hosts = catalog.hosts
        for name, k in live.host_slot.items():
            live.hosts[k] = hosts.get(name)
        olds: dict[str, list[Schedule]] = {}
        for schedule in previous.schedules:
            olds.setdefault(schedule.audit_name, []).append(schedule)
        news: dict[str, list[Schedule]] = {}
        for schedule in catalog.schedules:
            news.setdefault(schedule.audit_name, []).append(schedule)
        for audit_name, before in olds.items():
            if audit_name in scope.audits:
                continue
            for old, new in zip(before, news.get(audit_name, ()), strict=False):
                if old is not new:
                    live.replace(old, new)

    def _put(self, i: int, ms: int) -> None:
        """Under the lock: pair i on the table at ms, or off it (NOT_ON)."""
        when = self._when
        current = when[i]
        if current == ms:
            return
        if current != NOT_ON:
            self._count -= 1
        when[i] = ms
        if ms != NOT_ON:
            self._table.push(ms, i)
            self._count += 1

    def retime(self, ids: Collection[int]) -> int:
        """Re-read these rows (say, taken back from a dead engine) and re-time their pairs.

        Only those rows are read; how many pairs were re-timed. While a refresh
        runs, they are left to it: it re-times them when it is done.
        """
        if not self._refreshing.acquire(blocking=False):
            with self._lock:
                self._retime_after.update(ids)
            return 0
        try:
            return self._retime(ids)
        finally:
            self._refreshing.release()

    def _retime_later(self) -> None:
        """The rows retime() was asked for while a refresh ran (the refresh lock held)."""
        with self._lock:
            ids, self._retime_after = self._retime_after, set()
        if ids and self.catalog is not None:
            try:
                self._retime(ids)
            except BackendError as exc:
                LOG.error("could not re-read %d rows taken back: %s", len(ids), exc)

    def _retime(self, ids: Collection[int]) -> int:
        """retime(), with the refresh lock held (the pairs' indexes stay put meanwhile)."""
        if not ids:
            return 0
        rows = {row.id: row for row in self.backend.state.schedule_rows(ids=ids)}
        live = self._live
        self._disabled.difference_update(ids)
        self._disabled.update(row.id for row in rows.values() if row.disabled)
        found = [(i, rows[row_id]) for i, row_id in enumerate(live.ids) if row_id in rows]
        changed = 0
        with self._lock:
            for i, row in found:
                if live.ids[i] != row.id or live.host_of[i] == LivePairs.DEAD:
                    continue  # a refresh changed it meanwhile
                if live.key(i) in self._out:
                    continue
                self._put(i, NOT_ON if row.disabled else to_ms(row.next_run))
                changed += 1
            first = self._table.first_ms()
        if first is not None:
            self._wake.set()
        return changed

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

    def request_refresh(self, full: bool = False) -> None:
        self._refresh_requested = True
        self._full_requested = self._full_requested or full
        self._wake.set()

    def _refresh_due(self, now: datetime) -> bool:
        if self._refresh_requested or now >= self._next_refresh or now >= self._next_full:
            self._refresh_requested = False
            return True
        if now >= self._next_watch:
            self._next_watch = now + self.watch_interval
            return self.backend.definitions_signature() != self._signature
        return False

    # -- handing out due audits -----------------------------------------------

    def next_batch(self, timeout: float | None = None, linger: float = 0.0) -> list[Due]:
        """Block until audits are due and return them all; [] on wake(), stop() or timeout.

        A wake() that came before this call returns at once, so a caller
        that decided to wait just as a worker freed up is not left waiting.
        linger: seconds the first due audit waits for those due just after
        it, so that a steady trickle is handed out (and claimed) a few at a
        time instead of one by one; a backlog is not held back.
        """
        deadline = None if timeout is None else self.clock.now() + timedelta(seconds=timeout)
        linger_ms = round(linger * 1000)
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
                if next_ms is not None and next_ms + linger_ms <= now_ms:
                    batch = self._pop_due(now_ms)
                    if batch:
                        return batch
                    continue  # only entries of pairs re-timed since were due
            wake_at = min(self._next_refresh, self._next_watch)
            if next_ms is not None:
                wake_at = min(wake_at, from_ms(next_ms + linger_ms))
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
        live, ids, out, when = self._live, self._live.ids, self._out, self._when
        batch = []
        for ms, i in self._table.pop_due(now_ms):
            if when[i] != ms:
                continue  # re-timed or taken off since: a stale entry
            when[i] = NOT_ON
            pair = live.pair(i)
            out[pair.key] = i
            batch.append(Due(ids[i], pair, from_ms(ms)))
        self._count -= len(batch)
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
        key = due.pair.key
        with self._lock:
            if self._moved is not None:
                self._moved[key] = entry_ms
            i = self._out.pop(key, _GONE)
            if i == _GONE:
                return next_run
            table = self._table
            first = table.first_ms()
            earliest = first is None or entry_ms < first
            when = self._when
            if when[i] == NOT_ON:  # the usual case: it was in flight (see _put)
                when[i] = entry_ms
                table.push(entry_ms, i)
                self._count += 1
            else:
                self._put(i, entry_ms)
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
        return self._count

    def in_flight(self) -> int:
        return len(self._out)

    def next_due(self) -> datetime | None:
        """The earliest slot on the table (a pair re-timed since may show its old one)."""
        with self._lock:
            first = self._table.first_ms()
            return None if first is None else from_ms(first)
