"""Acts on the fleet as a whole: validate, sync, disable and enable audits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from ..model import Catalog, SyncReport
from .runtime import Runtime, actor


def validate(rt: Runtime) -> Catalog:
    """The definitions, loaded and validated; ValidationError lists every problem."""
    return rt.backend.load()


def counts(catalog: Catalog) -> dict[str, Any]:
    """What `validate --json` reports of valid definitions."""
    return {
        "valid": True,
        "hosts": len(catalog.hosts),
        "scripts": len(catalog.scripts),
        "schedule_files": len(catalog.sources),
        "audits": len(catalog.pairs),
    }


def problems(exc: ValidationError) -> dict[str, Any]:
    """Invalid definitions, each problem with its place (path, line, col)."""
    found = [
        {"path": p.where.path, "line": p.where.line, "col": p.where.col, "message": p.message}
        for p in exc.problems
    ]
    return {"valid": False, "problems": found}


@dataclass(frozen=True, slots=True)
class Synced:
    summary: str  # the catalog's, e.g. "3 hosts, 2 scripts, ... -> 6 audits"
    report: SyncReport
    audits: int  # the pairs the definitions give

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "added": r.added,
            "removed": r.removed,
            "kept": r.kept,
            "updated": r.updated,
            "restored_disables": r.restored,
            "remembered_disables": r.remembered,
            "audits": self.audits,
        }


def sync(rt: Runtime, force: bool = False) -> Synced:
    """Make the audit rows match the definitions; RemovalRefused past max_removal unless forced."""
    catalog = rt.backend.load()
    report = rt.backend.sync(catalog, rt.clock.now(), force=force, actor=actor("sync"))
    return Synced(catalog.summary(), report, len(catalog.pairs))


@dataclass(frozen=True, slots=True)
class Toggled:
    """What `disable` or `enable` changed."""

    verb: str  # disable | enable
    audit: str
    changed: int  # rows changed
    hosts: list[str]  # the hosts selected
    reason: str | None = None
    # (host, where) of pairs the definitions disable: enable cannot lift that.
    still_disabled: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            self.verb + "d": self.changed,
            "hosts": self.hosts,
            "still_disabled_by_definitions": sorted(host for host, _ in self.still_disabled),
        }


def set_disabled(
    rt: Runtime,
    audit: str,
    disable: bool,
    reason: str | None = None,
    host: str | None = None,
    group: str | None = None,
) -> Toggled:
    """Disable AUDIT (with a reason) or enable it: everywhere, on one host or on a group.

    Rows for pairs not synced yet are added first so they can be disabled;
    nothing is removed (that is sync's business, with its consent).
    """
    verb = "disable" if disable else "enable"
    backend = rt.backend
    catalog = backend.load()
    now = rt.clock.now()
    backend.sync(catalog, now, remove=False, actor=actor(verb))
    pairs = catalog.select(audit, host, group)
    changed = backend.set_disabled(pairs, reason if disable else None, now)
    still = [(p.host, str(p.schedule.where)) for p in pairs if not disable and p.schedule.disabled]
    hosts = sorted(p.host for p in pairs)
    return Toggled(verb, audit, changed, hosts, reason if disable else None, still)
