"""`entropy worker run` and `entropy workers`: run jobs from the broker, list who does.

Registered by cli.py; like the rest of the CLI, nothing imports this. Both
need only [executor] transport_url: they never open the state store.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from typing import Any

import click

from . import runners
from .broker.beats import beat_dict, live_workers, zone_queues
from .broker.connection import CONNECTION_ERRORS, describe
from .broker.protocol import ResultMessage
from .broker.topology import Topology
from .broker.worker import Worker, WorkerSettings
from .config import option
from .errors import DurationError, EntropyError
from .jsonout import print_json, to_json
from .model import Outcome
from .textout import print_table, stamp
from .timing import parse_duration
from .values import zone_problem

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_COLOURS = {Outcome.OK: "green", Outcome.WARNING: "yellow", Outcome.UNKNOWN: "magenta"}


def _broker(session: Any) -> tuple[str, Topology]:
    url = option(session.conf, "transport_url", "executor")
    if not url:
        raise EntropyError(
            "no broker: set [executor] transport_url in entropy.conf (e.g. "
            "amqp://entropy:secret@mq.example.com:5672/entropy), or OS_EXECUTOR__TRANSPORT_URL"
        )
    return str(url), Topology(str(option(session.conf, "prefix", "executor")))


def _zone(value: str, param: str) -> str:
    problem = zone_problem(value)
    if problem:
        raise click.BadParameter(problem, param_hint=param)
    return value


@click.group("worker")
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
@click.pass_obj
def worker_run(
    session: Any,
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
    zone = _zone(zone or str(option(session.conf, "zone", "executor")), "--zone")
    url, topology = _broker(session)
    seconds = None
    if run_for:
        try:
            seconds = float(parse_duration(run_for))
        except DurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
    settings = WorkerSettings(
        url=url,
        zone=zone,
        max_workers=max_workers or int(option(session.conf, "max_workers")),  # type: ignore[arg-type]
        heartbeat_interval=float(option(session.conf, "heartbeat_interval", "executor")),  # type: ignore[arg-type]
        shutdown_grace=float(option(session.conf, "shutdown_grace")),  # type: ignore[arg-type]
        topology=topology,
    )
    printer = None if quiet else (_print_reply_json if as_json else _print_reply_line)
    runner = Worker(settings, session.clock, on_reply=printer,
                    on_notice=lambda line: click.echo(line, err=True))  # fmt: skip
    _stop_on_signals(runner)
    gc.freeze()  # what start-up made lives for good: full collections need not walk it
    click.echo(f"worker {runner.worker_id}: connecting to {describe(url)} for zone {zone!r}",
               err=True)  # fmt: skip
    runner.run(seconds)
    click.echo(
        f"worker stopped; {runner.done} jobs done, {runner.requeued} handed back, "
        f"{runner.refused} refused",
        err=True,
    )


def _stop_on_signals(runner: Worker) -> None:
    """The first SIGINT/SIGTERM stops gracefully, the second ends the grace, a third leaves."""
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        if len(received) <= 2:
            runner.stop()
            return
        click.echo(f"entropy: {signal.Signals(signum).name} a third time: leaving now; the "
                   "broker hands unfinished jobs out again", err=True)  # fmt: skip
        runners.kill_all()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


def _print_reply_line(reply: ResultMessage) -> None:
    result = reply.result
    outcome = click.style(f"{result.outcome.value.upper():8}",
                          fg=_COLOURS.get(result.outcome, "red"),
                          bold=result.outcome is not Outcome.OK)  # fmt: skip
    when = stamp(result.finished_at) if result.finished_at else "-"
    again = ", redelivered" if reply.redelivered else ""
    click.echo(f"{when}  {reply.host:<20} {reply.audit:<24} {outcome} {result.summary}  "
               f"({result.duration:.2f}s{again})")  # fmt: skip


def _print_reply_json(reply: ResultMessage) -> None:
    click.echo(to_json(reply.to_dict(), indent=None))


@click.command("workers")
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
@click.pass_obj
def workers(session: Any, zones: tuple[str, ...], wait: float, as_json: bool) -> None:
    """The live workers, by zone: load, jobs done, last heartbeat; and each zone's queue.

    Asks every worker for a heartbeat (exchange entropy.workers.ping) and
    lists those that answer within --wait; a worker that stopped is not
    listed. For each zone (those given with --zone, and those with a
    worker), the jobs waiting in its queue and the consumers the broker
    counts. A --zone with no live worker is named, and the exit status is 1.

    --json prints {"workers": [...], "zones": [...]}.
    """
    expected = [_zone(zone, "--zone") for zone in zones]
    url, topology = _broker(session)
    try:
        beats = live_workers(url, topology, wait)
        names = sorted({*expected, *(beat.zone for beat in beats)})
        queues = zone_queues(url, topology, names)
    except CONNECTION_ERRORS as exc:
        raise EntropyError(f"cannot reach {describe(url)}: {exc}") from None
    now = time.time()
    rows = [beat_dict(beat, now) for beat in beats]
    report = [
        {"zone": q.zone, "workers": sum(1 for b in beats if b.zone == q.zone),
         "waiting": q.waiting, "consumers": q.consumers, "queue": q.exists}
        for q in queues
    ]  # fmt: skip
    orphaned = [z["zone"] for z in report if z["zone"] in expected and not z["workers"]]
    if as_json:
        print_json({"workers": rows, "zones": report})
    else:
        _print_workers(rows, report, orphaned, topology)
    if orphaned:
        sys.exit(1)


def _print_workers(
    rows: list[dict[str, Any]], report: list[dict[str, Any]], orphaned: list[str],
    topology: Topology,
) -> None:  # fmt: skip
    if rows:
        table = [("ZONE", "WORKER", "HOST", "LOAD", "DONE", "LAST BEAT", "STATE")]
        for row in rows:
            table.append((row["zone"], row["worker_id"], row["hostname"],
                          f"{row['running']}/{row['max_workers']}", str(row["done"]),
                          f"{row['age']:.1f}s ago", row["state"]))  # fmt: skip
        print_table(table)
    else:
        click.echo("no live worker answered")
    for zone in report:
        count = zone["workers"]
        queue = (f"{zone['waiting']} jobs waiting, {zone['consumers']} consumers"
                 if zone["queue"] else "no queue yet")  # fmt: skip
        click.echo(f"zone {zone['zone']}: {count} live worker{'s' if count != 1 else ''}; "
                   f"{queue}", err=True)  # fmt: skip
    waiting = {zone["zone"]: zone["waiting"] for zone in report}
    for zone in orphaned:
        jobs = f"; {waiting[zone]} jobs wait in {topology.zone_queue(zone)}"
        click.echo(
            f"entropy: zone {zone!r} has no live worker{jobs if waiting[zone] else ''} (start "
            f"`entropy worker run --zone {zone}` on a machine that reaches its hosts)",
            err=True,
        )
