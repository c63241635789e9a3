"""Placeholders in script text: `{host}`, `{ip_address}`, `{vars.NAME}`, `{params.NAME}`.

The grammar lives here, below both the definitions (which check every
placeholder against the hosts and schedules it meets) and the runners (which
fill them in). A regex finds exactly these, never str.format: a value can't
reach an attribute or an index, and text that only looks like a format
field (awk's `{print $1}`, JSON, `${HOME}`) is left alone.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# `{name}` or `{name.key}`; not after `$` (shell `${VAR}`) or `\` (an escaped brace).
PLACEHOLDER = re.compile(r"(?<![$\\])\{([A-Za-z_]\w*)(?:\.([^{}\s]+))?\}")
_NOT_ENV = re.compile(r"[^A-Z0-9_]")

KNOWN = "{host}, {ip_address}, {vars.NAME}, {params.NAME}"
_SPELLINGS = ("host", "ip_address", "vars", "params")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One placeholder as written: `{vars.rack}` is Placeholder("vars", "rack")."""

    name: str
    key: str | None = None

    def __str__(self) -> str:
        return "{" + self.name + ("." + self.key if self.key is not None else "") + "}"

    @property
    def env(self) -> str:
        """The environment variable a command finds the same value in."""
        return env_name(self.name, self.key)

    def problem(self) -> str | None:
        """Why this isn't a placeholder Entropy knows, with a guess at the one meant."""
        if self.key is None and self.name in ("host", "ip_address"):
            return None
        if self.key is not None and self.name in ("vars", "params"):
            return None
        guess = _guess(self)
        hint = f"; did you mean {guess}?" if guess else f" (known: {KNOWN})"
        return f"unknown placeholder {self}{hint}"


def _guess(found: Placeholder) -> str | None:
    if found.key is not None and found.name in ("host", "ip_address"):
        return "{" + found.name + "}"
    close = difflib.get_close_matches(found.name.lower(), _SPELLINGS, n=1, cutoff=0.5)
    if not close and found.name.lower().startswith(("host", "ip")):
        close = ["host" if found.name.lower().startswith("host") else "ip_address"]
    if not close:
        return None
    name = close[0]
    if name in ("vars", "params"):
        return "{" + name + "." + (found.key or "NAME") + "}"
    return "{" + name + "}"


def find(text: str) -> Iterator[tuple[Placeholder, re.Match[str]]]:
    """The placeholders in text, in order, with where each stands."""
    if "{" not in text:
        return
    for match in PLACEHOLDER.finditer(text):
        yield Placeholder(match.group(1), match.group(2)), match


def env_name(name: str, key: str | None) -> str:
    if key is None:
        return "ENTROPY_" + name.upper()
    prefix = {"vars": "ENTROPY_VAR_", "params": "ENTROPY_PARAM_"}.get(name, "ENTROPY_")
    return prefix + _NOT_ENV.sub("_", key.upper())


def as_text(value: Any) -> str:
    """How a var or param reads in a command: structured values as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        try:
            return json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):  # keys of mixed types (refused by validate anyway)
            return json.dumps(value, default=str)
    return str(value)


# -- where each kind of script fills placeholders in -------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """One text of a script that gets placeholders filled in.

    key: the script key it comes from; index: its place in an argv list
    (command), or None; label: how to name it in a message.
    """

    key: str
    text: str
    index: int | None = None

    @property
    def label(self) -> str:
        return self.key if self.index is None else f"{self.key}[{self.index}]"


def texts(kind: str, params: dict[str, Any]) -> list[Text]:
    """Every text of a script the runners fill placeholders in (see runners/*.py)."""
    found: list[Text] = []
    if kind == "command":
        command = params.get("command")
        if isinstance(command, str):
            found.append(Text("command", command))
        elif isinstance(command, list | tuple):
            found += [Text("command", as_text(arg), i) for i, arg in enumerate(command)]
        found += _values("env", params.get("env"))
        if isinstance(params.get("cwd"), str):
            found.append(Text("cwd", params["cwd"]))
    elif kind == "http":
        if params.get("url") is not None:
            found.append(Text("url", as_text(params["url"])))
        found += _values("headers", params.get("headers"))
        body = params.get("body")
        if body is not None and not isinstance(body, dict | list):
            found.append(Text("body", as_text(body)))
    elif kind == "tcp":
        if params.get("host") is not None:
            found.append(Text("host", as_text(params["host"])))
        if isinstance(params.get("port"), str):
            found.append(Text("port", params["port"]))
    return found


def _values(key: str, mapping: Any) -> list[Text]:
    if not isinstance(mapping, dict):
        return []
    return [Text(f"{key}.{name}", as_text(value)) for name, value in mapping.items()]
