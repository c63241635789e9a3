"""Errors of a request itself, which the front end words (CLI: usage error; API: 400)."""

from __future__ import annotations

from ..errors import EntropyError


class BadRequest(EntropyError):
    """The request cannot be served as asked; `param` names the argument at fault, if one."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
