"""How many audit rows a sync may remove without consent, and what it remembers of them.

A truncated schedule file looks like an operator removing audits: the rows
of the pairs it gave would go, with their state. So a sync (the CLI's, an
engine's refresh) that would remove more than `max_removal` of the rows
stored now is refused unless forced, and an operator's disable of a pair
that goes is remembered for `disable_retention` and put back if the pair
comes back. The rule works on keys and rows, not SQL: every state store
applies the same one.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .errors import EntropyError
from .model import Catalog, DisabledBy

Key = tuple[str, str]  # (audit_name, host)
_SHOWN = 5  # audits named in a refusal; the rest are counted


@dataclass(frozen=True, slots=True)
class RemovalPolicy:
    """What a sync may remove, and how long an operator's disable outlives its pair.

    max_removal: the fraction of the stored rows one sync may remove (0:
    every removal needs force, 1: no limit). remove=False keeps every row
    (disable and enable sync only to add). actor names who synced, for the
    memory of removed disables.
    """

    max_removal: float = 0.1
    force: bool = False
    remove: bool = True
    disable_retention: float = 30 * 86400.0
    actor: str = ""


def allowed_removals(stored: int, max_removal: float) -> int:
    """How many of `stored` rows one sync may remove without consent.

    max_removal of them, rounded down, but at least one (a fleet of four
    can lose one audit) and never all of them (an emptied fleet is the
    truncated file's mark) unless max_removal is 1. With 0, none.
    """
    if max_removal >= 1:
        return stored
    if max_removal <= 0 or stored == 0:
        return 0
    return min(max(1, math.floor(max_removal * stored + 1e-9)), stored - 1)


def check_removal(stored: int, gone: Sequence[Key], policy: RemovalPolicy) -> None:
    """Raise RemovalRefused when removing `gone` of `stored` rows needs consent it lacks."""
    if not policy.remove or policy.force or not gone:
        return
    allowed = allowed_removals(stored, policy.max_removal)
    if len(gone) > allowed:
        raise RemovalRefused(list(gone), stored, allowed, policy.max_removal)


@dataclass(frozen=True, slots=True)
class KeptDisable:
    """An operator's disable of a pair that a sync removed, kept for its return."""

    audit_name: str
    host: str
    reason: str | None
    removed_at: datetime
    removed_by: str = ""

    @property
    def key(self) -> Key:
        return (self.audit_name, self.host)

    def describe(self) -> str:
        by = f" by {self.removed_by}" if self.removed_by else ""
        return (
            f"{self.audit_name} on {self.host}: {self.reason or 'no reason given'} (its pair "
            f"was removed {self.removed_at.isoformat(timespec='seconds')}{by})"
        )


@dataclass(slots=True)
class DisablePlan:
    """What a sync does with the memory of removed disables."""

    remember: list[KeptDisable] = field(default_factory=list)
    restore: dict[Key, KeptDisable] = field(default_factory=dict)
    expired_before: datetime | None = None


def plan_disables(
    gone_rows: Iterable[Any],
    kept: Iterable[KeptDisable],
    new_keys: Iterable[Key],
    now: datetime,
    policy: RemovalPolicy,
) -> DisablePlan:
    """Remember the operator disables among `gone_rows`; restore those whose pair is back.

    gone_rows: the removed rows (audit_name, host, disabled_reason,
    disabled_by). kept: what is remembered now. new_keys: the pairs this
    sync adds. A remembered disable older than disable_retention is dropped.
    """
    expired_before = now - timedelta(seconds=policy.disable_retention)
    plan = DisablePlan(expired_before=expired_before)
    for row in gone_rows:
        if row.disabled_by == DisabledBy.OPERATOR:
            plan.remember.append(
                KeptDisable(row.audit_name, row.host, row.disabled_reason, now, policy.actor)
            )
    live = {k.key: k for k in kept if k.removed_at >= expired_before}
    if live:
        plan.restore = {key: live[key] for key in new_keys if key in live}
    return plan


class RemovalRefused(EntropyError):
    """A sync would remove more rows than max_removal allows; nothing was changed.

    The message names how many rows, of how many, and the audits and hosts
    they are; with `current` (the catalog refused) and `previous` (the one
    the rows came from, which an engine has) set by the caller, also why
    they go and from which files.
    """

    def __init__(self, gone: list[Key], stored: int, allowed: int, max_removal: float) -> None:
        self.gone, self.stored, self.allowed, self.max_removal = gone, stored, allowed, max_removal
        self.current: Catalog | None = None
        self.previous: Catalog | None = None
        self.action = "sync"  # what was refused, and how to consent to it
        self.hint = (
            "If the definitions are right, run `entropy sync --force` to accept the removal; "
            "if not, fix them (a truncated or emptied schedule file?)."
        )
        super().__init__()

    def __str__(self) -> str:
        return self.explain()

    def headline(self) -> str:
        count, stored = len(self.gone), self.stored
        limit = (
            "removing every row always needs consent"
            if count == stored and self.max_removal < 1
            else f"max_removal = {self.max_removal * 100:g}% allows {self.allowed} of {stored}"
        )
        return (
            f"{self.action} refused: it would remove {count} of the {stored} audit rows stored "
            f"({limit}); nothing was changed"
        )

    def explain(self) -> str:
        lines = [self.headline() + ":"]
        lines += [f"  {line}" for line in self.details()]
        lines.append(self.hint)
        return "\n".join(lines)

    def details(self) -> list[str]:
        """One line per audit (the largest first): its hosts, and why or whence they go."""
        by_audit: dict[str, list[str]] = defaultdict(list)
        for audit_name, host in self.gone:
            by_audit[audit_name].append(host)
        origins = _origins(self.gone, self.previous)
        lines = []
        ordered = sorted(by_audit.items(), key=lambda item: (-len(item[1]), item[0]))
        for audit_name, hosts in ordered[:_SHOWN]:
            more = f" and {len(hosts) - 3} more" if len(hosts) > 3 else ""
            shown = ", ".join(sorted(hosts)[:3]) + more
            where = origins.get(audit_name) or self._why(audit_name, hosts)
            lines.append(f"{audit_name} on {_plural(len(hosts), 'host')} ({shown}){where}")
        if len(ordered) > _SHOWN:
            rest = sum(len(hosts) for _, hosts in ordered[_SHOWN:])
            lines.append(f"and {_plural(rest, 'row')} of {len(ordered) - _SHOWN} more audits")
        empty = _empty_sources(self.current)
        if empty:
            lines.append("schedule files that now define no audit: " + ", ".join(empty))
        return lines

    def _why(self, audit_name: str, hosts: list[str]) -> str:
        current = self.current
        if current is None:
            return ""
        missing = sum(1 for host in hosts if host not in current.hosts)
        if missing == len(hosts):
            return ": those hosts are gone from the definitions"
        if not any(s.audit_name == audit_name for s in current.schedules):
            return ": no schedule runs this audit any more"
        if missing:
            return f": {missing} of the hosts are gone, the others no longer in its targets"
        return ": its schedules no longer reach these hosts"

    def to_dict(self) -> dict[str, Any]:
        """The refusal for --json: counts, and the rows by audit."""
        by_audit = Counter(audit_name for audit_name, _host in self.gone)
        return {
            "refused": True,
            "would_remove": len(self.gone),
            "stored": self.stored,
            "allowed": self.allowed,
            "max_removal": self.max_removal,
            "by_audit": dict(sorted(by_audit.items())),
            "message": self.headline(),
        }


def _origins(gone: Sequence[Key], previous: Catalog | None) -> dict[str, str]:
    """For each gone audit, the schedules of the previous catalog that gave its rows."""
    if previous is None:
        return {}
    wanted = set(gone)
    found: dict[str, set[str]] = defaultdict(set)
    for pair in previous.pairs:
        if pair.key in wanted:
            schedule = pair.schedule
            found[pair.audit_name].add(f"{schedule.where.path} (target {schedule.target})")
    return {name: ": from " + ", ".join(sorted(places)) for name, places in found.items()}


def _empty_sources(catalog: Catalog | None) -> list[str]:
    if catalog is None:
        return []
    used = {s.where.path for s in catalog.schedules}
    return [path for path in catalog.sources if path not in used]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
