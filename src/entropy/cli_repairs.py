"""`entropy repair ...` and `entropy events tail`: repairs and the events they raise.

Kept out of cli.py, which registers these commands (nothing imports this).
The group's object is cli.Session: it gives the config, the backend and the
clock.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from typing import Any

import click

from .backends.base import RepairRecord, RepairStore
from .cli_readonly import read_only
from .config import option
from .definitions import parse_entry, parse_repairs
from .errors import DurationError, EntropyError
from .events import tail
from .jsonout import print_json, to_json
from .model import Outcome, RepairRun
from .repairs import plan
from .textout import print_table, stamp
from .timing import parse_duration

_FAILING = [o.value for o in Outcome if o is not Outcome.OK]
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
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
@click.pass_obj
@read_only
def repair_plan(session: Any, as_json: bool) -> None:
    """Show which repairs the current results would fire, and what holds the others back.

    For every failing (audit, host) a rule watches: `fire`, `held` with the
    guardrail that holds it (cooldown, max_concurrent, max_attempts, a flag,
    a run in progress), or `waiting` for more failures in a row. Nothing is
    run or changed.
    """
    backend = session.backend
    items = plan(backend, backend.load(), session.clock.now())
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
@click.pass_obj
@read_only
def repair_list(session: Any, host: str | None, as_json: bool) -> None:
    """Show what the guardrails remember per (repair, host): attempts, last run, flag."""
    states = session.backend.state.repairs.states(host=host)
    now = session.clock.now()
    if as_json:
        print_json([{**asdict(s), "running": s.running(now)} for s in states])
        return
    if not states:
        click.echo("no repair has run yet")
        return
    rows = [("REPAIR", "HOST", "ATTEMPTS", "LAST RUN", "STATE")]
    for s in states:
        state = f"FLAGGED: {s.flagged_reason}" if s.flagged else (
            f"running ({s.running_by})" if s.running(now) else "-")  # fmt: skip
        last = stamp(s.last_started_at) if s.last_started_at else "-"
        rows.append((s.repair_name, s.host, str(s.attempts), last, state))
    print_table(rows)


@repair.command("reset")
@click.argument("host")
@click.argument("repair_name", metavar="[REPAIR]", required=False)
@json_option
@click.pass_obj
def repair_reset(session: Any, host: str, repair_name: str | None, as_json: bool) -> None:
    """Clear HOST's flag and attempt count (for every repair, or just REPAIR).

    A host is flagged when a repair used up its max_attempts without fixing
    the audit; no repair runs there until this is done. --json prints
    {"host", "repair_name" (null: every repair), "reset": how many were cleared}.
    """
    changed = session.backend.state.repairs.reset(host, repair_name, session.clock.now())
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
@click.pass_obj
def repair_add(
    session: Any,
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
    backend = session.backend.require_editable("repair add")
    when: dict[str, Any] = {"audit": audit, "consecutive": consecutive}
    if outcomes:
        when["outcome"] = list(outcomes)
    entry: dict[str, Any] = {"when": when, "run": script, "verify": verify}
    for key, value in (("cooldown", cooldown), ("max_concurrent", max_concurrent),
                       ("max_attempts", max_attempts)):  # fmt: skip
        if value is not None:
            entry[key] = value
    (rule,) = parse_entry(parse_repairs, "entropy repair add", name, entry).values()
    change = "added" if backend.put_repair(rule) else "replaced"
    if as_json:
        print_json({"change": change, "repair": name, "audit": audit, "script": script})
    else:
        click.echo(f"{change} repair {name}: {script} when {audit} fails")


@repair.command("remove")
@click.argument("name")
@json_option
@click.pass_obj
def repair_remove(session: Any, name: str, as_json: bool) -> None:
    """Remove repair NAME (sqlalchemy backend).

    --json prints {"change": "removed", "repair": NAME}.
    """
    session.backend.require_editable("repair remove").remove_repair(name)
    if as_json:
        print_json({"change": "removed", "repair": name})
    else:
        click.echo(f"removed repair {name}")


@click.group()
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
@click.pass_obj
def events_tail(
    session: Any,
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
    url = url or option(session.conf, "transport_url", "notifications")
    if not url:
        raise EntropyError(
            "no broker: set [notifications] transport_url in entropy.conf "
            "(e.g. amqp://guest:guest@127.0.0.1:5672//) or pass --url"
        )
    seconds = None
    if run_for:
        try:
            seconds = float(parse_duration(run_for))
        except DurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None

    def show(key: str, body: dict[str, Any]) -> None:
        if as_json:
            click.echo(to_json({"key": key, **body}, indent=None))
        else:
            click.echo(f"{body.get('finished_at', '-')}  {key:<48} {body.get('host', '-'):<20} "
                       f"{body.get('summary', '')}")  # fmt: skip
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        tail(str(url), show, pattern, count, seconds, lambda text: click.echo(text, err=True))


# -- printing, shared with cli.py's engine run, results and status ------------------


def print_repair_line(run: RepairRun) -> None:
    result = run.result
    verify = f", {run.verify.value.replace('_', ' ')}" if run.verify else ""
    outcome = click.style(f"{result.outcome.value.upper():8}", bold=True,
                          fg="green" if result.outcome is Outcome.OK else "red")  # fmt: skip
    when = stamp(result.finished_at) if result.finished_at else "-"
    click.echo(
        f"{when}  {result.host:<20} {'repair ' + run.repair_name:<24} {outcome} "
        f"{result.summary} (attempt {run.attempt}{verify}; after {run.audit_name} "
        f"{run.trigger.outcome.value})"
    )


def print_repair_json(run: RepairRun) -> None:
    click.echo(to_json({"kind": "repair", **run.to_dict()}, indent=None))


def print_repair_summary(store: RepairStore, host: str | None, latest: int = 5) -> None:
    """Under `entropy status`: flagged hosts, then the latest repair runs."""
    flagged = [s for s in store.states(host=host) if s.flagged]
    runs = store.runs(host=host, limit=latest)
    if not (flagged or runs):
        return
    for s in flagged:
        click.echo(
            click.style(f"\nFLAGGED {s.host}: ", fg="red", bold=True)
            + f"{s.flagged_reason} (entropy repair reset {s.host} {s.repair_name})"
        )
    if runs:
        click.echo("\nlatest repairs:")
        print_repair_history(runs, as_json=False)


def print_repair_history(found: list[RepairRecord], as_json: bool) -> None:
    """`entropy results --kind repair`: stored runs, oldest first on a terminal."""
    if as_json:
        print_json([{"kind": "repair", **r.to_dict()} for r in found])
        return
    for r in reversed(found):
        verify = f", {r.verify.replace('_', ' ')}" if r.verify else ""
        click.echo(
            f"{stamp(r.finished_at)}  {r.host:<20} {'repair ' + r.repair_name:<24} "
            f"{r.outcome.upper():8} {r.summary or ''} (attempt {r.attempt}{verify}; "
            f"after {r.audit_name} {(r.trigger_result or {}).get('outcome', '?')})"
        )
    if not found:
        click.echo("no repair runs match", err=True)
