"""`entropy validate`, `sync`, `status` and `plan`: the fleet's definitions and its rows."""

from __future__ import annotations

import logging
import sys

import click

from ..errors import EntropyError, ValidationError
from ..gctuning import collector_paused
from ..progress import progress_on_terminal
from ..removal import RemovalRefused
from ..service import fleet, monitoring, reads
from ..service.runtime import Runtime
from ..service.zones import zones_without_workers
from .common import command, json_option, pass_runtime, seconds
from .output import print_json, print_repair_summary, print_table, result_text, say, stamp, when
from .readonly import read_only


@command()
@json_option
@pass_runtime
@read_only
def validate(rt: Runtime, as_json: bool) -> None:
    """Check every definition; print each problem as path:line:col (exit 2 if any)."""
    try:
        with progress_on_terminal():  # a 50 MB hosts.yaml takes a while
            catalog = fleet.validate(rt)
    except ValidationError as exc:
        if not as_json:
            raise
        print_json(fleet.problems(exc))
        sys.exit(2)
    if as_json:
        print_json(fleet.counts(catalog))
    else:
        click.echo(catalog.summary())


@command()
@click.option(
    "--force",
    is_flag=True,
    help="Remove the rows of gone pairs even when they are more than max_removal of them.",
)
@json_option
@pass_runtime
def sync(rt: Runtime, force: bool, as_json: bool) -> None:
    """Load and validate the definitions, then make the audit rows match them.

    New (audit, host) pairs are added with a spread-out first run, pairs that
    are gone are removed, and the rest keep their state. Invalid definitions
    change nothing.

    A sync that would remove more than max_removal (default 10%) of the
    stored rows, or every row, is refused and changes nothing (exit 1): a
    truncated schedule file looks just like that. --force accepts it. An
    operator's disable of a removed pair is kept for disable_retention and
    comes back with the pair.

    --json prints {"added", "removed", "kept", "updated", "restored_disables",
    "remembered_disables", "audits"} (counts of rows; audits: the pairs the
    definitions give); a refusal prints {"refused": true, "would_remove",
    "stored", "allowed", "max_removal", "by_audit": {audit: rows},
    "message"} and exits 1.
    """
    try:
        with progress_on_terminal(quiet=as_json), collector_paused():  # a million rows
            done = fleet.sync(rt, force=force)
    except RemovalRefused as exc:
        if not as_json:
            raise
        print_json(exc.to_dict())
        sys.exit(1)
    if as_json:
        print_json(done.to_dict())
    else:
        click.echo(f"{done.summary}; {done.report}")
        for line in done.report.put_back:
            say(f"put back the operator's disable of {line}", logging.WARNING)


@command()
@click.option("--host", help="Only this host's rows.")
@click.option("--audit", "audit_name", metavar="AUDIT", help="Only this audit's rows.")
@click.option("--overdue", is_flag=True,
              help="Only pairs whose last result is older than twice their interval: "
              "checks that silently stopped.")  # fmt: skip
@json_option
@pass_runtime
@read_only
def status(
    rt: Runtime, host: str | None, audit_name: str | None, overdue: bool, as_json: bool
) -> None:
    """Show the audit rows: when each runs next, its status and latest result.

    With monitoring (max_attempts, flapping), the result says a soft state's
    attempt and flapping; a pair in a downtime or acknowledged says so.
    Below the rows: hosts flagged for a human (a repair used up its
    max_attempts) and the latest repair runs. With [executor] executor =
    broker, the zones of the fleet that no live worker serves, and how many
    of their audits wait for one (a 1 s listen for the workers' heartbeats;
    with --json, on stderr).

    --json prints a list of objects with exactly the row fields: id, host,
    ip_address, audit_name, next_run, created_at, updated_at, disabled,
    disabled_reason, status, result, monitor (the soft/hard state: state,
    state_type, attempt, hard_state, last_state_change,
    last_hard_state_change, flapping, ...; null without monitoring). With
    --overdue, each also has overdue_since and last_result_at. (Repairs:
    `entropy repair list --json`.)
    """
    if overdue:
        _overdue(rt, host, audit_name, as_json)
        return
    if as_json:
        rows = reads.audits(rt, host, audit_name).items
        print_json([row.public() for row in rows])
        _say_zones_without_workers(rt, rows, to_stderr=True)
        return
    view = reads.status(rt, host, audit_name)
    if not view.rows:
        click.echo(
            "no audit rows match; run `entropy sync` first"
            if not (host or audit_name)
            else "no audit rows match"
        )
        return
    table = [("HOST", "AUDIT", "STATUS", "NEXT RUN", "RESULT")]
    for row in view.rows:
        marks = view.marks.get((row.audit_name, row.host))
        table.append((row.host, row.audit_name, row.status.value, when(row.next_run, view.now),
                      result_text(row, marks)))  # fmt: skip
    print_table(table)
    _say_zones_without_workers(rt, view.rows)
    print_repair_summary(view.flagged, view.repairs)


def _say_zones_without_workers(rt: Runtime, rows: list, to_stderr: bool = False) -> None:
    """With executor = broker: the zones no live worker serves, and what waits for one."""
    try:
        orphaned = zones_without_workers(rt, rows, rt.clock.now())
    except EntropyError as exc:
        say(f"entropy: {exc}", logging.WARNING)
        return
    for zone in orphaned or ():
        line = (f"zone {zone.zone}: no live worker; {zone.waiting} audits of its {zone.hosts} "
                f"hosts wait for one, not run elsewhere (start `entropy worker run --zone "
                f"{zone.zone}`)")  # fmt: skip
        if to_stderr:
            say(f"entropy: {line}", logging.WARNING)
        else:
            click.echo(line)


def _overdue(rt: Runtime, host: str | None, audit_name: str | None, as_json: bool) -> None:
    found = monitoring.overdue(rt, host, audit_name)
    if as_json:
        print_json([item.to_dict() for item in found])
        return
    if not found:
        say("no pair is overdue")
        return
    table = [("HOST", "AUDIT", "OVERDUE SINCE", "LAST RESULT")]
    for item in found:
        last = stamp(item.last_result_at) if item.last_result_at else "never"
        table.append((item.row.host, item.row.audit_name, stamp(item.since), last))
    print_table(table)


@command()
@click.option(
    "--within",
    default="1d",
    show_default=True,
    metavar="DURATION",
    help="How far ahead to look, e.g. 1h, 1d, 1w.",
)
@click.option("--host", help="Only this host.")
@click.option("--audit", "audit_name", metavar="AUDIT", help="Only this audit.")
@json_option
@pass_runtime
@read_only
def plan(rt: Runtime, within: str, host: str | None, audit_name: str | None, as_json: bool) -> None:
    """List every run due within a window, in time order.

    Overdue rows are shown at their missed time (they run at once, once).
    Pairs not yet synced show when their first run would be. Disabled rows
    never run and are left out. A pair in a downtime or acknowledged says so
    (a downtime with skip_checks: true skips its runs).
    """
    window = seconds(within, "--within")
    ahead = reads.plan(rt, window, host, audit_name)
    if as_json:
        print_json([run.to_dict() for run in ahead.runs])
        return
    for run in ahead.runs:
        late = "  (overdue)" if run.time < ahead.now else ""
        marks = ahead.marks.get((run.audit_name, run.host))
        marked = f"  [{marks}]" if marks else ""
        click.echo(f"{stamp(run.time)}  {run.host}  {run.audit_name}{late}{marked}")
    say(f"{len(ahead.runs)} runs within {within}")


COMMANDS = [validate, sync, status, plan]
