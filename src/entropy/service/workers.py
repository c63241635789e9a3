"""Workers: `worker run`'s composition root, and who is alive (`workers`).

Both need only `[executor] transport_url`: nothing here touches the
Runtime's backend, so a worker never opens the state store. A worker process's
signal handlers (signals.py) and collector knob (gctuning.py) are set
here, its composition root, as compose.py sets an engine's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import gctuning
from ..broker.beats import beat_dict, live_workers, zone_queues
from ..broker.connection import CONNECTION_ERRORS, describe
from ..broker.protocol import ResultMessage
from ..broker.topology import Topology
from ..broker.worker import Worker, WorkerSettings
from ..errors import EntropyError
from ..values import zone_problem
from .brokerconf import broker_of, uses_broker
from .errors import BadRequest
from .runtime import Runtime
from .signals import stop_on_signals
from .zones import fleet_zones

LOG = logging.getLogger(__name__)


def checked_zone(zone: str, param: str = "--zone") -> str:
    problem = zone_problem(zone)
    if problem:
        raise BadRequest(problem, param)
    return zone


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """How a worker run ended."""

    worker_id: str
    done: int  # jobs replied to (results the broker confirmed)
    requeued: int  # jobs handed back to the broker at the stop
    refused: int  # job messages rejected (unreadable, another zone's)


class WorkerProcess:
    """A Worker made from a Runtime's config, run as the process's main job."""

    def __init__(
        self,
        rt: Runtime,
        zone: str | None = None,
        max_workers: int | None = None,
        on_reply: Callable[[ResultMessage], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        zone = checked_zone(zone or str(rt.option("zone", "executor")))
        url, topology = broker_of(rt)
        self.on_notice = on_notice or LOG.warning
        self.settings = WorkerSettings(
            url=url,
            zone=zone,
            max_workers=max_workers or int(rt.option("max_workers")),
            heartbeat_interval=float(rt.option("heartbeat_interval", "executor")),
            shutdown_grace=float(rt.option("shutdown_grace")),
            topology=topology,
        )
        self.worker = Worker(self.settings, rt.clock, on_reply, self.on_notice)

    def run(
        self, seconds: float | None = None, on_start: Callable[[], None] | None = None
    ) -> WorkerReport:
        """Run until a signal (or for `seconds`). Until the worker first consumes (the
        broker out of reach at start), a signal leaves at once; then the first stops it
        gracefully, the second ends the grace period, a third leaves at once."""
        # Imported here, before any signal: the composition root (the engine's whole stack)
        # is not imported by every short CLI command, which all import this module.
        from .compose import leave_now

        stop_on_signals(self.worker, self.on_notice, lambda status: leave_now(None, status),
                        "worker", "the broker hands unfinished jobs out again")  # fmt: skip
        gctuning.freeze_start_up()
        if on_start is not None:
            on_start()
        self.worker.run(seconds)
        w = self.worker
        return WorkerReport(w.worker_id, w.done, w.requeued, w.refused)


@dataclass(frozen=True, slots=True)
class WorkersReport:
    """The live workers, each zone's queue, and the zones asked for that have no worker."""

    workers: list[dict[str, Any]]
    zones: list[dict[str, Any]]
    orphaned: list[str]
    topology: Topology

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "zones": self.zones}


def workers(rt: Runtime, zones: tuple[str, ...] = (), wait: float = 2.0) -> WorkersReport:
    """Who answers a ping within `wait` seconds, by zone; and the queues of those zones and
    of `zones` (the ones that should have a worker: with executor = broker, the zones of
    the fleet's hosts too)."""
    expected = [checked_zone(zone) for zone in zones]
    url, topology = broker_of(rt)
    if uses_broker(rt):  # the fleet's zones should have workers too, when it is readable
        try:
            expected += sorted(set(fleet_zones(rt)) - set(expected))
        except EntropyError as exc:
            LOG.debug("no fleet zones to check: %s", exc)
    try:
        beats = live_workers(url, topology, wait)
        names = sorted({*expected, *(beat.zone for beat in beats)})
        queues = zone_queues(url, topology, names)
    except CONNECTION_ERRORS as exc:
        raise EntropyError(f"cannot reach {describe(url)}: {exc}") from None
    now = time.time()
    report = [
        {"zone": q.zone, "workers": sum(1 for b in beats if b.zone == q.zone),
         "waiting": q.waiting, "consumers": q.consumers, "queue": q.exists}
        for q in queues
    ]  # fmt: skip
    orphaned = [z["zone"] for z in report if z["zone"] in expected and not z["workers"]]
    return WorkersReport([beat_dict(beat, now) for beat in beats], report, orphaned, topology)
