"""A catalog's (audit, host) pairs, kept compact: one schedule x an array of host positions.

At a million pairs, a Pair object each (plus the list, plus the dict that
found them) was most of what loading cost in time and memory. The
definitions expand group by group instead: a schedule on a group of 10,000
hosts is one block, the group's array of host positions (4 bytes each),
shared by every schedule on that group. A Pair is made only when one is
asked for. Iterating gives the same pairs, in the same order, as a list of
Pairs would.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import overload

from .model import Host, Pair, Schedule

Block = tuple[Schedule, array]  # a schedule and the positions (in `hosts`) of its hosts


class PairBlocks(Sequence[Pair]):
    """Pairs as blocks of (schedule, host positions); read-only once built."""

    __slots__ = ("_ends", "blocks", "hosts")

    def __init__(self, hosts: list[Host], blocks: list[Block]) -> None:
        self.hosts = hosts
        self.blocks = blocks
        ends, total = array("q"), 0
        for _, positions in blocks:
            total += len(positions)
            ends.append(total)
        self._ends = ends

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @overload
    def __getitem__(self, i: int) -> Pair: ...
    @overload
    def __getitem__(self, i: slice) -> list[Pair]: ...
    def __getitem__(self, i: int | slice) -> Pair | list[Pair]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        size = len(self)
        if i < 0:
            i += size
        if not 0 <= i < size:
            raise IndexError("pair index out of range")
        b = bisect_right(self._ends, i)
        schedule, positions = self.blocks[b]
        host = self.hosts[positions[i - (self._ends[b - 1] if b else 0)]]
        return Pair(schedule.audit_name, host.name, host.ip_address, schedule)

    def __iter__(self) -> Iterator[Pair]:
        hosts = self.hosts
        for schedule, positions in self.blocks:
            audit_name = schedule.audit_name
            for k in positions:
                host = hosts[k]
                yield Pair(audit_name, host.name, host.ip_address, schedule)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PairBlocks({len(self)} pairs in {len(self.blocks)} blocks)"
