"""`entropy repair ...` and `entropy events tail`: repairs and the events they raise."""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import asdict
from typing import Any

import click

from ..jsonout import to_json
from ..model import REPAIRABLE_OUTCOMES, Outcome
from ..service import repairs
from ..service.runtime import Runtime
from .common import group, json_option, pass_runtime, seconds
from .output import print_json, print_table, report, say, stamp
from .readonly import read_only

# What a rule may watch: never ok, never unreachable (its dependency is the problem).
_FAILING = [o.value for o in Outcome if o in REPAIRABLE_OUTCOMES]


@group()
def repair() -> None:
    """Repairs: scripts run when an audit keeps failing on a host, within guardrails.

    Rules live in repairs.yaml (dir backend), under repairs: (file backend)
    or in the repairs table (sqlalchemy backend, `entropy repair add`):

    \b
      restart_nova_compute:
        when: {audit: check_nova_compute_running, outcome: [critical], consecutive: 3}
        run: restart_nova_compute   # a script, run against the failing host
        cooldown: 30mins            # per host
        max_concurrent: 2           # across the fleet
        max_attempts: 3             # then the host is flagged for a human
        verify: true                # re-run the audit after; record fixed / not fixed
    """


@repair.command("plan")
@json_option
@pass_runtime
@read_only
def repair_plan(rt: Runtime, as_json: bool) -> None:
    """Show which repairs the current results would fire, and what holds the others back.

    For every failing (audit, host) a rule watches: `fire`, `held` with what
    holds it, or `waiting` for more failures in a row. Holds: the monitoring
    rules first (in downtime, acknowledged, unreachable behind a failed
    dependency, flapping, a soft state waiting for a hard one), then the
    guardrails (cooldown, max_concurrent, max_attempts, a flag, a run in
    progress). Nothing is run or changed.
    """
    items = repairs.plan(rt)
    if as_json:
        print_json([asdict(item) for item in items])
        return
    if not items:
        click.echo("no repair would fire: no rule matches a failing audit")
        return
    rows = [("REPAIR", "HOST", "AUDIT", "LATEST", "VERDICT", "WHY")]
    rows += [(i.repair_name, i.host, i.audit_name, i.outcome, i.verdict, i.reason) for i in items]
    print_table(rows)


@repair.command("list")
@click.option("--host", help="Only this host.")
@json_option
@pass_runtime
@read_only
def repair_list(rt: Runtime, host: str | None, as_json: bool) -> None:
    """Show what the guardrails remember per (repair, host): attempts, last run, flag."""
    states = repairs.states(rt, host)
    if as_json:
        print_json(states)
        return
    if not states:
        click.echo("no repair has run yet")
        return
    rows = [("REPAIR", "HOST", "ATTEMPTS", "LAST RUN", "STATE")]
    for s in states:
        state = f"FLAGGED: {s['flagged_reason']}" if s["flagged"] else (
            f"running ({s['running_by']})" if s["running"] else "-")  # fmt: skip
        last = stamp(s["last_started_at"]) if s["last_started_at"] else "-"
        rows.append((s["repair_name"], s["host"], str(s["attempts"]), last, state))
    print_table(rows)


@repair.command("reset")
@click.argument("host")
@click.argument("repair_name", metavar="[REPAIR]", required=False)
@json_option
@pass_runtime
def repair_reset(rt: Runtime, host: str, repair_name: str | None, as_json: bool) -> None:
    """Clear HOST's flag and attempt count (for every repair, or just REPAIR).

    A host is flagged when a repair used up its max_attempts without fixing
    the audit; no repair runs there until this is done. --json prints
    {"host", "repair_name" (null: every repair), "reset": how many were cleared}.
    """
    changed = repairs.reset(rt, host, repair_name)
    if as_json:
        print_json({"host": host, "repair_name": repair_name, "reset": changed})
        return
    what = f"repair {repair_name}" if repair_name else "its repairs"
    if changed:
        click.echo(f"reset {host}: {what} may run again ({changed} cleared)")
    else:
        click.echo(f"{host}: nothing to reset for {what} (not flagged, no attempts)")


