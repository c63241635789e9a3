"""`entropy ssh check`: can the engine log in to each host over SSH, and how fast."""

from __future__ import annotations

import sys

import click

from ..service import ssh as ssh_ops
from ..service.runtime import Runtime
from .common import exclusive_host_group, group, json_option, pass_runtime
from .output import print_json, print_table, say


@group("ssh")
def ssh() -> None:
    """Reach hosts over SSH (kind: ssh scripts use the same connections)."""


@ssh.command("check")
@click.option("--host", help="Only this host.")
@click.option("--group", help="Only the hosts of this group.")
@json_option
@pass_runtime
def check(rt: Runtime, host: str | None, group: str | None, as_json: bool) -> None:
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
    exclusive_host_group(host, group)
    rows = ssh_ops.check(rt, host, group)
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
        say(f"{len(rows) - failed} of {len(rows)} hosts reached")
    if any(row["result"] != "ok" for row in rows):
        sys.exit(1)


COMMANDS = [ssh]
