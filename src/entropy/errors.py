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
