"""`entropy ssh check`: can the engine log in to each host over SSH, and how fast.

Registered by cli.py; like the rest of the CLI, nothing imports this. It
logs in the way kind: ssh does (same [ssh] settings, known_hosts, jump
hosts), runs nothing, and names what failed the check_by_ssh way.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

import click

from .errors import NotFound
from .jsonout import print_json
from .model import Catalog, Host
from .ssh import client as ssh_client
from .ssh.settings import target_for
from .textout import print_table


@click.group("ssh")
def ssh() -> None:
    """Reach hosts over SSH (kind: ssh scripts use the same connections)."""


@ssh.command("check")
@click.option("--host", help="Only this host.")
@click.option("--group", help="Only the hosts of this group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def check(session: Any, host: str | None, group: str | None, as_json: bool) -> None:
    """Log in to every host (or one --host or --group) and say how it went.

    Each host is reached as kind: ssh reaches it: its ssh: entry in
    hosts.yaml (address, port, user, jump) over the [ssh] defaults, keys
    checked against [ssh] known_hosts. Nothing is run there. RESULT is ok,
    or why not: auth, host key (unknown or changed; never accepted unless
    accept_new_host_keys and the host is new), refused, timeout (nothing
    within [ssh] connect_timeout), unreachable, dropped, error. All hosts
    are tried at once. Exit status 0 when every login worked, 1 otherwise.

    \b
    Examples:
      entropy ssh check
      entropy ssh check --group compute --json
      entropy --config-file /etc/entropy/entropy.conf ssh check --host compute-01.example.com
    """
    if host and group:
        raise click.UsageError("give --host or --group, not both")
    hosts = _select(session.backend.load(), host, group)
    client = ssh_client.default()
    targets = [target_for(h, client.settings) for h in hosts]
    logins = client.check(targets, client.settings.connect_timeout)
    rows = [
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
    if as_json:
        print_json(rows)
    else:
        table = [("HOST", "TARGET", "RESULT", "TIME", "DETAIL")]
        for row in rows:
            via = f" via {row['via']}" if row["via"] else ""
            table.append((row["host"], row["target"] + via, row["result"],
                          f"{row['seconds'] * 1000:.0f} ms", row["detail"]))  # fmt: skip
        print_table(table)
        failed = sum(1 for row in rows if row["result"] != "ok")
        click.echo(f"{len(rows) - failed} of {len(rows)} hosts reached", err=True)
    if any(row["result"] != "ok" for row in rows):
        sys.exit(1)


def _select(catalog: Catalog, host: str | None, group: str | None) -> list[Host]:
    if host:
        if host not in catalog.hosts:
            close = difflib.get_close_matches(host, list(catalog.hosts), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise NotFound(f"unknown host {host!r}{hint}")
        return [catalog.hosts[host]]
    hosts = list(catalog.hosts.values())
    if group:
        hosts = [h for h in hosts if h.in_group(group)]
        if not hosts:
            raise NotFound(f"no host is in group {group!r}")
    if not hosts:
        raise NotFound("the definitions have no hosts")
    return hosts


def _address(target: Any) -> str:
    return f"[{target.address}]" if ":" in target.address else target.address
