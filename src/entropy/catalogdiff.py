"""Which (audit, host) rows a change of the definitions can touch: the unit of an
incremental refresh.

A row's columns follow its pair: the pair exists or not, its address (the
host's) and its schedule's settings. A pair (audit, host) is decided by the
entries that schedule that audit (their targets, settings and order: the
first one to reach a host wins) and by the host itself (it exists, its
address, its type and groups). So when two catalogs, both valid as a whole,
schedule an audit the same way and define a host the same way, they give
that audit on that host the same pair, or none in both. Everything a change
can touch is therefore the rows of the audits whose entries changed plus
the rows of the hosts that changed: `changed_scope` computes that, and an
incremental sync re-syncs exactly those rows (and re-times exactly those
pairs) after the whole new catalog has passed validation.

Scripts, repairs and downtimes never change a row: the engine reads them
from the catalog when an audit runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .model import Catalog, Pair, Schedule
from .pairs import PairBlocks


@dataclass(frozen=True, slots=True)
class SyncScope:
    """The rows of these audits (on any host) and of these hosts (any audit)."""

    audits: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.audits or self.hosts)

    def covers(self, audit_name: str, host: str) -> bool:
        return audit_name in self.audits or host in self.hosts

    def __or__(self, other: SyncScope) -> SyncScope:
        return SyncScope(self.audits | other.audits, self.hosts | other.hosts)

    def describe(self) -> str:
        return f"{len(self.audits)} audits, {len(self.hosts)} hosts"


def _schedules_by_audit(catalog: Catalog) -> dict[str, list[Schedule]]:
    found: dict[str, list[Schedule]] = defaultdict(list)
    for schedule in catalog.schedules:
        found[schedule.audit_name].append(schedule)
    return found


def changed_scope(old: Catalog, new: Catalog) -> SyncScope:
    """The rows that may differ between syncing `old` and syncing `new` (both valid).

    An audit is in it when the entries that schedule it differ (in order,
    targets or settings; where they are written does not count); a host when
    it was added, removed, or differs in anything (address, type, groups,
    vars: a vars-only change costs a look at its rows, nothing more).
    """
    before, after = _schedules_by_audit(old), _schedules_by_audit(new)
    audits = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    hosts = {
        name
        for name in old.hosts.keys() | new.hosts.keys()
        if old.hosts.get(name) is not new.hosts.get(name)
        and old.hosts.get(name) != new.hosts.get(name)
    }
    return SyncScope(frozenset(audits), frozenset(hosts))


def pairs_in(catalog: Catalog, scope: SyncScope) -> Iterator[Pair]:
    """The catalog's pairs that the scope covers, without making the others."""
    pairs = catalog.pairs
    if not isinstance(pairs, PairBlocks):
        yield from (pair for pair in pairs if scope.covers(pair.audit_name, pair.host))
        return
    hosts = pairs.hosts
    named = scope.hosts
    chosen = {k for k, host in enumerate(hosts) if host.name in named} if named else set()
    for schedule, positions in pairs.blocks:
        audit_name = schedule.audit_name
        picked: Sequence[int]
        if audit_name in scope.audits:
            picked = positions
        elif not chosen or chosen.isdisjoint(positions):
            continue
        else:
            picked = [k for k in positions if k in chosen]
        for k in picked:
            host = hosts[k]
            yield Pair(audit_name, host.name, host.ip_address, schedule)
