"""Zones and their workers, for `entropy status` and `entropy workers` (executor = broker).

A zone whose hosts have audits due or claimed, and no live worker, runs
none of them: its jobs wait in its queue on the broker, not anywhere else.
Who is alive comes from the workers' heartbeats (broker.beats.live_workers:
a ping, then what answers within `wait`), so this costs that wait.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..broker.beats import live_workers
from ..broker.connection import CONNECTION_ERRORS, describe
from ..errors import EntropyError
from ..model import AuditRow, Status
from .brokerconf import broker_of, uses_broker
from .runtime import Runtime


@dataclass(frozen=True, slots=True)
class ZoneWithoutWorker:
    """A zone of the fleet that no live worker takes jobs for."""

    zone: str
    hosts: int
    waiting: int  # audits due now or claimed (out on the broker), not run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fleet_zones(rt: Runtime) -> dict[str, set[str]]:
    """Zone -> its hosts' names, from the definitions."""
    zones: dict[str, set[str]] = {}
    for host in rt.backend.load().hosts.values():
        zones.setdefault(host.zone, set()).add(host.name)
    return zones


def zones_without_workers(
    rt: Runtime, rows: list[AuditRow], now: datetime, wait: float = 1.0
) -> list[ZoneWithoutWorker] | None:
    """The fleet's zones no live worker serves, with the audits waiting for one.

    None when the engines run audits on their own pool (executor = pool).
    """
    if not uses_broker(rt):
        return None
    url, topology = broker_of(rt)
    try:
        alive = {beat.zone for beat in live_workers(url, topology, wait)}
    except CONNECTION_ERRORS as exc:
        raise EntropyError(f"cannot reach {describe(url)} to list the workers: {exc}") from None
    found = []
    for zone, names in sorted(fleet_zones(rt).items()):
        if zone in alive:
            continue
        waiting = sum(
            1 for r in rows
            if r.host in names and not r.disabled
            and (r.status is Status.PROCESSING or r.next_run <= now)
        )  # fmt: skip
        found.append(ZoneWithoutWorker(zone, len(names), waiting))
    return found
