"""`entropy downtime add|list|remove`, `ack` and `unack`: planned windows and known problems."""

from __future__ import annotations

import click

from ..service import monitoring
from ..service.runtime import Runtime
from .common import command, exclusive_host_group, group, json_option, pass_runtime, seconds
from .output import plural, print_json, print_table, report, say, stamp
from .readonly import read_only


@group()
def downtime() -> None:
    """Maintenance windows: repairs held, problem events marked, audits still run.

    Ad hoc ones are kept in the state store; those of the definitions are in
    downtimes.yaml (dir backend) or a `downtimes:` section (file backend).
    """


@downtime.command("add")
@click.option("--host", help="The host it covers (a name).")
@click.option("--group", help="The hosts of this group it covers.")
@click.option("--audit", help="Only this audit (default: every audit of those hosts).")
@click.option("--for", "for_", metavar="DURATION", help="How long from now, e.g. 2h, 1d.")
@click.option("--until", metavar="TIME", help="When it ends, e.g. 2026-03-02T04:00Z "
              "(without a zone: in cron_timezone).")  # fmt: skip
@click.option("--reason", required=True, help="Why; shown wherever a hold is.")
@click.option("--skip-checks", is_flag=True, help="Do not even run the covered audits.")
@json_option
@pass_runtime
def downtime_add(
    rt: Runtime,
    host: str | None,
    group: str | None,
    audit: str | None,
    for_: str | None,
    until: str | None,
    reason: str,
    skip_checks: bool,
    as_json: bool,
) -> None:
    """Start a downtime now, on --host or --group, for --for or --until.

    While it lasts, the covered audits run and record as usual (unless
    --skip-checks), their repairs are held ("in downtime ID until T:
    REASON", see `entropy repair plan`) and their problem events carry
    `downtime`. It ends by itself; `entropy downtime remove ID` ends it early.

    \b
    Example:
      entropy downtime add --group compute --for 2h --reason "kernel upgrade"

    --json prints the downtime: name (its id), reason, hosts, groups, audits,
    start, end, skip_checks, created_by, created_at.
    """
    exclusive_host_group(host, group)
    length = seconds(for_, "--for") if for_ is not None else None
    made = monitoring.add_downtime(rt, reason, host, group, audit, length, until, skip_checks)
    end = made.end
    report(as_json, made.to_dict(),
           f"downtime {made.name} until {stamp(end) if end else '?'}: {made.reason}")  # fmt: skip


@downtime.command("list")
@json_option
@pass_runtime
@read_only
def downtime_list(rt: Runtime, as_json: bool) -> None:
    """List the downtimes in force or to come: the definitions' and the ad hoc ones.

    --json prints a list of objects: name, reason, hosts, groups, audits,
    start, end, cron, cron_timezone, duration, skip_checks, created_by,
    created_at, source ("ad hoc" or path:line), active, window_start and
    window_end (the window in force, or the next one).
    """
    found = monitoring.downtimes(rt)
    if as_json:
        print_json([view.to_dict() for view in found])
        return
    if not found:
        say("no downtimes")
        return
    table = [("ID", "STATE", "WINDOW", "COVERS", "REASON")]
    for view in found:
        d = view.downtime
        start, end = view.window or (None, None)
        window = f"{stamp(start)} .. {stamp(end)}" if start and end else "-"
        covers = ", ".join([*d.hosts, *(f"group {g}" for g in d.groups)]) or "every host"
        if d.audits:
            covers += f" ({', '.join(d.audits)})"
        state = "active" if view.active else "next"
        table.append((d.name, state, window, covers, f"{d.reason} [{view.source}]"))
    print_table(table)


@downtime.command("remove")
@click.argument("downtime_id", metavar="ID")
@json_option
@pass_runtime
def downtime_remove(rt: Runtime, downtime_id: str, as_json: bool) -> None:
    """End an ad hoc downtime now (its ID from `entropy downtime list`).

    --json prints {"removed": ID}.
    """
    monitoring.remove_downtime(rt, downtime_id)
    report(as_json, {"removed": downtime_id}, f"removed downtime {downtime_id}")


@command()
@click.argument("audit")
@click.option("--host", help="The host whose problem it is.")
@click.option("--group", help="Every host of this group with a problem on AUDIT.")
@click.option("--reason", required=True, help="Why; shown wherever it holds a repair.")
@click.option("--expire", metavar="DURATION", help="Lift it by itself after this long, e.g. 4h.")
@click.option("--sticky", is_flag=True,
              help="Keep it over changes between problem states (warning -> critical); "
              "only recovery (ok) or its expiry lifts it.")  # fmt: skip
@json_option
@pass_runtime
def ack(
    rt: Runtime,
    audit: str,
    host: str | None,
    group: str | None,
    reason: str,
    expire: str | None,
    sticky: bool,
    as_json: bool,
) -> None:
    """Acknowledge AUDIT's current problem on --host (or each failing host of --group).

    An acknowledged problem fires no repair and no repeated problem events.
    The ack is lifted on recovery (ok), on any change of state unless
    --sticky, at its --expire, or by `entropy unack`. A pair that is ok or
    has no result has nothing to acknowledge (exit 1).

    --json prints {"acknowledged": [{audit_name, host, reason, state,
    sticky, expires_at, created_by, created_at}], "skipped": [{host, why}]}.
    """
    exclusive_host_group(host, group)
    length = seconds(expire, "--expire") if expire is not None else None
    done = monitoring.ack(rt, audit, reason, host, group, length, sticky)
    if as_json:
        print_json(done.to_dict())
        return
    for one in done.acks:
        until = f" until {stamp(one.expires_at)}" if one.expires_at else ""
        click.echo(f"acknowledged {audit} on {one.host} ({one.state.value}){until}: {reason}")
    for host_name, why in done.skipped:
        say(f"{host_name}: {why}")


@command()
@click.argument("audit")
@click.option("--host", help="Only on this host.")
@click.option("--group", help="On the hosts of this group.")
@json_option
@pass_runtime
def unack(rt: Runtime, audit: str, host: str | None, group: str | None, as_json: bool) -> None:
    """Lift the acknowledgement of AUDIT's problem on --host or --group.

    --json prints {"unacknowledged": [hosts]}.
    """
    exclusive_host_group(host, group)
    lifted = monitoring.unack(rt, audit, host, group)
    report(as_json, {"unacknowledged": lifted},
           f"lifted {plural(len(lifted), 'acknowledgement')} of {audit}"
           + (f" ({', '.join(lifted)})" if lifted else ""))  # fmt: skip


COMMANDS = [downtime, ack, unack]
