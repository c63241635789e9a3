"""Pairs by blocks and the scope of a change: the same pairs as the plain expansion, and a
scope that covers every row a change can touch (issue 18)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from entropy.catalogdiff import SyncScope, changed_scope, pairs_in
from entropy.definitions import Problems
from entropy.model import Catalog, Host, Pair, Schedule
from entropy.timing import Every

SCRIPTS: dict[str, Any] = {}


def reference_expand(catalog: Catalog) -> list[Pair] | None:
    """The expansion as it was before blocks (pair by pair); None where it finds a problem."""
    members: dict[str, list[Host]] = defaultdict(list)
    for host in catalog.hosts.values():
        members[host.host_type].append(host)
        for group in host.groups:
            if group != host.host_type:
                members[group].append(host)
    chosen: dict[tuple[str, str], Schedule] = {}
    group_schedules = []
    for schedule in catalog.schedules:
        if schedule.target in catalog.hosts and schedule.target in members:
            return None
        if schedule.target in members:
            group_schedules.append(schedule)
        elif schedule.target in catalog.hosts:
            key = (schedule.audit_name, schedule.target)
            if key in chosen:
                return None
            chosen[key] = schedule
        else:
            return None
    own = set(chosen)
    for schedule in group_schedules:
        for host in members[schedule.target]:
            key = (schedule.audit_name, host.name)
            seen = chosen.setdefault(key, schedule)
            if seen is schedule or key in own or seen.settings() == schedule.settings():
                continue
            return None
    return [Pair(a, h, catalog.hosts[h].ip_address, s) for (a, h), s in chosen.items()]


def random_catalog(rng: random.Random) -> Catalog:
    groups = ["web", "db", "edge", "all"]
    hosts = {}
    for i in range(rng.randrange(1, 12)):
        name = f"h{i}.ex"
        extra = tuple(rng.sample(groups, rng.randrange(0, 3)))
        hosts[name] = Host(name, f"10.0.0.{i}", rng.choice(groups[:3]), extra)
    schedules = []
    for _ in range(rng.randrange(1, 9)):
        target = rng.choice([*groups, *list(hosts)[:3]])
        schedules.append(Schedule(target, rng.choice("abc"), Every(rng.choice([60, 120]))))
    return Catalog(hosts, {n: None for n in "abc"}, schedules)  # type: ignore[misc]


def test_blocks_give_the_pairs_the_plain_expansion_gives() -> None:
    rng = random.Random(18)
    compared = refused = 0
    for _ in range(1500):
        catalog = random_catalog(rng)
        expected = reference_expand(catalog)
        from entropy import definitions

        problems = Problems()
        pairs = definitions.expand(catalog, problems)
        if expected is None:
            assert problems.items, catalog
            refused += 1
            continue
        assert not problems.items, (catalog, problems.items)
        assert list(pairs) == expected
        compared += 1
    assert compared > 250 and refused > 250  # both kinds were tried


def test_the_scope_of_a_change_covers_every_row_that_differs() -> None:
    """For random pairs of valid catalogs: every pair that differs is in the scope."""
    rng = random.Random(7)
    checked = 0
    for _ in range(1500):
        old, new = random_catalog(rng), random_catalog(rng)
        if rng.random() < 0.5:  # mostly small changes: one host or one schedule
            new = Catalog(dict(old.hosts), old.scripts, list(old.schedules))
            if rng.random() < 0.5 and new.schedules:
                new.schedules[rng.randrange(len(new.schedules))] = random_catalog(rng).schedules[0]
            else:
                host = random_catalog(rng).hosts.popitem()[1]
                new.hosts[host.name] = host
        a, b = reference_expand(old), reference_expand(new)
        if a is None or b is None:
            continue
        before = {p.key: (p.ip_address, p.schedule.settings()) for p in a}
        after = {p.key: (p.ip_address, p.schedule.settings()) for p in b}
        scope = changed_scope(old, new)
        for key in before.keys() | after.keys():
            if before.get(key) != after.get(key):
                assert scope.covers(*key), (key, scope)
        old.pairs, new.pairs = a, b
        assert {p.key for p in pairs_in(new, scope)} == {k for k in after if scope.covers(*k)}
        checked += 1
    assert checked > 150


def test_where_an_entry_is_written_is_no_change() -> None:
    from entropy.errors import Location

    hosts = {"a.ex": Host("a.ex", "10.0.0.1", "web")}
    one = Catalog(hosts, {}, [Schedule("web", "x", Every(60), where=Location("f.yaml", 3))])
    two = Catalog(dict(hosts), {}, [Schedule("web", "x", Every(60), where=Location("f.yaml", 9))])
    assert not changed_scope(one, two)
    three = Catalog({"a.ex": Host("a.ex", "10.0.0.1", "web", vars={"k": 1})}, {}, two.schedules)
    assert changed_scope(two, three) == SyncScope(hosts=frozenset({"a.ex"}))
