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

from sqlalchemy.exc import IntegrityError

from ...errors import BackendError

TRIES = 5
# PostgreSQL: deadlock, serialization failure. MySQL/MariaDB: deadlock, lock wait timeout.
_PG_STATES, _MYSQL_ERRNOS = frozenset({"40P01", "40001"}), frozenset({1213, 1205})

P = ParamSpec("P")
R = TypeVar("R")


def lost_a_race(exc: BackendError) -> bool:
    """Whether the database rolled the transaction back for another writer's sake."""
    cause = exc.__cause__
    if isinstance(cause, IntegrityError):
        return True
    orig = getattr(cause, "orig", None)
    if getattr(orig, "sqlstate", None) in _PG_STATES:
        return True
    args = getattr(orig, "args", ())
    return bool(args) and args[0] in _MYSQL_ERRNOS


def retried_on_race(transaction: Callable[P, R]) -> Callable[P, R]:
    """Run `transaction` again (up to TRIES times) when it lost a race; other errors pass."""

    @functools.wraps(transaction)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(TRIES):
            try:
                return transaction(*args, **kwargs)
            except BackendError as exc:
                if attempt + 1 == TRIES or not lost_a_race(exc):
                    raise
                time.sleep(random.uniform(0.01, 0.05))  # let the winner commit
        raise AssertionError("unreachable")

    return retried
