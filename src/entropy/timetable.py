"""The scheduler's compact tables: when each pair runs next, and the pairs themselves.

At a million pairs, one Python object per pair is what the memory goes to:
a heap entry (an int of 48 bytes plus its list slot) and a Pair (64 bytes)
each. These tables keep 8-byte numbers in arrays instead.

- TimeTable: (ms, index) entries by due time, in one array per second of
  due time, sorted when that second comes up. Pushing is an append; popping
  what is due takes a sorted slice.
- PairTable: the pairs as two arrays of indexes (host, schedule); a Pair is
  made when one is asked for, which is when it falls due.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from .model import Host, Pair, Schedule

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


class PairTable(Sequence[Pair]):
    """A catalog's pairs, as indexes into its hosts and schedules; Pairs made on demand."""

    __slots__ = ("_host_of", "_hosts", "_schedule_of", "_schedules")

    def __init__(self, hosts: list[Host], schedules: list[Schedule], host_of: array,
                 schedule_of: array) -> None:  # fmt: skip
        self._hosts, self._schedules = hosts, schedules
        self._host_of, self._schedule_of = host_of, schedule_of

    @classmethod
    def of(cls, pairs: Sequence[Pair], hosts: dict[str, Host],
           schedules: list[Schedule]) -> PairTable | None:  # fmt: skip
        """The same pairs, compact; None if one is not what its host and schedule say."""
        host_list = list(hosts.values())
        host_index = {host.name: k for k, host in enumerate(host_list)}
        schedule_list = list(schedules)
        schedule_index = {id(s): k for k, s in enumerate(schedule_list)}
        host_of, schedule_of = array("I"), array("I")
        for pair in pairs:
            k = host_index.get(pair.host)
            schedule = pair.schedule
            if (
                k is None
                or host_list[k].ip_address != pair.ip_address
                or schedule.audit_name != pair.audit_name
            ):
                return None
            s = schedule_index.get(id(schedule))
            if s is None:
                s = schedule_index[id(schedule)] = len(schedule_list)
                schedule_list.append(schedule)
            host_of.append(k)
            schedule_of.append(s)
        return cls(host_list, schedule_list, host_of, schedule_of)

    def __len__(self) -> int:
        return len(self._host_of)

    @overload
    def __getitem__(self, i: int) -> Pair: ...
    @overload
    def __getitem__(self, i: slice) -> list[Pair]: ...
    def __getitem__(self, i: int | slice) -> Pair | list[Pair]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        host = self._hosts[self._host_of[i]]
        schedule = self._schedules[self._schedule_of[i]]
        return Pair(schedule.audit_name, host.name, host.ip_address, schedule)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
