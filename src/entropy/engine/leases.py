"""The rows this engine holds: claimed, not yet recorded or given back."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Leases:
    """Row ids whose leases the heartbeat renews, behind one lock.

    The dispatcher adds what it claimed, the recorder removes what it stored
    or dropped, the heartbeat reads them, the shutdown clears them once the
    store took them back. Each call takes the lock once, for a whole batch.
    """

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def hold(self, rows: Iterable[int]) -> None:
        with self._lock:
            self._held.update(rows)

    def let_go(self, rows: Iterable[int]) -> None:
        with self._lock:
            self._held.difference_update(rows)

    def held(self) -> list[int]:
        with self._lock:
            return list(self._held)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
