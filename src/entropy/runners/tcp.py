"""kind: tcp - can a TCP connection be opened, and how fast.

Only the handshake is measured: the socket is closed at once, nothing is sent.
"""

from __future__ import annotations

import socket
import time

from ..model import Outcome, Result
from .base import Job
from .nagios import latency, thresholds, time_metric
from .template import ScriptError, as_text, render


def run(job: Job) -> Result:
    try:
        host, port = _address(job)
        warning_ms, critical_ms = thresholds(job.script.params)
    except ScriptError as exc:
        return Result(Outcome.ERROR, str(exc))

    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=job.timeout):
            ms = (time.perf_counter() - started) * 1000
    except TimeoutError:
        return Result(Outcome.CRITICAL, f"{where}: timed out after {job.timeout:g}s")
    except socket.gaierror as exc:
        return Result(Outcome.CRITICAL, f"{where}: cannot resolve the host name: {exc.strerror}")
    except OSError as exc:
        return Result(Outcome.CRITICAL, f"{where}: {(exc.strerror or str(exc)).lower()}")

    outcome, problem = latency(ms, warning_ms, critical_ms)
    summary = f"TCP connect to {where} in {ms:.1f} ms"
    return Result(
        outcome,
        f"{summary}: {problem}" if problem else summary,
        metrics={"time": time_metric(ms, warning_ms, critical_ms)},
    )


def _address(job: Job) -> tuple[str, int]:
    """(host, port): the script's `host` (placeholders allowed) or the host's IP."""
    params = job.script.params
    host = params.get("host")
    host = job.host.ip_address if host is None else render(as_text(host), job)
    port = params.get("port")
    if isinstance(port, str):
        port = render(port, job)  # e.g. "{vars.ssh_port}"
    try:
        number = int(port)  # type: ignore[arg-type]  # None, a list...: the TypeError is caught
    except (TypeError, ValueError):
        number = 0
    if isinstance(port, bool) or not 0 < number < 65536:
        raise ScriptError(f"port must be a number from 1 to 65535, got {port!r}")
    if not host:
        raise ScriptError("host must not be empty")
    return host, number
