"""`ssh check`: log in to hosts the way kind: ssh does, run nothing, say how each went."""

from __future__ import annotations

from typing import Any

from ..ssh import client as ssh_client
from ..ssh.settings import Target, target_for
from .runtime import Runtime


def check(rt: Runtime, host: str | None = None, group: str | None = None) -> list[dict[str, Any]]:
    """One row per host: host, target, via (the jump host), result (ok or why not), seconds,
    detail. All hosts are tried at once, within [ssh] connect_timeout."""
    hosts = rt.backend.load().select_hosts(host, group)
    client = ssh_client.default()
    targets = [target_for(h, client.settings) for h in hosts]
    logins = client.check(targets, client.settings.connect_timeout)
    return [
        {
            "host": h.name,
            "target": f"{login.target.user}@{_address(login.target)}:{login.target.port}",
            "via": None if login.target.jump is None else str(login.target.jump),
            "result": "ok" if login.failure is None else login.failure.cause,
            "seconds": round(login.elapsed, 3),
            "detail": "" if login.failure is None else str(login.failure),
        }
        for h, login in zip(hosts, logins, strict=True)
    ]


def _address(target: Target) -> str:
    return f"[{target.address}]" if ":" in target.address else target.address
