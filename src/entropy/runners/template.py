"""Placeholders in script parameters: `{host}`, `{ip_address}`, `{vars.NAME}`, `{params.NAME}`.

A regex replaces exactly these, never str.format: a value can't reach an
attribute or an index, and text that only looks like a format field (awk's
`{print $1}`, JSON, `${HOME}`) is left alone. A name that looks like a
placeholder but isn't one of these is an error, so a typo never runs as text.
The same values reach a command's environment as ENTROPY_* variables.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any

from ..errors import EntropyError
from .base import Job

# `{name}` or `{name.key}`; not after `$` (shell `${VAR}`) or `\` (an escaped brace).
PLACEHOLDER = re.compile(r"(?<![$\\])\{([A-Za-z_]\w*)(?:\.([^{}\s]+))?\}")
_NOT_ENV = re.compile(r"[^A-Z0-9_]")


class ScriptError(EntropyError):
    """A script that can't run as defined (bad key, unknown placeholder); outcome `error`."""


def as_text(value: Any) -> str:
    """How a var or param reads in a command: structured values as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


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


def render_shell(text: str, job: Job) -> str:
    """A /bin/sh command with each value quoted for the quotes it stands in.

    Bare `{x}` gets shlex.quote; inside '...' the quote is closed and reopened
    around it; inside "..." the four characters special there are escaped.
    Where the quoting is too tangled to follow (backquotes, a heredoc, `$(`
    inside double quotes) a placeholder is refused rather than risk injection.
    """
    out: list[str] = []
    done = 0
    for match in PLACEHOLDER.finditer(text):
        state = _shell_state(text, match.start())
        shown = match.group(0)
        if state == "tangled":
            env = _env_name(match.group(1), match.group(2))
            raise ScriptError(
                f"placeholder {shown} follows a backquote, a heredoc or `$(` inside double "
                f"quotes in a shell command; it can't be quoted safely there, use ${env}"
            )
        found = as_text(lookup(job, match.group(1), match.group(2)))
        if state == "'":
            found = "'" + shlex.quote(found) + "'"
        elif state == '"':
            found = re.sub(r'([\\$`"])', r"\\\1", found)
        else:
            found = shlex.quote(found)
        out.append(text[done : match.start()])
        out.append(found)
        done = match.end()
    out.append(text[done:])
    return "".join(out)


def _shell_state(text: str, end: int) -> str:
    """The sh quoting at text[end]: "" bare, "'" or '"' quoted, or "tangled"."""
    state = ""
    tangled = False
    i = 0
    while i < end:
        char = text[i]
        if state == "'":
            if char == "'":
                state = ""
        elif char == "\\":
            i += 1  # the next character is escaped
        elif char == "`" or (state == '"' and text.startswith("$(", i)):
            tangled = True  # a nested parse with its own quoting rules
        elif state == '"':
            if char == '"':
                state = ""
        elif char in "'\"":
            state = char
        elif text.startswith("<<", i):
            tangled = True  # a heredoc body expands $(...) inside quote characters
        i += 1
    return "tangled" if tangled else state


def _env_name(name: str, key: str | None) -> str:
    if key is None:
        return "ENTROPY_" + name.upper()
    prefix = {"vars": "ENTROPY_VAR_", "params": "ENTROPY_PARAM_"}.get(name, "ENTROPY_")
    return prefix + _NOT_ENV.sub("_", key.upper())


def environment(job: Job) -> dict[str, str]:
    """The ENTROPY_* variables a command gets: the placeholders' values, and the audit."""
    env = {
        "ENTROPY_HOST": job.host.name,
        "ENTROPY_IP_ADDRESS": job.host.ip_address,
        "ENTROPY_AUDIT": job.audit_name,
    }
    for key, value in job.host.vars.items():
        env[_env_name("vars", str(key))] = as_text(value)
    for key, value in job.params.items():
        env[_env_name("params", str(key))] = as_text(value)
    return env
