"""Where each recorded result goes next: the one place the recorder hands results on."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..events import Events
from ..model import Result
from ..repairs import Repairer
from ..scheduler import Scheduler
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
    ) -> None:
        self.scheduler = scheduler
        self.on_result = on_result
        self.events = events
        self.repairer = repairer

    def recorded(self, batch: list[Finished]) -> None:
        if self.on_result:
            for _, result, _ in batch:
                try:
                    self.on_result(result)
                except Exception:  # a broken printer must not stop recording
                    LOG.exception("result callback failed")
        try:
            if self.events:
                for _, result, _ in batch:
                    self.events.audit(result)
            catalog = self.scheduler.catalog
            if self.repairer and catalog is not None and catalog.repairs:
                recorded = [(due.row_id, due.pair, result) for due, result, _ in batch]
                self.repairer.consider(catalog, recorded)
        except Exception:
            LOG.exception("events or repairs failed for %d results", len(batch))

    def close(self) -> None:
        """After the recorder's last batch: the repairer may still have been handed repairs."""
        if self.repairer:
            self.repairer.shutdown()
        if self.events:
            self.events.close()
