"""`entropy disable`, `enable`, `results` and `audit run`: acting on audits, reading results."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..model import Outcome
from ..service import adhoc, fleet, reads
from ..service.runtime import Runtime
from .common import command, exclusive_host_group, group, json_option, pass_runtime
from .output import print_json, print_repair_history, print_result_json, print_result_line, say
from .readonly import read_only


def _toggle_command(disable: bool) -> Any:
    @click.argument("audit")
    @click.option("--host", help="Only on this host.")
    @click.option("--group", help="Only on the hosts of this group.")
    @json_option
    @pass_runtime
    def toggle(
        rt: Runtime,
        audit: str,
        host: str | None,
        group: str | None,
        as_json: bool,
        reason: str | None = None,
    ) -> None:
        exclusive_host_group(host, group)
        done = fleet.set_disabled(rt, audit, disable, reason, host, group)
        if as_json:
            print_json(done.to_dict())
            return
        click.echo(
            f"{done.verb}d {audit} on {done.changed} host{'s' if done.changed != 1 else ''}"
            + (f": {reason}" if disable else "")
        )
        for host_name, where in done.still_disabled:
            say(f"{host_name}: still disabled by the definitions at {where}", logging.WARNING)

    return toggle


disable = command(
    "disable",
    help="Stop running AUDIT (everywhere, or on one --host or --group), with a reason.\n\n"
    "The flag is kept in the state store and survives re-syncs; if a sync removes the "
    "pair, the flag is kept for disable_retention and comes back with it. Rows for pairs "
    "not yet synced are added first; nothing is removed.\n\n"
    '--json prints {"disabled": rows changed, "hosts": [the hosts selected], '
    '"still_disabled_by_definitions": []}.',
)(
    click.option("--reason", required=True, help="Why; shown by `entropy status`.")(
        _toggle_command(disable=True)
    )
)
enable = command(
    "enable",
    help="Run AUDIT again where `entropy disable` stopped it. Audits the definitions "
    "disable (disabled: true) stay disabled.\n\n"
    '--json prints {"enabled": rows changed, "hosts": [the hosts selected], '
    '"still_disabled_by_definitions": [hosts whose definitions disable it]}.',
)(_toggle_command(disable=False))


@group()
def audit() -> None:
    """Run audits by hand, outside the schedule."""


@audit.command("run")
@click.argument("audit_name", metavar="AUDIT")
@click.option("--host", help="Only on this host.")
@click.option("--group", help="Only on the hosts of this group.")
@json_option
@pass_runtime
def audit_run(
    rt: Runtime, audit_name: str, host: str | None, group: str | None, as_json: bool
) -> None:
    """Run AUDIT now on its hosts (or one --host or --group) and print the results.

    The results are stored in the history and as each row's latest result;
    the schedule (next_run) is not touched. Exit status 0 when every result
    is ok, 1 otherwise. --json prints one object per line and result: host,
    audit_name, outcome, summary, output, metrics, started_at, finished_at,
    slot, engine_id.
    """
    exclusive_host_group(host, group)
    printer = print_result_json if as_json else print_result_line
    done = adhoc.run_audit(rt, audit_name, host, group, on_result=printer)
    if any(result.outcome is not Outcome.OK for result in done):
        sys.exit(1)


@command()
@click.option(
    "--kind",
    type=click.Choice(["audit", "repair"]),
    default="audit",
    show_default=True,
    help="Audit results, or repair runs (with their verify result and trigger).",
)
@click.option("--host", help="Only this host.")
@click.option("--audit", "audit_name", metavar="AUDIT", help="Only this audit.")
@click.option("--repair", "repair_name", metavar="REPAIR", help="Only this repair (--kind repair).")
@click.option("--outcome", type=click.Choice([o.value for o in Outcome]), help="Only this outcome.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many, newest first.",
)
@json_option
@pass_runtime
@read_only
def results(
    rt: Runtime,
    kind: str,
    host: str | None,
    repair_name: str | None,
    audit_name: str | None,
    outcome: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the result history, newest first.

    --json prints a list of objects with host, audit_name, outcome, summary,
    output, metrics, slot (the scheduled time it ran for), started_at,
    finished_at and engine_id. With --kind repair: repair_name, host,
    audit_name (the audit that triggered it), script, attempt, outcome,
    summary, output, started_at, finished_at, engine_id, verify (fixed,
    not_fixed or null), verify_outcome, verify_summary, trigger_result.
    """
    if kind == "repair":
        runs = reads.repair_results(rt, host, repair_name, audit_name, outcome, limit)
        print_repair_history(runs.items, as_json)
        return
    if repair_name is not None:
        raise click.UsageError("--repair needs --kind repair")
    found = reads.results(rt, host, audit_name, outcome, limit).items
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    for r in reversed(found):
        print_result_line(r)
    if not found:
        say("no results match")


COMMANDS = [disable, enable, audit, results]
