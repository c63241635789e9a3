"""Errors an operator can act on: each one says where the problem is."""

from __future__ import annotations

from dataclasses import dataclass


class EntropyError(Exception):
    """Base of every error Entropy raises on purpose."""


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a definitions file; line and col count from 1."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}:{self.col}"


class ConfigError(EntropyError):
    """One problem in the definitions, at a known place."""

    def __init__(self, where: Location, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class ValidationError(EntropyError):
    """The definitions have problems; nothing was changed because of them."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (p.where.path, p.where.line, p.where.col, p.message)
        )
        count = len(self.problems)
        head = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the definitions:\n{head}")


class BackendError(EntropyError):
    """A backend could not be chosen, opened or used."""


class Unsupported(BackendError):
    """The backend cannot serve this command: it lacks the capability it needs."""


class StoreError(BackendError):
    """The state store (or a database holding definitions) failed an operation.

    Each store translates its driver's errors into one of the four kinds
    below, in one place, so callers decide by kind, never by driver.
    """


class StoreUnavailable(StoreError):
    """Transient: the connection was lost or refused, timed out, or the store is busy.

    Worth retrying with backoff: the same operation may succeed once it is back.
    """


class StoreConflict(StoreError):
    """Lost a race with another writer (a deadlock, a duplicate key, a serialization
    failure); the transaction was rolled back whole and may simply be run again."""


class SchemaOutOfDate(StoreError):
    """The store's schema is not the one this Entropy needs; `entropy db upgrade` fixes it."""


class StorageFailure(StoreError):
    """Permanent: the store refuses the operation itself (a missing column, a
    constraint). Retrying the same write will not help. (A full disk is
    StoreUnavailable: once space is freed, the same write succeeds.)"""


class NotFound(EntropyError):
    """A named thing (audit, host, group) does not exist."""


class DurationError(EntropyError, ValueError):
    """A duration or cron expression could not be understood."""


class NoState(BackendError):
    """A command that only reads found no state store: nothing was synced or run yet."""

    def __init__(self, path: object) -> None:
        super().__init__(
            f"no state yet at {path}; run `entropy sync` or `entropy engine run` first"
        )
        self.path = path
