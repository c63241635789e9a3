"""`entropy worker run` and `entropy workers`: run jobs from the broker, list who does."""

from __future__ import annotations

import logging
import sys

import click

from ..broker.protocol import ResultMessage
from ..jsonout import to_json
from ..model import Outcome
from ..service import logs
from ..service import workers as worker_ops
from ..service.runtime import Runtime
from .common import command, group, json_option, pass_runtime, seconds
from .output import COLOURS, print_json, print_table, say, stamp


@group("worker")
def worker() -> None:
    """Run audits that engines send through the broker (executor = broker)."""


@worker.command("run")
@click.option("--zone", metavar="ZONE", help="Take this zone's jobs (default: [executor] zone).")
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Jobs run at the same time, and taken from the broker at most (default: max_workers).",
)
@click.option(
    "--for", "run_for", metavar="DURATION", help="Stop by itself after this long, e.g. 30s or 1h."
)
@click.option("--quiet", is_flag=True, help="No line per job; only the start and stop lines.")
@json_option
@pass_runtime
def worker_run(
    rt: Runtime,
    zone: str | None,
    max_workers: int | None,
    run_for: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Take jobs from a zone's queue on the broker, run them, send the results back.

    A job brings everything it needs (script, host, params, timeout): the
    worker needs only [executor] transport_url, never the state store. It
    runs scripts as an engine does (kind command, ssh, http, tcp, python;
    [ssh] settings and keys of this machine), takes no more jobs than
    --max-workers at a time, and acknowledges a job only once the broker
    has its result: a worker that dies leaves its jobs to another worker of
    the zone. It rides out broker restarts, and announces itself by
    heartbeat (`entropy workers`).

    One line per job (JSON lines with --json: the result message sent).
    SIGTERM or Ctrl-C stops gracefully: no new jobs, running ones get
    shutdown_grace seconds, then they are killed and handed back to the
    broker; a second signal ends the grace period now.

    \b
    Examples:
      entropy worker run --zone dc-2
      OS_EXECUTOR__TRANSPORT_URL=amqp://entropy:secret@mq:5672/entropy entropy worker run
    """
    logs.at_least_info("entropy")
    limit = seconds(run_for, "--for") if run_for else None
    printer = None if quiet else (_print_reply_json if as_json else _print_reply_line)
    process = worker_ops.WorkerProcess(
        rt, zone, max_workers, on_reply=printer,
        on_notice=lambda line: say(line, logging.WARNING),
    )  # fmt: skip
    settings = process.settings
    banner = (f"worker {process.worker.worker_id}: connecting to {process.worker.describe()} "
              f"for zone {settings.zone!r}")  # fmt: skip
    done = process.run(limit, on_start=lambda: say(banner))
    say(f"worker stopped; {done.done} jobs done, {done.requeued} handed back, "
        f"{done.refused} refused")  # fmt: skip


def _print_reply_line(reply: ResultMessage) -> None:
    result = reply.result
    outcome = click.style(f"{result.outcome.value.upper():8}", fg=COLOURS[result.outcome],
                          bold=result.outcome is not Outcome.OK)  # fmt: skip
    when = stamp(result.finished_at) if result.finished_at else "-"
    again = ", redelivered" if reply.redelivered else ""
    click.echo(f"{when}  {reply.host:<20} {reply.audit:<24} {outcome} {result.summary}  "
               f"({result.duration:.2f}s{again})")  # fmt: skip


def _print_reply_json(reply: ResultMessage) -> None:
    click.echo(to_json(reply.to_dict(), indent=None))


@command("workers")
@click.option(
    "--zone",
    "zones",
    multiple=True,
    metavar="ZONE",
    help="A zone that should have a live worker (repeatable): shown even without one, and "
    "then the exit status is 1.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to listen for heartbeats after asking every worker for one.",
)
@json_option
@pass_runtime
def workers(rt: Runtime, zones: tuple[str, ...], wait: float, as_json: bool) -> None:
    """The live workers, by zone: load, jobs done, last heartbeat; and each zone's queue.

    Asks every worker for a heartbeat (exchange entropy.workers.ping) and
    lists those that answer within --wait; a worker that stopped is not
    listed. For each zone (those given with --zone, and those with a
    worker), the jobs waiting in its queue and the consumers the broker
    counts. A --zone with no live worker is named, and the exit status is 1;
    with [executor] executor = broker, so is a zone of the fleet's hosts.

    --json prints {"workers": [...], "zones": [...]}.
    """
    found = worker_ops.workers(rt, zones, wait)
    if as_json:
        print_json(found.to_dict())
    else:
        _print_workers(found)
    _say_orphaned(found)
    if found.orphaned:
        sys.exit(1)


def _print_workers(found: worker_ops.WorkersReport) -> None:
    if found.workers:
        table = [("ZONE", "WORKER", "HOST", "LOAD", "DONE", "LAST BEAT", "STATE")]
        for row in found.workers:
            table.append((row["zone"], row["worker_id"], row["hostname"],
                          f"{row['running']}/{row['max_workers']}", str(row["done"]),
                          f"{row['age']:.1f}s ago", row["state"]))  # fmt: skip
        print_table(table)
    else:
        click.echo("no live worker answered")
    for info in found.zones:
        count = info["workers"]
        queue = (f"{info['waiting']} jobs waiting, {info['consumers']} consumers"
                 if info["queue"] else "no queue yet")  # fmt: skip
        say(f"zone {info['zone']}: {count} live worker{'s' if count != 1 else ''}; {queue}")


def _say_orphaned(found: worker_ops.WorkersReport) -> None:
    waiting = {info["zone"]: info["waiting"] for info in found.zones}
    for zone in found.orphaned:
        jobs = f"; {waiting[zone]} jobs wait in {found.topology.zone_queue(zone)}"
        say(f"entropy: zone {zone!r} has no live worker{jobs if waiting[zone] else ''} (start "
            f"`entropy worker run --zone {zone}` on a machine that reaches its hosts)",
            logging.WARNING)  # fmt: skip


COMMANDS = [worker, workers]
