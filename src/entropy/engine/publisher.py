"""Where each recorded result goes next: the one place the recorder hands results on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ..clock import Clock
from ..events import Events
from ..model import Catalog, Downtime, Result
from ..monitor_record import Applied, publish
from ..repairs import Repairer
from ..scheduler import Scheduler
from .monitor import Downtimes
from .results import Finished

LOG = logging.getLogger(__name__)

ResultCallback = Callable[[Result], None]


class Publisher:
    """After a batch is stored: the result printer, the events, then the repairer.

    The recorder calls recorded() once per stored batch, on its own thread,
    and nothing else; what a recorded result should set off next (monitoring
    states too) belongs here. Nothing here may take the recorder down: it is
    what keeps results stored.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        on_result: ResultCallback | None = None,
        events: Events | None = None,
        repairer: Repairer | None = None,
        clock: Clock | None = None,
        downtimes: Downtimes | None = None,
    ) -> None:
        """clock, downtimes: for the monitoring rules' events."""
        self.scheduler = scheduler
        self.on_result = on_result
        self.events = events
        self.repairer = repairer
        self.clock = clock
        self.downtimes_of = downtimes

    def recorded(self, batch: list[Finished], applied: dict[int, Applied] | None = None) -> None:
        """applied: what the monitoring rules made of the batch's monitored results, by row."""
        if self.on_result:
            for _, result, _ in batch:
                try:
                    self.on_result(result)
                except Exception:  # a broken printer must not stop recording
                    LOG.exception("result callback failed")
        try:
            if self.events:
                downtimes = self.downtimes(self.scheduler.catalog)
                if applied or downtimes:
                    self._monitored_events(batch, applied or {}, downtimes)
                else:
                    for _, result, _ in batch:
                        self.events.audit(result)
            catalog = self.scheduler.catalog
            if self.repairer and catalog is not None and catalog.repairs:
                recorded = [(due.row_id, due.pair, result) for due, result, _ in batch]
                self.repairer.consider(catalog, recorded)
        except Exception:
            LOG.exception("events or repairs failed for %d results", len(batch))

    def _monitored_events(
        self, batch: list[Finished], applied: dict[int, Applied], downtimes: list[Downtime]
    ) -> None:
        """Events when monitoring is in play: problems in a downtime marked, unreachable and
        repeated acknowledged ones left out; hard state changes and flapping published."""
        events = self.events
        assert events is not None
        catalog = self.scheduler.catalog
        now = self.clock.now() if self.clock is not None else datetime.now(UTC)
        for due, result, _ in batch:
            host = catalog.hosts.get(due.pair.host) if catalog is not None else None
            publish(events, result, applied.get(due.row_id), downtimes, host, now)

    def downtimes(self, catalog: Catalog | None) -> list[Downtime]:
        return self.downtimes_of.of(catalog) if self.downtimes_of is not None else []

    def close(self) -> None:
        """After the recorder's last batch: the repairer may still have been handed repairs."""
        if self.repairer:
            self.repairer.shutdown()
        if self.events:
            self.events.close()
