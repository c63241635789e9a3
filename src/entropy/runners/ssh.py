"""kind: ssh - run a program on the host over SSH; read its result as a Nagios plugin's.

The same keys and the same reading as `command` (exit codes, first line,
perfdata, output cap; its code, not a copy), run on the audited host:
`command` is an argv list, quoted for the remote shell argument by argument,
or one /bin/sh string with `shell: true`; `upload: PATH` copies a local file
there once per content hash and runs it with `args`. `env` and the ENTROPY_*
variables are set in the command's environment.

A connection that can't be made or that drops (auth, host key, refused,
timeout, dropped) is outcome `unknown` naming the cause, as check_by_ssh
reports it; the command never ran, or its result is lost. Connections are
pooled per host by entropy.ssh.
"""

from __future__ import annotations

import re

from ..errors import EntropyError
from ..model import Outcome, Result, Script
from ..scriptcheck import argv_problem
from ..ssh import client as ssh_client
from ..ssh.failures import CONFIG, STOPPING
from ..ssh.settings import target_for
from ..ssh.upload import LocalFile, local_file, upload_path
from .base import Job
from .command import command_of, join_output, output_limit, script_env, verdict
from .nagios import cut
from .template import ScriptError, as_text, render

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def run(job: Job) -> Result:
    try:
        params = job.script.params
        limit = output_limit(params)
        upload = _upload(job.script)
        command, shell_values = (_args(job), {}) if upload is not None else command_of(job)
        env = _env(job, shell_values)
        client = ssh_client.default()
        target = target_for(job.host, client.settings)
    except ScriptError as exc:
        return Result(Outcome.ERROR, str(exc))
    except (EntropyError, ValueError) as exc:  # [ssh] config, a jump that can't be read
        return Result(Outcome.ERROR, f"ssh: {exc}")
    ran = client.run(target, command, env=env, timeout=job.timeout, limit=limit, upload=upload)
    if ran.failure is not None:
        # Not the host's fault: the audit could not run.
        outcome = Outcome.ERROR if ran.failure.cause in (CONFIG, STOPPING) else Outcome.UNKNOWN
        return Result(outcome, f"SSH {ran.failure.cause}: {ran.failure}")
    finished = ran.finished
    stdout = cut(finished.stdout, limit, finished.stdout_total)
    stderr = cut(finished.stderr, limit, finished.stderr_total)
    if finished.dropped is not None:
        failure = finished.dropped
        summary = f"SSH {failure.cause}: {failure}"
        return Result(Outcome.UNKNOWN, summary, join_output(stdout, stderr))
    if finished.code is None and not (finished.timed_out or finished.killed):
        why = f"killed by signal {finished.signal_name}"
        return Result(Outcome.UNKNOWN, why, join_output(stdout, stderr))
    return verdict(
        -9 if finished.code is None else finished.code,
        stdout,
        stderr,
        job.timeout if finished.timed_out else None,
        finished.killed,
    )


def kill_all(refuse_new: bool = False) -> int:
    """Stop every remote command this process runs (engine shutdown); refuse_new: and
    start none after (the process is ending), until allow_new()."""
    return ssh_client.kill_all(refuse_new)


def allow_new() -> None:
    """Remote commands may start again after kill_all(refuse_new=True)."""
    ssh_client.allow_new()


def _env(job: Job, shell_values: dict[str, str]) -> dict[str, str]:
    """The script's env and ENTROPY_*, and the values a shell command's placeholders read."""
    env = {**script_env(job), **shell_values}
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise ScriptError(f"env: {name!r} is not a variable name (letters, digits, _)")
    return env


def _upload(script: Script) -> LocalFile | None:
    """The local file `upload` names, hashed; relative paths start at the scripts file."""
    path = script.params.get("upload")
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ScriptError(f"upload must be the path of a local file, got {path!r}")
    found = upload_path(path, script.where.path)
    try:
        return local_file(found)
    except OSError as exc:
        raise ScriptError(f"upload {str(found)!r}: {exc.strerror or exc}") from None


def _args(job: Job) -> list[str]:
    args = job.script.params.get("args") or []
    if not isinstance(args, list | tuple):
        raise ScriptError(f"args must be a list of arguments, got {args!r}")
    template = tuple(as_text(arg) for arg in args)
    problem = argv_problem((str(job.script.params.get("upload")), *template))
    if problem:  # refused by validate already; scripts made in code too
        raise ScriptError(f"[upload, *args]: {problem}")
    return [render(arg, job) for arg in template]
