"""Running a transaction again when another writer won a race for the same rows.

Engines sharing a store write the same rows at the same moments (start-up
syncs, repair starts). When the database breaks a deadlock or refuses a
duplicate key, the loser's transaction was rolled back whole; trying again
sees what the winner wrote.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ..errors import StoreConflict

TRIES = 5

P = ParamSpec("P")
R = TypeVar("R")


def retried_on_race(transaction: Callable[P, R]) -> Callable[P, R]:
    """Run `transaction` again (up to TRIES times) on StoreConflict; other errors pass."""

    @functools.wraps(transaction)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(TRIES):
            try:
                return transaction(*args, **kwargs)
            except StoreConflict:
                if attempt + 1 == TRIES:
                    raise
                time.sleep(random.uniform(0.01, 0.05))  # let the winner commit
        raise AssertionError("unreachable")

    return retried