@repair.command("add")
@click.argument("name")
@click.option("--audit", required=True, metavar="AUDIT|GLOB", help="The audit it watches.")
@click.option(
    "--outcome",
    "outcomes",
    multiple=True,
    type=click.Choice(_FAILING),
    help="An outcome that counts as a failure (repeatable; default: critical).",
)
@click.option("--consecutive", type=click.IntRange(min=1), default=1, show_default=True,
              help="Failures in a row of one (audit, host) before it fires.")  # fmt: skip
@click.option("--run", "script", required=True, metavar="SCRIPT", help="The script it runs.")
@click.option("--cooldown", metavar="DURATION", help="Least time between runs on one host.")
@click.option("--max-concurrent", type=click.IntRange(min=1), help="Runs at once, fleet-wide.")
@click.option("--max-attempts", type=click.IntRange(min=1), help="Runs before flagging a host.")
@click.option("--verify", is_flag=True, help="Re-run the audit right after; record fixed or not.")
@json_option
@pass_runtime
def repair_add(
    rt: Runtime,
    name: str,
    audit: str,
    outcomes: tuple[str, ...],
    consecutive: int,
    script: str,
    cooldown: str | None,
    max_concurrent: int | None,
    max_attempts: int | None,
    verify: bool,
    as_json: bool,
) -> None:
    """Add (or replace) repair NAME (sqlalchemy backend; the others use repairs.yaml).

    --json prints {"change": "added" or "replaced", "repair": NAME, "audit":
    AUDIT|GLOB, "script": SCRIPT}.

    \b
    Example:
      entropy --backend sqlite:///fleet.db repair add restart_nova_compute \\
          --audit check_nova_compute_running --consecutive 3 \\
          --run restart_nova_compute --cooldown 30mins --max-attempts 3 --verify
    """
    change = repairs.add_rule(rt, name, audit, script, outcomes, consecutive, cooldown,
                              max_concurrent, max_attempts, verify)  # fmt: skip
    report(as_json, {"change": change, "repair": name, "audit": audit, "script": script},
           f"{change} repair {name}: {script} when {audit} fails")  # fmt: skip


@repair.command("remove")
@click.argument("name")
@json_option
@pass_runtime
def repair_remove(rt: Runtime, name: str, as_json: bool) -> None:
    """Remove repair NAME (sqlalchemy backend).

    --json prints {"change": "removed", "repair": NAME}.
    """
    repairs.remove_rule(rt, name)
    report(as_json, {"change": "removed", "repair": name}, f"removed repair {name}")


@group()
def events() -> None:
    """Events: one per audit result and repair run, on [notifications] transport_url."""


@events.command("tail")
@click.option(
    "--key",
    "pattern",
    default="#",
    show_default=True,
    help="Routing key pattern: audit.<audit>.<outcome> or repair.<repair>.<outcome>, "
    "with * for one word and # for any, e.g. 'audit.*.critical' or 'repair.#'.",
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--for", "run_for", metavar="DURATION", help="Stop after this long, e.g. 30s.")
@click.option("--url", help="Broker URL (default: [notifications] transport_url).")
@json_option
@pass_runtime
def events_tail(
    rt: Runtime,
    pattern: str,
    count: int | None,
    run_for: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Print events as engines publish them, until Ctrl-C (or --count, --for).

    Reconnects when the broker goes away. Events published while nothing
    listens are not kept for later: start this before the engine to see all.
    --json prints one object per line, with its routing key under "key".
    """
    broker = repairs.events_url(rt, url)
    limit = seconds(run_for, "--for") if run_for else None

    def show(key: str, body: dict[str, Any]) -> None:
        if as_json:
            click.echo(to_json({"key": key, **body}, indent=None))
        else:
            click.echo(f"{body.get('finished_at', '-')}  {key:<48} {body.get('host', '-'):<20} "
                       f"{body.get('summary', '')}")  # fmt: skip
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        repairs.tail_events(broker, show, pattern, count, limit,
                            lambda text: say(text, logging.WARNING))  # fmt: skip


COMMANDS = [repair, events]
