"""The engines registered in the state store, and asking them to stop."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..backends.base import EngineRecord, EngineRegistry
from ..config import lease_settings
from .runtime import Runtime

POLL = 0.2  # seconds between looks at the registry while waiting for engines to stop


def _registry(rt: Runtime) -> tuple[EngineRegistry, float]:
    """The state store's engines registry, and after how long a silent engine is dead."""
    lease, _, skew = lease_settings(rt.conf)
    return rt.backend.state.engine_registry(), lease + skew


@dataclass(frozen=True, slots=True)
class EngineList:
    now: datetime
    dead_after: float  # seconds without a heartbeat after which an engine is dead
    engines: list[EngineRecord]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [e.to_dict(self.now, self.dead_after) for e in self.engines]


def engines(rt: Runtime) -> EngineList:
    """Every engine that ran on this state store: running, stopping, stopped or dead."""
    registry, dead_after = _registry(rt)
    now = rt.clock.now()
    return EngineList(now, dead_after, registry.list())


@dataclass(frozen=True, slots=True)
class StopRequest:
    asked: list[str]  # the engines asked to stop
    still_running: list[str] | None  # after the wait; None: not waited for

    def to_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "still_running": self.still_running}


def stop(rt: Runtime, engine_id: str | None, wait: float | None = None) -> StopRequest:
    """Ask one engine (or, with engine_id None, every live one) to stop gracefully.

    Each reads the request at its next heartbeat and stops as on SIGTERM.
    wait: seconds to wait until they have stopped.
    """
    deadline = None if wait is None else time.monotonic() + wait
    registry, dead_after = _registry(rt)
    asked = registry.request_stop(engine_id, rt.clock.now(), dead_after)
    pending: set[str] = set(asked)
    while pending and deadline is not None and time.monotonic() < deadline:
        time.sleep(POLL)
        now = rt.clock.now()
        states = {e.engine_id: e.state(now, dead_after) for e in registry.list()}
        pending = {e for e in pending if states.get(e) in ("running", "stopping")}
    return StopRequest(asked, None if deadline is None else sorted(pending))
