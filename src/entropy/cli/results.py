"""`entropy result submit`: a result from outside, as a cron job or a backup script sends it."""

from __future__ import annotations

import click

from ..service import results
from ..service.runtime import Runtime
from .common import group, json_option, pass_runtime
from .output import print_json, print_repair_line, print_result_line


@group()
def result() -> None:
    """Results that come from outside Entropy (passive audits, cron jobs, backups)."""


@result.command("submit")
@click.argument("audit")
@click.option("--host", required=True, help="The host the result is for.")
@click.option(
    "--outcome",
    required=True,
    type=click.Choice([o.value for o in results.SUBMITTABLE]),
    help="The verdict: ok, warning, critical, unknown (the Nagios states), error or timeout.",
)
@click.option("--summary", default="", help="One line saying what was found.")
@click.option("--output", default="", help="Longer output, kept with the result.")
@click.option(
    "--metrics",
    metavar="JSON",
    help='Measurements, as a JSON object: {"age_s": 3600} or '
    '{"age_s": {"value": 3600, "uom": "s", "warn": "7200", "crit": "86400"}}.',
)
@click.option(
    "--no-repair",
    "no_repair",
    is_flag=True,
    help="Store it and publish its events, but run no repair for it now.",
)
@json_option
@pass_runtime
def submit(
    rt: Runtime,
    audit: str,
    host: str,
    outcome: str,
    summary: str,
    output: str,
    metrics: str | None,
    no_repair: bool,
    as_json: bool,
) -> None:
    """Record a result for AUDIT on --host, as if Entropy had run the audit.

    It counts like any other result: the history, the pair's latest result
    (`entropy status`), its soft/hard state when the audit has max_attempts,
    a passive audit's freshness (`passive: true` audits get their results
    only this way), its events when [notifications] transport_url is set,
    and the repair rules. The audit and the host must be in the definitions.

    A failure a repair rule watches is handed to the rule as the engine
    hands its own results: the same holds (downtime, acknowledgement,
    dependency down, flapping, a soft state before max_attempts) and
    guardrails (consecutive, cooldown, max_concurrent, max_attempts). The
    repair runs where an engine's would (here; with [executor] executor =
    broker on a worker of the host's zone), and this command waits for it
    (and its verify) and prints what each rule did: ran, held and why, or waiting for more
    failures in a row. --no-repair skips that step (the result still counts
    in the streak of the next failure the engine records).

    \b
    Examples:
      entropy result submit backup_done --host db-01 --outcome ok --summary "backup 42 GiB"
      entropy result submit backup_done --host db-01 --outcome critical \\
          --summary "backup failed" --metrics '{"duration_s": 5400}'

    Exit status 0 once stored (whatever the outcome, and whatever a repair
    did). --json prints the stored result: host, audit_name, outcome,
    summary, output, metrics, started_at, finished_at, slot, engine_id (who
    submitted it), row_id, monitor (the soft/hard state, with monitoring)
    and repairs: per rule watching the audit, repair_name, host, verdict
    (ran, held, waiting or failed), reason and run (the repair run, when it
    ran); null with --no-repair.
    """
    done = results.submit_result(
        rt, audit, host, outcome, summary, metrics, output, repair=not no_repair
    )
    if as_json:
        print_json(done.to_dict())
        return
    print_result_line(done.result)
    for considered in done.repairs or ():
        if considered.run is not None:
            print_repair_line(considered.run)
        else:
            click.echo(f"repair {considered.repair_name} on {considered.host} "
                       f"{considered.verdict}: {considered.reason}")  # fmt: skip


COMMANDS = [result]
