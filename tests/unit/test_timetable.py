"""The scheduler's compact tables behave as a heap and a list of Pairs would."""

from __future__ import annotations

import heapq
import pickle
import random
from array import array
from datetime import UTC, datetime

from entropy.model import Host, Pair, Schedule
from entropy.pairs import PairBlocks
from entropy.timetable import LivePairs, TimeTable
from entropy.timing import Every


def test_time_table_pops_in_heap_order_with_pushes_between() -> None:
    rng = random.Random(3)
    base = 1_767_225_600_000  # ms
    entries = [(base + rng.randrange(20_000), i) for i in range(3_000)]
    table, heap = TimeTable(entries), list(entries)
    heapq.heapify(heap)
    now, index = base - 1, 3_000
    while heap or len(table):
        now += rng.randrange(0, 700)
        for _ in range(rng.randrange(0, 4)):  # what done() puts back, some on the current second
            entry = (now + rng.choice([1, 30, 999, 1_000, 5_000]), index)
            index += 1
            table.push(*entry)
            heapq.heappush(heap, entry)
        expected = []
        while heap and heap[0][0] <= now:
            expected.append(heapq.heappop(heap))
        assert table.pop_due(now) == expected
        assert len(table) == len(heap)
        assert table.first_ms() == (heap[0][0] if heap else None)
        if now > base + 40_000:
            break


def test_time_table_keeps_ties_in_index_order_and_takes_the_past_at_once() -> None:
    table = TimeTable([(5_000, 7), (5_000, 2), (1_500, 9), (-2_000, 4)])
    table.push(5_000, 0)
    assert table.first_ms() == -2_000
    assert table.pop_due(4_999) == [(-2_000, 4), (1_500, 9)]
    assert table.pop_due(5_000) == [(5_000, 0), (5_000, 2), (5_000, 7)]
    assert table.first_ms() is None and len(table) == 0 and table.pop_due(10**9) == []


def test_time_table_pickles_and_iterates() -> None:
    table = TimeTable([(1_001, 1), (2_500, 2)])
    copy = pickle.loads(pickle.dumps(table))
    assert sorted(copy) == [(1_001, 1), (2_500, 2)] and copy.pop_due(2_000) == [(1_001, 1)]


def _pairs() -> tuple[dict[str, Host], list[Schedule], list[Pair]]:
    hosts = {name: Host(name, f"10.0.0.{k}", "compute") for k, name in enumerate(["a.ex", "b.ex"])}
    schedules = [Schedule("compute", "disk", Every(60)), Schedule("b.ex", "ping", Every(30))]
    pairs = [
        Pair("disk", "a.ex", "10.0.0.0", schedules[0]),
        Pair("disk", "b.ex", "10.0.0.1", schedules[0]),
        Pair("ping", "b.ex", "10.0.0.1", schedules[1]),
    ]
    return hosts, schedules, pairs


def test_pair_blocks_give_back_the_same_pairs() -> None:
    hosts, schedules, pairs = _pairs()
    blocks = PairBlocks(list(hosts.values()), [(schedules[0], array("I", [0, 1])),
                                               (schedules[1], array("I", [1]))])  # fmt: skip
    assert len(blocks) == 3 and list(blocks) == pairs and blocks == pairs
    assert blocks[-1] == pairs[-1] and blocks[1:] == pairs[1:]
    assert blocks[2].schedule is schedules[1]
    assert pickle.loads(pickle.dumps(blocks)) == pairs


def test_live_pairs_keep_their_indexes_while_pairs_come_and_go() -> None:
    _, schedules, pairs = _pairs()
    live = LivePairs.of(pairs)
    assert [live.pair(i) for i in range(len(live))] == pairs
    assert live.find(frozenset({"ping"}), frozenset()) == {("ping", "b.ex"): 2}
    assert live.find(frozenset(), frozenset({"b.ex"})) == {("disk", "b.ex"): 1, ("ping", "b.ex"): 2}
    live.kill(1)
    i = live.append(live.host("c.ex", "10.0.0.3"), live.schedule(schedules[0]), 7)
    assert (i, live.key(i), live.ids[i]) == (3, ("disk", "c.ex"), 7)
    assert live.find(frozenset({"disk"}), frozenset()) == {("disk", "a.ex"): 0, ("disk", "c.ex"): 3}
    assert live.index() == {"disk": {"a.ex": 0, "c.ex": 3}, "ping": {"b.ex": 2}}
    assert live.pair(0) == pairs[0] and live.pair(2) == pairs[2]


def test_datetime_sanity() -> None:  # the table keys on ms since the epoch, UTC
    assert datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000 == 1_767_225_600_000


def test_first_ms_follows_pushes_into_the_first_second() -> None:
    table = TimeTable([(86_400_500, 1)])  # tomorrow's bucket is the first one
    assert table.first_ms() == 86_400_500
    table.push(86_400_900, 2)
    table.push(86_400_100, 3)  # earlier, in the same bucket
    assert table.first_ms() == 86_400_100
    table.push(5_000, 4)  # a new first second
    assert table.first_ms() == 5_000
    assert table.pop_due(86_400_499) == [(5_000, 4), (86_400_100, 3)]
    assert table.first_ms() == 86_400_500


def test_a_table_of_times_is_the_table_of_those_entries() -> None:
    rng = random.Random(5)
    absent = -(1 << 62)
    when = array("q", [rng.choice([absent, 1_767_225_600_000 + rng.randrange(90_000)])
                       for _ in range(2_000)])  # fmt: skip
    table = TimeTable.of_times(when, absent)
    plain = TimeTable([(ms, i) for i, ms in enumerate(when) if ms != absent])
    assert len(table) == len(plain) == sum(ms != absent for ms in when)
    assert table.first_ms() == plain.first_ms()
    assert table.pop_due(1_767_225_700_000) == plain.pop_due(1_767_225_700_000)
