"""What every runner takes and gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import Catalog, Host, Pair, Result, Script


@dataclass(frozen=True, slots=True)
class Job:
    """One script to run against one host, with everything it needs."""

    audit_name: str
    host: Host
    script: Script
    params: dict[str, Any] = field(default_factory=dict)  # the schedule's params
    timeout: float = 60.0  # seconds

    @classmethod
    def for_pair(cls, catalog: Catalog, pair: Pair, default_timeout: float) -> Job:
        """The job a pair runs: its script, its schedule's params, the nearest timeout."""
        script = catalog.scripts[pair.audit_name]
        timeout = pair.schedule.timeout or script.timeout or default_timeout
        return cls(
            pair.audit_name, catalog.hosts[pair.host], script, pair.schedule.params, float(timeout)
        )


Runner = Callable[[Job], Result]
