"""The scheduler's compact tables: when each pair runs next, and the pairs themselves.

At a million pairs, one Python object per pair is what the memory goes to:
a heap entry (an int of 48 bytes plus its list slot) and a Pair (64 bytes)
each. These tables keep 8-byte numbers in arrays instead.

- TimeTable: (ms, index) entries by due time, in one array per second of
  due time, sorted when that second comes up. Pushing is an append; popping
  what is due takes a sorted slice.
- LivePairs: the pairs as two arrays of indexes (host, schedule) and their
  row ids; a Pair is made when one falls due. Indexes stay put across
  incremental refreshes.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

from .model import Host, Pair, Schedule
from .pairs import PairBlocks

INDEX_BITS = 24  # up to 16.7 million pairs
INDEX_MASK = (1 << INDEX_BITS) - 1


class TimeTable:
    """A priority queue of (ms, index): earliest ms first, then lowest index."""

    __slots__ = ("_buckets", "_head_sorted", "_len", "_min", "_min_second", "_seconds")

    def __init__(self, entries: Iterable[tuple[int, int]] = ()) -> None:
        # Each entry is (ms within its second << INDEX_BITS) | index, in its second's array.
        self._buckets: dict[int, array] = {}
        self._seconds: list[int] = []  # a heap of the seconds that have a bucket
        self._head_sorted: int | None = None  # the second whose bucket is known sorted
        self._min_second: int | None = None  # the second whose smallest entry is in _min
        self._min = 0
        self._len = 0
        buckets = self._buckets
        for ms, index in entries:
            second, rest = divmod(ms, 1000)
            bucket = buckets.get(second)
            if bucket is None:
                bucket = buckets[second] = array("q")
            bucket.append((rest << INDEX_BITS) | index)
            self._len += 1
        self._seconds = list(buckets)
        heapq.heapify(self._seconds)

    @classmethod
    def of_times(cls, when: array, absent: int) -> TimeTable:
        """A table of (when[i], i) for every i whose when[i] is not `absent`."""
        table = cls()
        buckets = table._buckets
        count = 0
        for index, ms in enumerate(when):
            if ms == absent:
                continue
            second, rest = divmod(ms, 1000)
            bucket = buckets.get(second)
            if bucket is None:
                bucket = buckets[second] = array("q")
            bucket.append((rest << INDEX_BITS) | index)
            count += 1
        table._len = count
        table._seconds = list(buckets)
        heapq.heapify(table._seconds)
        return table

    def __len__(self) -> int:
        return self._len

    def push(self, ms: int, index: int) -> None:
        second, rest = divmod(ms, 1000)
        entry = (rest << INDEX_BITS) | index
        bucket = self._buckets.get(second)
        if bucket is None:
            self._buckets[second] = array("q", (entry,))
            heapq.heappush(self._seconds, second)
        else:
            bucket.append(entry)
            if second == self._head_sorted:
                self._head_sorted = None
            if second == self._min_second and entry < self._min:
                self._min = entry
        self._len += 1

    def _head(self) -> tuple[int, array]:
        """The first second's bucket, sorted: only when it is being popped."""
        second = self._seconds[0]
        bucket = self._buckets[second]
        if self._head_sorted != second:
            bucket = self._buckets[second] = array("q", sorted(bucket))
            self._head_sorted = second
        return second, bucket

    def first_ms(self) -> int | None:
        """The earliest ms on the table, or None when it is empty.

        The first bucket's smallest entry is kept up to date by push(), so
        this is O(1) even while that bucket (e.g. tomorrow's, in a fleet that
        runs daily) takes an append per finished audit.
        """
        if not self._seconds:
            return None
        second = self._seconds[0]
        if self._min_second != second:
            bucket = self._buckets[second]
            self._min = bucket[0] if self._head_sorted == second else min(bucket)
            self._min_second = second
        return second * 1000 + (self._min >> INDEX_BITS)

    def pop_due(self, now_ms: int) -> list[tuple[int, int]]:
        """Take every (ms, index) with ms <= now_ms off the table, earliest first."""
        due: list[tuple[int, int]] = []
        now_second, now_rest = divmod(now_ms, 1000)
        seconds, buckets = self._seconds, self._buckets
        while seconds and seconds[0] <= now_second:
            second, bucket = self._head()
            if second < now_second:
                taken = len(bucket)
            else:
                taken = bisect_right(bucket, (now_rest << INDEX_BITS) | INDEX_MASK)
                if not taken:
                    break
            base = second * 1000
            due.extend([(base + (e >> INDEX_BITS), e & INDEX_MASK) for e in bucket[:taken]])
            self._len -= taken
            if taken == len(bucket):
                heapq.heappop(seconds)
                del buckets[second]
                self._head_sorted = None
            else:
                del bucket[:taken]
            self._min_second = None
        return due

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Every (ms, index), in no particular order."""
        for second, bucket in self._buckets.items():
            base = second * 1000
            for e in bucket:
                yield base + (e >> INDEX_BITS), e & INDEX_MASK


class LivePairs:
    """The scheduler's pairs, by index: indexes stay put while refreshes change the pairs.

    A pair is two slots (its host's, its schedule's) and its row id, in
    arrays: about 16 bytes, and no object until it falls due. An
    incremental refresh changes the pairs it touches in place: a kept pair
    keeps its index (so the engine's in-flight audits and the time table
    stay valid), a new one is appended, a removed one is marked dead. Dead
    slots are reclaimed when a full refresh builds a new one.
    """

    __slots__ = ("_schedule_slot", "host_of", "host_slot", "hosts", "ids", "schedule_of",
                 "schedules")  # fmt: skip

    DEAD = 0xFFFFFFFF

    def __init__(self) -> None:
        self.hosts: list[Host | None] = []
        self.host_slot: dict[str, int] = {}
        self.schedules: list[Schedule] = []
        self._schedule_slot: dict[int, int] = {}  # id(schedule) -> slot; schedules are kept
        self.host_of, self.schedule_of, self.ids = array("I"), array("I"), array("q")

    @classmethod
    def of(cls, pairs: Sequence[Pair]) -> LivePairs:
        """The pairs of a catalog, each at its position in it."""
        live = cls()
        if isinstance(pairs, PairBlocks):
            live.hosts = list(pairs.hosts)
            live.host_slot = {host.name: k for k, host in enumerate(pairs.hosts)}
            for schedule, positions in pairs.blocks:
                s = live.schedule(schedule)
                live.host_of.extend(positions)
                live.schedule_of.extend(array("I", (s,)) * len(positions))
        else:
            for pair in pairs:
                live.host_of.append(live.host(pair.host, pair.ip_address, pair.schedule))
                live.schedule_of.append(live.schedule(pair.schedule))
        live.ids = array("q", bytes(8 * len(live.host_of)))
        return live

    def __len__(self) -> int:
        """Slots, the dead ones included."""
        return len(self.host_of)

    def schedule(self, schedule: Schedule) -> int:
        """The slot of this schedule object, made if new."""
        s = self._schedule_slot.get(id(schedule))
        if s is None:
            s = self._schedule_slot[id(schedule)] = len(self.schedules)
            self.schedules.append(schedule)
        return s

    def replace(self, old: Schedule, new: Schedule) -> None:
        """Let the pairs of schedule `old` use `new` (an equal one, read again)."""
        s = self._schedule_slot.pop(id(old), None)
        if s is not None and id(new) not in self._schedule_slot:
            self.schedules[s] = new
            self._schedule_slot[id(new)] = s
        elif s is not None:
            self._schedule_slot[id(old)] = s  # both in use: leave it

    def host(self, name: str, ip_address: str, schedule: Schedule | None = None) -> int:
        """The slot of the host of this name (for a bare Pair: a host made of its address)."""
        k = self.host_slot.get(name)
        if k is None:
            k = self.host_slot[name] = len(self.hosts)
            self.hosts.append(Host(name, ip_address, schedule.target if schedule else name))
        return k

    def pair(self, i: int) -> Pair:
        host = self.hosts[self.host_of[i]]
        schedule = self.schedules[self.schedule_of[i]]
        assert host is not None
        return Pair(schedule.audit_name, host.name, host.ip_address, schedule)

    def key(self, i: int) -> tuple[str, str]:
        host = self.hosts[self.host_of[i]]
        assert host is not None
        return (self.schedules[self.schedule_of[i]].audit_name, host.name)

    def alive(self) -> Iterator[int]:
        dead = self.DEAD
        return (i for i, k in enumerate(self.host_of) if k != dead)

    def index(self) -> dict[str, dict[str, int]]:
        """audit -> host -> index of every live pair (a full refresh's matching of rows)."""
        found: dict[str, dict[str, int]] = {}
        hosts, schedules, dead = self.hosts, self.schedules, self.DEAD
        for i, (k, s) in enumerate(zip(self.host_of, self.schedule_of, strict=True)):
            if k != dead:
                # A live pair's host is there: only a host the catalog dropped is None
                # (_repoint), and its pairs are dead. No assert: a million pairs pass here.
                found.setdefault(schedules[s].audit_name, {})[hosts[k].name] = i  # type: ignore[union-attr]
        return found

    def find(self, audits: frozenset[str], hosts: frozenset[str]) -> dict[tuple[str, str], int]:
        """(audit, host) -> index of the live pairs of these audits or these hosts."""
        by_schedule = {s for s, sch in enumerate(self.schedules) if sch.audit_name in audits}
        by_host = {self.host_slot[h] for h in hosts if h in self.host_slot}
        found = {}
        for i, (k, s) in enumerate(zip(self.host_of, self.schedule_of, strict=True)):
            if (s in by_schedule or k in by_host) and k != self.DEAD:
                found[self.key(i)] = i
        return found

    def append(self, host_slot: int, schedule_slot: int, row_id: int) -> int:
        self.host_of.append(host_slot)
        self.schedule_of.append(schedule_slot)
        self.ids.append(row_id)
        return len(self.host_of) - 1

    def kill(self, i: int) -> None:
        self.host_of[i] = self.DEAD
        self.ids[i] = 0
