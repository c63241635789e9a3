"""Placeholders in script parameters: `{host}`, `{ip_address}`, `{vars.NAME}`, `{params.NAME}`.

A regex replaces exactly these (see entropy.placeholders), never
str.format. A name that looks like a placeholder but isn't one of these is
an error, so a typo never runs as text. The same values reach a command's
environment as ENTROPY_* variables.

In a `shell: true` command no value is spliced into the script's text:
each placeholder becomes a reference to an environment variable holding
the value, quoted for where it stands, so the shell never parses a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .. import codeargs
from ..errors import EntropyError
from ..placeholders import PLACEHOLDER, as_text, env_name
from ..scriptcheck import shell_problem
from .base import Job

__all__ = ["PLACEHOLDER", "ScriptError", "as_text", "environment", "render", "render_shell"]

SHELL_VALUE = (
    "ENTROPY_SHELL_"  # ENTROPY_SHELL_1, _2, ...: the values of a shell command's placeholders
)


class ScriptError(EntropyError):
    """A script that can't run as defined (bad key, unknown placeholder); outcome `error`."""


def lookup(job: Job, name: str, key: str | None) -> Any:
    """The value a placeholder stands for; ScriptError naming it if there is none."""
    shown = "{" + name + ("." + key if key is not None else "") + "}"
    if key is None:
        if name == "host":
            return job.host.name
        if name == "ip_address":
            return job.host.ip_address
    elif name == "vars":
        if key in job.host.vars:
            return job.host.vars[key]
        raise ScriptError(f"placeholder {shown}: host {job.host.name!r} has no var {key!r}")
    elif name == "params":
        if key in job.params:
            return job.params[key]
        raise ScriptError(f"placeholder {shown}: the schedule gives no param {key!r}")
    raise ScriptError(
        f"unknown placeholder {shown} (known: {{host}}, {{ip_address}}, "
        "{vars.NAME}, {params.NAME})"
    )


def render(text: str, job: Job, quote: Callable[[str], str] | None = None) -> str:
    """text with its placeholders replaced, each value passed through quote if given."""
    if "{" not in text:  # the common case costs one scan
        return text

    def value(match: re.Match[str]) -> str:
        found = as_text(lookup(job, match.group(1), match.group(2)))
        return quote(found) if quote else found

    return PLACEHOLDER.sub(value, text)


def render_shell(text: str, job: Job) -> tuple[str, dict[str, str]]:
    """A /bin/sh script with each placeholder as a quoted variable, and those variables.

    `{host}` bare becomes `"${ENTROPY_SHELL_1}"`, inside "..." `${ENTROPY_SHELL_1}`,
    and inside '...' the quote is closed and reopened around `"${ENTROPY_SHELL_1}"`.
    The value itself is in the environment, where the shell expands it without
    parsing it. Where the quoting is too tangled to follow (backquotes, a
    heredoc, `$(` inside double quotes) or the value would be code again (`eval`,
    a nested `sh -c`), the placeholder is refused.
    """
    if "{" not in text:
        return text, {}
    problem = shell_problem(text)
    if problem:
        raise ScriptError(problem)
    out: list[str] = []
    values: dict[str, str] = {}
    done = 0
    for match in PLACEHOLDER.finditer(text):
        state = codeargs.shell_quoting(text, match.start())
        name = f"{SHELL_VALUE}{len(values) + 1}"
        values[name] = as_text(lookup(job, match.group(1), match.group(2)))
        if state == "'":
            reference = "'\"${" + name + "}\"'"
        elif state == '"':
            reference = "${" + name + "}"
        else:
            reference = '"${' + name + '}"'
        out.append(text[done : match.start()])
        out.append(reference)
        done = match.end()
    out.append(text[done:])
    return "".join(out), values


def environment(job: Job) -> dict[str, str]:
    """The ENTROPY_* variables a command gets: the placeholders' values, and the audit."""
    env = {
        "ENTROPY_HOST": job.host.name,
        "ENTROPY_IP_ADDRESS": job.host.ip_address,
        "ENTROPY_AUDIT": job.audit_name,
    }
    for key, value in job.host.vars.items():
        env[env_name("vars", str(key))] = as_text(value)
    for key, value in job.params.items():
        env[env_name("params", str(key))] = as_text(value)
    return env
