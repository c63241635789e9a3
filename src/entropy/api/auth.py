"""Bearer tokens and roles: who may read, who may act, and the log line of every act."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException, Request

from ..service.tokens import Role, Token, TokenFile

COOKIE = "entropy_token"  # the dashboard's: set by /login, good for reading pages only
ACTS = "entropy.api.acts"  # the logger of every act, by token name; INFO and up always show
_log = logging.getLogger(ACTS)

# Token-free access to a path, when its [api] option allows it.
OPEN_PATHS = {"/metrics": "metrics_without_token", "/healthz": "healthz_without_token"}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="entropy"'})


def caller(request: Request) -> Token:
    """The token the request carries (Authorization: Bearer TOKEN); 401 without a valid one.

    A GET may carry it in the dashboard's cookie instead; an act never does, so
    another site's page cannot make a logged-in browser act (no CSRF).
    """
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header and request.method == "GET":
        scheme, secret = "bearer", request.cookies.get(COOKIE, "")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("a bearer token is needed: Authorization: Bearer TOKEN")
    tokens: TokenFile = request.app.state.tokens
    found = tokens.check(secret.strip())
    if found is None:
        raise _unauthorized("this token is not known (or was removed)")
    return found


def reader(request: Request) -> Token | None:
    """Any valid token; none at all on a path configured to be open (/metrics, /healthz)."""
    option = OPEN_PATHS.get(request.url.path)
    if option and request.app.state.open_paths.get(option):
        return None
    return caller(request)


def operator(request: Request) -> Token:
    """An operator's token: a reader's is refused with 403."""
    token = caller(request)
    if token.role is not Role.OPERATOR:
        raise HTTPException(403, f"token {token.name!r} is a reader's: acting needs an operator's")
    return token


def log_act(token: Token, act: str, **details: Any) -> None:
    """One log line per act, naming the token (the who) and what was asked."""
    said = ", ".join(f"{k}={v}" for k, v in details.items() if v is not None)
    _log.info(
        f"{act} by token {token.name!r}" + (f" ({said})" if said else ""),
        extra={"token": token.name, "role": token.role.value, "act": act, **details},
    )
