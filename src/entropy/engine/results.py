"""Finished results on their way from the executor to the recorder: one bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

from ..model import Result
from ..scheduler import Due

LOG = logging.getLogger(__name__)

# A result, with the next slot done() gave its pair; None for a pair with monitoring, whose
# next run the recorder's monitoring step decides (engine/monitor.py).
Finished = tuple[Due, Result, datetime | None]
_ROOM_POLL = 0.05  # seconds between looks for room while the queue is full


class ResultQueue:
    """Results waiting for the recorder, at most `size`; None in it is the recorder's last call.

    Its state is the queue: workers put() (holding while it is full, logged,
    until the recorder makes room), the recorder collect()s batches. Waits
    here are real time: they pace threads against each other and against
    the store, they are not schedule time.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        # A list: results handed over together (put_many), one item for all of them.
        self._queue: queue.SimpleQueue[Finished | list[Finished] | None] = queue.SimpleQueue()
        # Results beyond one a list (len - 1 each): put (under _lock), and taken (the
        # consumer's thread only); qsize() counts a list as one.
        self._listed_in = 0
        self._listed_out = 0
        self._lock = threading.Lock()
        self._full = False  # workers are waiting for room (said once in the log)
        self._abandoned = False  # past the grace period: nobody waits for room any more
        self._burst = False  # the consumer's last batch was full (see collect)

    def put(self, item: Finished) -> None:
        """Queue a result; wait while the queue is full (the store is not taking them)."""
        if self.waiting() >= self.size:
            self._wait_for_room()
        self._queue.put(item)

    def put_many(self, items: list[Finished]) -> None:
        """Queue results received together (the broker's, one batch a read from its socket):
        one queue operation for all, and the recorder wakes once for them."""
        if self.waiting() >= self.size:
            self._wait_for_room()
        if not items:
            return
        with self._lock:
            self._listed_in += len(items) - 1
        self._queue.put(items)

    def waiting(self) -> int:
        """Results queued (a list counts as its results)."""
        return self._queue.qsize() + self._listed_in - self._listed_out

    def close(self) -> None:
        """Tell the recorder to write what is queued and stop."""
        self._queue.put(None)

    def abandon(self) -> None:
        """Workers waiting for room stop waiting (the engine is giving up on their results)."""
        self._abandoned = True

    def _wait_for_room(self) -> None:
        limit = self.size
        if not self._full:
            self._full = True
            LOG.error("%d results are waiting for the state store (result queue full): audits "
                      "pause until it takes them", self.waiting())  # fmt: skip
        while self.waiting() >= limit and not self._abandoned:
            time.sleep(_ROOM_POLL)
        if self._full:
            self._full = False
            LOG.warning("the result queue has room again: audits go on")

    def collect(
        self, batch: list[Finished], limit: int, interval: float, idle: Callable[[], bool]
    ) -> bool:
        """Add waiting results to batch (up to limit), waiting up to interval; True once closed.

        After a full batch (a burst of results), the burst's last results are
        handed back as soon as idle() says nothing more is coming (no claimed
        audit left unfinished), not `interval` later: nothing more can come
        until the next claim. One consumer only.
        """
        deadline = time.monotonic() + interval
        results = self._queue
        while len(batch) < limit:
            try:
                item = results.get_nowait()  # drain what is there without timers
            except queue.Empty:
                if self._burst and idle():
                    self._burst = False
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._burst = False
                    return False
                try:
                    item = results.get(timeout=remaining)
                except queue.Empty:
                    self._burst = False
                    return False
            if item is None:
                return True
            if isinstance(item, list):  # put_many's: the batch may pass limit by its length
                self._listed_out += len(item) - 1
                batch += item
            else:
                batch.append(item)
        self._burst = True
        return False
