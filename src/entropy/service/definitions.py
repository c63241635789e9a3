"""Definitions kept in a database (sqlalchemy, mongodb, memory): hosts, schedules, scripts.

Each entry goes through the parser its YAML goes through, so the command
line can add nothing a file could not hold. The dir and file backends keep
their definitions in YAML: these raise Unsupported naming the file to edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.base import EditableDefinitions
from ..definitions import Problems, parse_entry, parse_hosts, parse_schedules, parse_scripts
from .runtime import Runtime


def _editable(rt: Runtime, command: str) -> EditableDefinitions:
    return rt.backend.require_editable(command)


def _parsed(parse: Any, command: str, name: str, entry: dict[str, Any], *extra: Any) -> Any:
    """Check an entry from the command line with the parser the YAML goes through."""
    return parse_entry(parse, f"entropy {command}", name, entry, *extra)


def _change(new: bool) -> str:
    return "added" if new else "replaced"


def add_host(
    rt: Runtime,
    name: str,
    ip_address: str,
    host_type: str,
    groups: list[str] | None = None,
    host_vars: dict[str, Any] | None = None,
    ssh: dict[str, Any] | None = None,
) -> str:
    """Add host NAME or replace the host of that name: 'added' or 'replaced'."""
    backend = _editable(rt, "host add")
    entry: dict[str, Any] = {
        "ip_address": ip_address,
        "host_type": host_type,
        "groups": list(groups or ()),
        "vars": dict(host_vars or {}),
    }
    if ssh:
        entry["ssh"] = ssh
    (parsed,) = _parsed(parse_hosts, "host add", name, entry).values()
    return _change(backend.put_host(parsed))


def remove_host(rt: Runtime, name: str) -> None:
    """Refused while a schedule names it as its target."""
    _editable(rt, "host remove").remove_host(name)


def add_schedule(
    rt: Runtime,
    target: str,
    audit_name: str,
    every: str | None = None,
    cron: str | None = None,
    params: dict[str, Any] | None = None,
    timeout: str | None = None,
    disabled_reason: str | None = None,
) -> tuple[str, str]:
    """Run AUDIT on TARGET every DURATION or on a cron schedule: (change, timing described)."""
    backend = _editable(rt, "schedule add")
    entry: dict[str, Any] = {"run_every": every} if every else {"cron": cron}
    entry["params"] = dict(params or {})
    if timeout:
        entry["timeout"] = timeout
    if disabled_reason:
        entry.update(disabled=True, disabled_reason=disabled_reason)
    tz = rt.option("cron_timezone")
    (parsed,) = _parsed(
        parse_schedules, "schedule add", target, {"audits": {audit_name: entry}}, tz
    )
    return _change(backend.put_schedule(parsed)), parsed.timing.describe()


def remove_schedule(rt: Runtime, target: str, audit_name: str) -> None:
    _editable(rt, "schedule remove").remove_schedule(target, audit_name)


def add_script(
    rt: Runtime, name: str, kind: str, keys: dict[str, Any], timeout: str | None = None
) -> str:
    """Add script NAME or replace the script of that name: 'added' or 'replaced'."""
    backend = _editable(rt, "script add")
    entry = {"kind": kind, **keys}
    if timeout:
        entry["timeout"] = timeout
    (parsed,) = _parsed(parse_scripts, "script add", name, entry).values()
    return _change(backend.put_script(parsed))


def import_scripts(rt: Runtime, path: str) -> dict[str, list[str]]:
    """Add (or replace) every script of a scripts.yaml: {"added": [names], "replaced": [...]}."""
    backend = _editable(rt, "script import")
    problems = Problems()
    found = parse_scripts(problems.read(Path(path)), path, problems)
    problems.raise_if_any()
    done: dict[str, list[str]] = {"added": [], "replaced": []}
    for name, parsed in found.items():
        done[_change(backend.put_script(parsed))].append(name)
    return done


def remove_script(rt: Runtime, name: str) -> None:
    """Refused while a schedule or a repair uses it."""
    _editable(rt, "script remove").remove_script(name)
