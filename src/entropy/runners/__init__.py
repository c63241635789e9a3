"""Runners: run one script against one host and return a Result.

A runner is chosen by the script's `kind`. Each kind's module exposes
`run(job) -> Result` (outcome, summary, output, metrics); `run_job()` adds
the timestamps, caps the summary at 1 KiB, and turns any exception into
outcome `error`, so a runner can never take the engine down.
Where a script runs (here, or on the host over SSH with kind `ssh`) is
the job's concern, not the engine's.
"""

from __future__ import annotations

from ..clock import Clock
from ..model import Outcome, Result
from . import command, http, python, ssh, tcp
from .base import Job, Runner
from .nagios import cap_summary

RUNNERS: dict[str, Runner] = {
    "command": command.run,
    "http": http.run,
    "tcp": tcp.run,
    "python": python.run,
    "ssh": ssh.run,
}

__all__ = ["RUNNERS", "Job", "Result", "Runner", "allow_new", "kill_all", "run_job"]


def kill_all(refuse_new: bool = False) -> int:
    """Kill every running command, local and remote (engine shutdown); how many.

    refuse_new: the process is ending (Ctrl-C of a command): no command starts after.
    """
    return command.kill_all(refuse_new) + ssh.kill_all(refuse_new)


def allow_new() -> None:
    """Commands may start again after kill_all(refuse_new=True): the command it ended is over."""
    command.allow_new()
    ssh.allow_new()


def run_job(job: Job, clock: Clock) -> Result:
    """Run a job; never raises. A crash becomes outcome `error` with the reason."""
    started = clock.now()
    try:
        result = RUNNERS[job.script.kind](job)
    except Exception as exc:  # the script's crash or a runner's bug: record it, don't die
        result = Result(Outcome.ERROR, f"{type(exc).__name__}: {exc}")
    result.summary = cap_summary(str(result.summary))  # every kind's, bounded in one place
    result.started_at, result.finished_at = started, clock.now()
    return result
