"""What the API's routes share: the JSON encoding, errors as HTTP statuses, the backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..errors import EntropyError, NotFound, StoreUnavailable, Unsupported, ValidationError
from ..jsonout import to_json
from ..service.errors import BadRequest
from ..service.runtime import Runtime


class JSON(Response):
    """JSON as `--json` prints it: datetimes in ISO 8601 UTC, enums by value."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return to_json(content, indent=None, lenient=True).encode()


# Entropy's errors, by class (the first that matches), as HTTP statuses.
STATUSES: list[tuple[type[Exception], int]] = [
    (BadRequest, 400),
    (NotFound, 404),
    (Unsupported, 409),  # e.g. editing definitions that live in YAML
    (ValidationError, 409),  # the definitions are invalid: nothing can be acted on
    (StoreUnavailable, 503),
    (EntropyError, 400),
]


def error_response(request: Request, exc: Exception) -> JSON:
    status = next(code for kind, code in STATUSES if isinstance(exc, kind))
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, BadRequest) and exc.param:
        body["param"] = exc.param
    if isinstance(exc, ValidationError):
        body["problems"] = [str(p) for p in exc.problems]
    return JSON(body, status_code=status)


@contextmanager
def using(request: Request) -> Iterator[Runtime]:
    """The runtime requests share: its backend is safe between threads (backends.Backend),
    so a slow request (a long ad hoc run, a scrape) holds up no other."""
    yield request.app.state.runtime
