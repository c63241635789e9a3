"""`entropy host`, `schedule` and `script`: definitions kept in a database."""

from __future__ import annotations

from typing import Any

import click
import yaml

from .. import yamlread
from ..service import definitions as defs
from ..service.runtime import Runtime
from .common import group, json_option, pass_runtime
from .output import report


def _pairs(values: tuple[str, ...], option_name: str) -> dict[str, Any]:
    """`k=v` options as a mapping; each value read as YAML (12 -> int, [a, b] -> list)."""
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option_name)
        try:  # bounded like a file's YAML: aliases, nesting, 5000-digit numbers
            result[key] = yamlread.loads(value) if value else ""
        except (yaml.YAMLError, ValueError):
            result[key] = value
    return result


@group()
def host() -> None:
    """Add or remove hosts (sqlalchemy backend; the dir and file backends use YAML)."""


@host.command("add")
@click.argument("name")
@click.option("--ip", "ip_address", required=True, help="The host's IP address.")
@click.option("--type", "host_type", required=True, help="Its main group: compute, control, ...")
@click.option("--group", "groups", multiple=True, help="Another group it is in (repeatable).")
@click.option(
    "--var",
    "host_vars",
    multiple=True,
    metavar="KEY=VALUE",
    help="A variable scripts can use as {vars.KEY} (repeatable).",
)
@click.option(
    "--ssh",
    "ssh",
    multiple=True,
    metavar="KEY=VALUE",
    help="How kind: ssh reaches it: address, port, user, jump (repeatable).",
)
@json_option
@pass_runtime
def host_add(
    rt: Runtime,
    name: str,
    ip_address: str,
    host_type: str,
    groups: tuple[str, ...],
    host_vars: tuple[str, ...],
    ssh: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add host NAME, or replace the host of that name.

    --json prints {"change": "added" or "replaced", "host": NAME}.

    \b
    Example:
      entropy --backend sqlite:///fleet.db host add compute-01.example.com \\
          --ip 10.0.0.11 --type compute --group hypervisor --var rack=r1 \\
          --ssh user=admin --ssh jump=ops@bastion.example.com
    """
    variables, reach = _pairs(host_vars, "--var"), (_pairs(ssh, "--ssh") if ssh else None)
    change = defs.add_host(rt, name, ip_address, host_type, list(groups), variables, reach)
    report(as_json, {"change": change, "host": name}, f"{change} host {name}")


@host.command("remove")
@click.argument("name")
@json_option
@pass_runtime
def host_remove(rt: Runtime, name: str, as_json: bool) -> None:
    """Remove host NAME (refused while a schedule names it as its target).

    --json prints {"change": "removed", "host": NAME}. Its audit rows go at
    the next sync, within max_removal.
    """
    defs.remove_host(rt, name)
    report(as_json, {"change": "removed", "host": name}, f"removed host {name}")


@group()
def schedule() -> None:
    """Add or remove schedules (sqlalchemy backend; the dir and file backends use YAML)."""


@schedule.command("add")
@click.argument("target")
@click.argument("audit_name", metavar="AUDIT")
@click.option("--every", metavar="DURATION", help="Fixed-rate interval, e.g. 30mins, 1day.")
@click.option("--cron", metavar="EXPR", help='Five-field cron, e.g. "*/5 * * * *".')
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter scripts can use as {params.KEY} (repeatable).",
)
@click.option("--timeout", metavar="DURATION", help="How long a run may take.")
@click.option("--disabled-reason", metavar="TEXT", help="Add it disabled, saying why.")
@json_option
@pass_runtime
def schedule_add(
    rt: Runtime,
    target: str,
    audit_name: str,
    every: str | None,
    cron: str | None,
    params: tuple[str, ...],
    timeout: str | None,
    disabled_reason: str | None,
    as_json: bool,
) -> None:
    """Run AUDIT on TARGET (a group or a host) every DURATION or on a cron schedule.

    --json prints {"change": "added" or "replaced", "target": TARGET,
    "audit_name": AUDIT, "timing": e.g. "every 30m"}.

    \b
    Example:
      entropy --backend sqlite:///fleet.db schedule add compute \\
          check_nova_config_exists --every 1day
    """
    if (every is None) == (cron is None):
        raise click.UsageError("give exactly one of --every or --cron")
    values = _pairs(params, "--param")
    change, timing = defs.add_schedule(rt, target, audit_name, every, cron, values, timeout,
                                       disabled_reason)  # fmt: skip
    report(
        as_json,
        {"change": change, "target": target, "audit_name": audit_name, "timing": timing},
        f"{change} {audit_name} on {target}: {timing}",
    )


@schedule.command("remove")
@click.argument("target")
@click.argument("audit_name", metavar="AUDIT")
@json_option
@pass_runtime
def schedule_remove(rt: Runtime, target: str, audit_name: str, as_json: bool) -> None:
    """Stop running AUDIT on TARGET.

    --json prints {"change": "removed", "target": TARGET, "audit_name":
    AUDIT}. Its audit rows go at the next sync, within max_removal.
    """
    defs.remove_schedule(rt, target, audit_name)
    report(
        as_json,
        {"change": "removed", "target": target, "audit_name": audit_name},
        f"removed {audit_name} on {target}",
    )


@group()
def script() -> None:
    """Add, import or remove scripts (sqlalchemy backend; the dir and file backends use YAML)."""


@script.command("add")
@click.argument("name")
@click.option("--kind", required=True, help="command, http, tcp or python.")
@click.option(
    "--set",
    "keys",
    multiple=True,
    metavar="KEY=VALUE",
    help="One of the kind's keys, the value read as YAML (repeatable).",
)
@click.option("--timeout", metavar="DURATION", help="How long a run may take.")
@json_option
@pass_runtime
def script_add(
    rt: Runtime, name: str, kind: str, keys: tuple[str, ...], timeout: str | None, as_json: bool
) -> None:
    """Add script NAME, or replace the script of that name.

    --json prints {"change": "added" or "replaced", "script": NAME, "kind": KIND}.

    \b
    Examples:
      entropy --backend sqlite:///fleet.db script add check_nova_config_exists \\
          --kind command --set "command=[test, -f, /etc/nova/nova.conf]" --timeout 10s
      entropy --backend sqlite:///fleet.db script add vmbooter --kind tcp --set port=22
    """
    change = defs.add_script(rt, name, kind, _pairs(keys, "--set"), timeout)
    report(
        as_json,
        {"change": change, "script": name, "kind": kind},
        f"{change} script {name} ({kind})",
    )


@script.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_runtime
def script_import(rt: Runtime, path: str, as_json: bool) -> None:
    """Add (or replace) every script of a scripts.yaml file.

    --json prints {"change": "imported", "path": PATH, "added": [names],
    "replaced": [names]}.
    """
    done = defs.import_scripts(rt, path)
    count = len(done["added"]) + len(done["replaced"])
    report(
        as_json,
        {"change": "imported", "path": path, **done},
        f"imported {count} scripts from {path}",
    )


@script.command("remove")
@click.argument("name")
@json_option
@pass_runtime
def script_remove(rt: Runtime, name: str, as_json: bool) -> None:
    """Remove script NAME (refused while a schedule or a repair uses it).

    --json prints {"change": "removed", "script": NAME}.
    """
    defs.remove_script(rt, name)
    report(as_json, {"change": "removed", "script": name}, f"removed script {name}")


COMMANDS = [host, schedule, script]
