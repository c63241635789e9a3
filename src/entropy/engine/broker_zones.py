"""The broker executor's zone watcher: zones with jobs out and no worker, said once per outage.

Every watch_interval it looks (a passive declare per queue, on a connection
of its own) at the zones that have had a job out for a second or more:
where results come back quickly, nothing is looked at. A zone whose queue
has no consumer is logged once (its audits wait there, not run elsewhere),
and again when a worker comes back. Each look also calls `sweep` (the
executor's: jobs out longer than they can be are answered).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..broker.beats import zone_queues
from ..broker.connection import CONNECTION_ERRORS
from ..broker.topology import Topology

LOG = logging.getLogger(__name__)

Waiting = Callable[[float], dict[str, int]]  # jobs out per zone, published > N seconds ago


class ZoneWatcher:
    """A thread that names the zones no worker serves while jobs wait there."""

    def __init__(self, url: str, topology: Topology, waiting: Waiting, interval: float,
                 sweep: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.url, self.topology, self.waiting, self.interval = url, topology, waiting, interval
        self.sweep = sweep
        self.orphaned: dict[str, int] = {}  # zone -> jobs waiting, at the last look
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="entropy-zones", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.sweep is not None:
                    self.sweep()
                self.watch_once()
            except CONNECTION_ERRORS as exc:  # the client says so already
                LOG.debug("cannot look at the zones' queues: %s", exc)
            except Exception:
                LOG.exception("watching the zones failed")

    def watch_once(self) -> dict[str, int]:
        """One look: the zones with jobs out and no consumer on their queue."""
        waiting = self.waiting(min(self.interval, 1.0))
        if not waiting and not self.orphaned:
            return {}
        queues = zone_queues(self.url, self.topology, sorted({*waiting, *self.orphaned}))
        orphaned = {q.zone: waiting.get(q.zone, 0) for q in queues
                    if waiting.get(q.zone) and not q.consumers}  # fmt: skip
        for zone, count in orphaned.items():
            if zone not in self.orphaned:
                LOG.warning(
                    "zone %s has no live worker: %d audits wait in %s and are not run "
                    "elsewhere; start `entropy worker run --zone %s`",
                    zone, count, self.topology.zone_queue(zone), zone,
                )  # fmt: skip
        for zone in self.orphaned:
            if zone not in orphaned:
                LOG.warning("zone %s has a worker again: its audits run", zone)
        self.orphaned = orphaned
        return orphaned
