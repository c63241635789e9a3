"""`result submit`: a result from outside (a cron job, a backup script), counted like any other.

It goes where the engine's results go: the pair's history and its row's
latest result, through the state store contract (`record_adhoc`), and the
pair's monitoring state when its schedule has monitoring. The pair's
next_run stays: a passive pair's freshness check measures from its last
result, whenever it arrived.

Then its events, and the repair rules, as the engine's publisher hands its
results on (Icinga's passive results: the same rules as active ones). The
repair is waited for: the Repairer's consider_now() takes the engine's
filter, holds and guardrails, and the store claims the run in one
transaction (RepairStore.start), so a CLI or API process is as safe a place
to start it as an engine. It runs where an engine's would: here with the
pool, on a worker of the host's zone with [executor] executor = broker.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import NotFound
from ..events import Events
from ..model import REPAIRABLE_OUTCOMES, AuditRow, Catalog, MonitorState, Outcome, Pair, Result
from ..monitor_record import Applied, apply, clear_ended_acks, publish
from ..repairs import Considered, Repairer
from ..runners.nagios import SUMMARY_LIMIT, cap_summary, metric
from .brokerconf import repair_runs
from .errors import BadRequest
from .runtime import Runtime, actor

# What a submitter may say: the Nagios outcomes and Entropy's own, never `unreachable`
# (that is Entropy's verdict on a failure behind a failed dependency, not a submitter's).
SUBMITTABLE = (Outcome.OK, *sorted(REPAIRABLE_OUTCOMES, key=list(Outcome).index))
OUTPUT_LIMIT = 64 * 1024  # characters of output kept, as a command's output is capped


@dataclass(frozen=True, slots=True)
class Submitted:
    """What `result submit` stored: the result, on which row."""

    result: Result
    row_id: int
    monitor: MonitorState | None = None  # the pair's state after it, with monitoring
    repairs: tuple[Considered, ...] | None = None  # what each repair rule did; None: not asked

    def to_dict(self) -> dict[str, Any]:
        state = None if self.monitor is None else self.monitor.to_dict()
        repairs = None if self.repairs is None else [c.to_dict() for c in self.repairs]
        return {**self.result.to_dict(), "row_id": self.row_id, "monitor": state,
                "repairs": repairs}  # fmt: skip


def submit_result(
    rt: Runtime,
    audit: str,
    host: str,
    outcome: Outcome | str,
    summary: str = "",
    metrics: dict[str, Any] | str | None = None,
    output: str = "",
    source: str | None = None,
    repair: bool = True,
) -> Submitted:
    """Record a result for (AUDIT, HOST) as if the engine had run it; return what was stored.

    The pair must exist in the definitions (NotFound naming what is not
    there); a row not synced yet is added first. `outcome` is one of
    SUBMITTABLE (BadRequest otherwise); `metrics` a mapping (or its JSON) of
    name -> number or name -> {"value": number, "uom", "warn", "crit", "min",
    "max"}. `source` says who sent it (stored as the result's engine_id);
    by default `entropy result submit by USER@HOST`.

    `repair`: run the repair rules over it, as the engine would over its own
    result, and wait for them (Submitted.repairs says what each did: ran,
    held and why, waiting for more failures); False leaves it to nobody
    (the next failure the engine records counts this one in its streak).
    """
    verdict = submittable(outcome)
    measured = parse_metrics(metrics)
    if not isinstance(summary, str) or not isinstance(output, str):
        raise BadRequest("summary and output must be text")
    backend = rt.backend
    catalog = backend.load()
    if not host:
        raise BadRequest("a result is for one host: give its name", "host")
    pair = catalog.select(audit, host)[0]  # NotFound: unknown audit or host, or not run there
    now = rt.clock.now()
    who = source or actor("result submit")
    row = _row(rt, audit, host)
    if row is None:  # the definitions have it, the store not yet: add it, remove nothing
        backend.sync(catalog, now, remove=False, actor=actor("result submit"))
        row = _row(rt, audit, host)
        if row is None:  # pragma: no cover - a sync adds every pair of the catalog
            raise NotFound(f"audit {audit!r} on {host!r} has no row in {backend.describe()}")
    result = Result(
        verdict,
        cap_summary(summary.strip() or f"{verdict.value} (submitted)", SUMMARY_LIMIT),
        output[:OUTPUT_LIMIT],
        measured,
        started_at=now,
        finished_at=now,
        slot=now,
        engine_id=who,
        audit_name=pair.audit_name,
        host=pair.host,
    )
    applied = None
    if pair.schedule.monitoring is not None:  # soft/hard, flapping, dependencies, acks
        (applied,) = apply(backend.state, catalog, [(row.id, pair, result, None)], now)
        result = applied.result
    monitor = applied.state if applied is not None else None
    backend.state.record_adhoc(row.id, result, monitor)
    if applied is not None:
        clear_ended_acks(backend.state, [applied])
    events = rt.events()
    try:
        if events is not None:
            _publish(rt, events, catalog, result, applied, now)
        considered = None
        if repair:
            considered = _repair(rt, events, catalog, row.id, pair, result, who)
    finally:
        if events is not None:
            events.close()  # sends what it can within its timeout; never hangs the command
    return Submitted(result, row.id, monitor, considered)


def _publish(rt: Runtime, events: Events, catalog: Catalog, result: Result,
             applied: Applied | None, now: datetime) -> None:  # fmt: skip
    """Its events, as the engine would publish them, when [notifications] asks for events."""
    downtimes = [*catalog.downtimes.values(), *rt.backend.state.downtimes()]
    publish(events, result, applied, downtimes, catalog.hosts.get(result.host), now)


def _repair(rt: Runtime, events: Events | None, catalog: Catalog, row_id: int, pair: Pair,
            result: Result, who: str) -> tuple[Considered, ...]:  # fmt: skip
    """The repair rules over the stored result, as the engine's repairer takes its own.

    `who` (the submitter) claims the run and is recorded as having run it. With
    [executor] executor = broker the repair and its verify run on a worker of the host's
    zone, as an engine's do (brokerconf.repair_runs), never here.
    """
    if not catalog.repairs:
        return ()
    timeout = float(rt.option("default_timeout"))
    with repair_runs(rt, who) as remote:
        repairer = Repairer(
            rt.backend, rt.clock, who, timeout, events,
            runner=None if remote is None else remote.run,
            run_margin=0.0 if remote is None else remote.margin,
        )  # fmt: skip
        return tuple(repairer.consider_now(catalog, [(row_id, pair, result)]))


def _row(rt: Runtime, audit: str, host: str) -> AuditRow | None:
    rows = rt.backend.audits(host=host, audit_name=audit)
    return rows[0] if rows else None


def submittable(outcome: Outcome | str) -> Outcome:
    """The outcome, if a submitter may give it; BadRequest naming those it may."""
    try:
        verdict = Outcome(outcome)
    except ValueError:
        verdict = None
    if verdict not in SUBMITTABLE:
        known = ", ".join(o.value for o in SUBMITTABLE)
        raise BadRequest(f"outcome {outcome!r} is none of {known}", "outcome")
    return verdict


def parse_metrics(metrics: dict[str, Any] | str | None) -> dict[str, dict[str, Any]]:
    """Submitted metrics in the shape runners report them (nagios.metric); BadRequest if not."""
    if metrics is None or metrics == "":
        return {}
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"metrics are not JSON: {exc}", "metrics") from None
    if not isinstance(metrics, dict):
        raise BadRequest('metrics must be a JSON object: {"name": number, ...}', "metrics")
    found: dict[str, dict[str, Any]] = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            extra = set(value) - {"value", "uom", "warn", "crit", "min", "max"}
            if extra:
                raise BadRequest(f"metric {name!r}: unknown keys {sorted(extra)}", "metrics")
            number = _number(name, value.get("value"))
            found[name] = metric(
                number,
                str(value.get("uom") or ""),
                None if value.get("warn") is None else str(value["warn"]),
                None if value.get("crit") is None else str(value["crit"]),
                None if value.get("min") is None else _number(name, value["min"]),
                None if value.get("max") is None else _number(name, value["max"]),
            )
        else:
            found[name] = metric(_number(name, value))
    return found


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"metric {name!r}: {value!r} is not a finite number", "metrics")
    return float(value)
