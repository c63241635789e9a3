"""Repairs: what they would do now, what their guardrails remember, and their rules."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ..definitions import parse_entry, parse_repairs
from ..errors import EntropyError
from ..events import tail
from ..repairs import PlanItem
from ..repairs import plan as plan_repairs
from .runtime import Runtime


def plan(rt: Runtime) -> list[PlanItem]:
    """For every failing (audit, host) a rule watches: fire, held (and why) or waiting."""
    backend = rt.backend
    return plan_repairs(backend, backend.load(), rt.clock.now())


def states(rt: Runtime, host: str | None = None) -> list[dict[str, Any]]:
    """Per (repair, host): attempts, the last run, the flag, and whether one runs now."""
    now = rt.clock.now()
    found = rt.backend.state.repairs.states(host=host)
    return [{**asdict(s), "running": s.running(now)} for s in found]


def reset(rt: Runtime, host: str, repair_name: str | None = None) -> int:
    """Clear HOST's flag and attempts (for every repair, or one); how many were cleared."""
    return rt.backend.state.repairs.reset(host, repair_name, rt.clock.now())


def add_rule(
    rt: Runtime,
    name: str,
    audit: str,
    script: str,
    outcomes: tuple[str, ...] = (),
    consecutive: int = 1,
    cooldown: str | None = None,
    max_concurrent: int | None = None,
    max_attempts: int | None = None,
    verify: bool = False,
) -> str:
    """Add (or replace) a repair rule in editable definitions: 'added' or 'replaced'."""
    backend = rt.backend.require_editable("repair add")
    when: dict[str, Any] = {"audit": audit, "consecutive": consecutive}
    if outcomes:
        when["outcome"] = list(outcomes)
    entry: dict[str, Any] = {"when": when, "run": script, "verify": verify}
    for key, value in (("cooldown", cooldown), ("max_concurrent", max_concurrent),
                       ("max_attempts", max_attempts)):  # fmt: skip
        if value is not None:
            entry[key] = value
    (rule,) = parse_entry(parse_repairs, "entropy repair add", name, entry).values()
    return "added" if backend.put_repair(rule) else "replaced"


def remove_rule(rt: Runtime, name: str) -> None:
    rt.backend.require_editable("repair remove").remove_repair(name)


def events_url(rt: Runtime, url: str | None = None) -> str:
    """The broker to read events from: `url`, else [notifications] transport_url."""
    url = url or rt.option("transport_url", "notifications")
    if not url:
        raise EntropyError(
            "no broker: set [notifications] transport_url in entropy.conf "
            "(e.g. amqp://guest:guest@127.0.0.1:5672//) or pass --url"
        )
    return str(url)


def tail_events(
    url: str,
    show: Callable[[str, dict[str, Any]], None],
    pattern: str = "#",
    count: int | None = None,
    seconds: float | None = None,
    on_problem: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Hand each event published on `url` to show(key, body), riding out broker restarts,
    until `count` events, `seconds` or `stop` is set."""
    if on_problem is None:
        return tail(url, show, pattern, count, seconds, stop=stop)
    return tail(url, show, pattern, count, seconds, on_problem, stop=stop)
