"""`entropy engine run`, `engine stop` and `engines`."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

import click

from ..service import engines as engine_ops
from ..service import logs
from ..service.runtime import Runtime
from ..timing import format_duration
from .common import command, group, json_option, pass_runtime, seconds
from .output import (
    print_json,
    print_repair_json,
    print_repair_line,
    print_result_json,
    print_result_line,
    print_table,
    say,
    stamp,
)
from .readonly import read_only


@group()
def engine() -> None:
    """Run the engine: the scheduler yields due audits, a worker pool runs them."""


@engine.command("run")
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Audits run at the same time (default: max_workers in the config).",
)
@click.option(
    "--for",
    "run_for",
    metavar="DURATION",
    help="Stop by itself after this long, e.g. 30s or 1h (default: until Ctrl-C).",
)
@click.option(
    "--metrics-port",
    metavar="[HOST:]PORT",
    help="Serve this engine's own metrics for Prometheus at http://HOST:PORT/metrics (HOST: "
    "127.0.0.1 unless given): audits run, claim and record latency, queue depth, lateness.",
)
@json_option
@pass_runtime
def engine_run(
    rt: Runtime,
    max_workers: int | None,
    run_for: str | None,
    metrics_port: str | None,
    as_json: bool,
) -> None:
    """Run audits when they are due and print one line per result, until stopped.

    Every result is stored (the row's latest result and the history). The
    definitions are reloaded every refresh_interval and when the YAML files
    change; invalid changes are logged and the previous schedule keeps
    running. SIGTERM, Ctrl-C or `entropy engine stop` stops gracefully: no
    new claims, running audits get shutdown_grace seconds, then unfinished
    ones go back to new.

    Several engines may share a PostgreSQL or MariaDB/MySQL state store: each
    registers (`entropy engines`), claims due audits under a lease its
    heartbeat renews, and takes over the audits of an engine that died. A
    SQLite state store serves one engine at a time.

    With [executor] executor = broker the audits run on `entropy worker run`
    processes of each host's zone, through RabbitMQ (docs/broker.md); the
    engine still claims, fences and records them.
    """
    # Here, not at the top: the engine's stack (scheduler, executors, repairs, metrics)
    # is imported by this command alone, not by every short command of the CLI.
    from ..service.compose import EngineProcess

    logs.at_least_info("entropy")
    until = None
    if run_for:
        until = rt.clock.now() + timedelta(seconds=seconds(run_for, "--for"))
    process = EngineProcess(
        rt, max_workers,
        on_result=print_result_json if as_json else print_result_line,
        on_repair=print_repair_json if as_json else print_repair_line,
        on_notice=lambda line: say(line, logging.WARNING),
        first_load_progress=not as_json, metrics_port=metrics_port,
    )  # fmt: skip
    events = process.events
    publishing = f"; events to {events.describe()}" if events else ""
    if process.metrics_at:
        publishing += f"; metrics at http://{process.metrics_at[0]}:{process.metrics_at[1]}/metrics"
    runs_on = process.executor_description()
    banner = (f"engine {process.settings.engine_id} on {rt.backend.describe()}, "
              f"{runs_on}{publishing}; Ctrl-C to stop")  # fmt: skip
    done = process.run(until, on_start=lambda: say(banner))
    say(f"engine stopped; {done.recorded} results recorded")
    if done.dropped:  # the store did not take them (each one is in the log)
        error = f"{done.dropped} results could not be recorded: {done.drop_reason}"
        say(f"entropy: error: {error}", logging.ERROR, error)
    if done.stuck:
        say(
            f"{done.stuck} audits are still stuck in their workers; exiting anyway", logging.WARNING
        )
        process.exit_if_stuck(done)
    if done.exit_status:
        sys.exit(done.exit_status)


@engine.command("stop")
@click.option(
    "--engine-id", "target", metavar="ID", help="The engine to stop (see `entropy engines`)."
)
@click.option("--all", "every", is_flag=True, help="Every live engine on this state store.")
@click.option(
    "--wait",
    "wait_for",
    metavar="DURATION",
    help="Wait up to this long until they have stopped, e.g. 30s (exit 1 if some have not).",
)
@json_option
@pass_runtime
def engine_stop(
    rt: Runtime, target: str | None, every: bool, wait_for: str | None, as_json: bool
) -> None:
    """Ask engines to stop gracefully, from any machine that reaches the state store.

    Each engine reads the request at its next heartbeat (heartbeat_interval)
    and stops as on SIGTERM: no new claims, running audits get
    shutdown_grace seconds, unfinished ones go back to new.

    --json prints {"asked": [engine ids], "still_running": [engine ids], or
    null without --wait}.
    """
    if bool(target) == every:
        raise click.UsageError("give --engine-id ID or --all")
    wait = seconds(wait_for, "--wait") if wait_for else None
    done = engine_ops.stop(rt, target, wait)
    if as_json:
        print_json(done.to_dict())
    else:
        if not done.asked:
            say("no live engine to stop")
        for name in done.asked:
            if done.still_running is None:
                click.echo(f"asked {name} to stop")
            else:
                running = name in done.still_running
                click.echo(f"{name}: {'still running' if running else 'stopped'}")
    if done.still_running:
        sys.exit(1)


@command("engines")
@json_option
@pass_runtime
@read_only
def engines_list(rt: Runtime, as_json: bool) -> None:
    """List the engines registered in the state store: running, stopping, stopped or dead.

    An engine is dead when its heartbeat is older than claim_lease +
    max_clock_skew (its claims have expired and other engines take them).
    """
    found = engine_ops.engines(rt)
    if as_json:
        print_json(found.to_dicts())
        return
    if not found.engines:
        say("no engine has run on this state store")
        return
    now = found.now
    table = [("ENGINE", "STATE", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT")]
    for e in found.engines:
        age = format_duration(max((now - e.heartbeat_at).total_seconds(), 0.0))
        table.append((e.engine_id, e.state(now, found.dead_after), e.hostname, str(e.pid),
                      e.version, stamp(e.started_at), f"{age} ago"))  # fmt: skip
    print_table(table)


COMMANDS = [engine, engines_list]
