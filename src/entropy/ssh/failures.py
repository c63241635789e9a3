"""Why a connection or a remote command failed, named as check_by_ssh would.

Every failure of the connection (not of the command) becomes an SshFailure
with a short `cause` (auth, host key, refused, timeout, unreachable,
dropped, ...) and a message naming the target; the runner reports it as
outcome `unknown`. Nothing here raises past the runner.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from .settings import Target

AUTH = "auth"
HOST_KEY = "host key"
REFUSED = "refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
DROPPED = "dropped"
BUSY = "busy"
ERROR = "error"
CONFIG = "config"  # [ssh] itself is wrong: the audit could not run (outcome error)
STOPPING = "stopping"  # this process is ending (Ctrl-C): not started (outcome error)


class SshFailure(Exception):
    """The connection (or its channel) failed; `cause` is one of the names above."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message

    def __str__(self) -> str:
        return self.message


def classify(exc: BaseException, target: Target, timeout: float) -> SshFailure:
    """The SshFailure an exception from connecting to target stands for."""
    import asyncssh  # only once a connection is tried

    if isinstance(exc, SshFailure):
        return exc
    where = str(target)
    if isinstance(exc, asyncssh.PermissionDenied):
        return SshFailure(AUTH, f"{where}: authentication failed ({_reason(exc)})")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return SshFailure(HOST_KEY, f"{where}: host key not verifiable ({_reason(exc)})")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return SshFailure(TIMEOUT, f"{where}: no SSH login within {timeout:g}s")
    if isinstance(exc, ConnectionRefusedError):
        return SshFailure(REFUSED, f"{where}: connection refused")
    if isinstance(exc, socket.gaierror):
        return SshFailure(UNREACHABLE, f"{where}: cannot resolve the address: {exc.strerror}")
    if isinstance(exc, asyncssh.ConnectionLost | ConnectionResetError | BrokenPipeError):
        return SshFailure(DROPPED, f"{where}: connection dropped ({_reason(exc)})")
    if isinstance(exc, asyncssh.DisconnectError):
        return SshFailure(ERROR, f"{where}: disconnected: {_reason(exc)}")
    if isinstance(exc, OSError):
        return SshFailure(UNREACHABLE, f"{where}: {(exc.strerror or str(exc)).lower()}")
    return SshFailure(ERROR, f"{where}: {type(exc).__name__}: {exc}")


def _reason(exc: Any) -> str:
    return str(getattr(exc, "reason", "") or exc or type(exc).__name__)
