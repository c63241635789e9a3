"""HOST:PORT as given on a command line (--bind, --metrics-port), checked once for both."""

from __future__ import annotations

from .errors import BadRequest


def parse_bind(bind: str, option: str, default_host: str | None = None) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets: [::1]:8080), or PORT alone given a default_host."""
    host, sep, port = bind.rpartition(":")
    if not sep and default_host is not None:
        host = default_host
    example = "127.0.0.1:8080" if default_host is None else "9100 or 0.0.0.0:9100"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"{option} {bind!r} is not HOST:PORT, e.g. {example}", option)
    return host.strip("[]"), int(port)
