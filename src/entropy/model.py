"""Plain objects shared by every layer. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from .errors import Location
from .timing import Timing


class Status(StrEnum):
    NEW = "new"  # waiting for its next run
    PROCESSING = "processing"  # claimed by an engine
    PROCESSED = "processed"  # result stored, next_run advanced


class Outcome(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    ERROR = "error"  # the audit could not run
    TIMEOUT = "timeout"


class DisabledBy(StrEnum):
    """Who disabled a row, so a re-sync undoes only what the definitions did."""

    DEFINITIONS = "definitions"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    ip_address: str
    host_type: str
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    where: Location = field(default=Location("<definitions>"), compare=False)

    def in_group(self, group: str) -> bool:
        return self.host_type == group or group in self.groups


@dataclass(frozen=True, slots=True)
class Script:
    """What an audit (or repair) name runs: a kind and that kind's parameters."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    timeout: int | None = None
    where: Location = field(default=Location("<definitions>"), compare=False)


@dataclass(frozen=True, slots=True)
class Schedule:
    """One audit entry under a target (a group or a host) in a schedule file."""

    target: str
    audit_name: str
    timing: Timing
    disabled: bool = False
    disabled_reason: str | None = None
    timeout: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    where: Location = field(default=Location("<definitions>"), compare=False)

    def settings(self) -> tuple:
        """What two schedules must agree on to give one pair without conflict."""
        return (self.timing, self.disabled, self.disabled_reason, self.timeout, self.params)


@dataclass(frozen=True, slots=True)
class Pair:
    """One desired (audit, host) pair, as the definitions expand to."""

    audit_name: str
    host: str
    ip_address: str
    schedule: Schedule

    @property
    def key(self) -> tuple[str, str]:
        return (self.audit_name, self.host)


@dataclass(frozen=True, slots=True)
class RepairRule:
    """When an audit keeps failing on a host, run a script there, within limits."""

    name: str
    audit: str  # an audit name or a glob (fnmatch, case-sensitive)
    outcomes: frozenset[Outcome]
    run: str  # the script to run against the failing host
    consecutive: int = 1  # failures in a row of that (audit, host) before it fires
    cooldown: int = 0  # seconds between two runs for one host
    max_concurrent: int | None = None  # runs at once across the fleet
    max_attempts: int | None = None  # runs without a fix before the host is flagged
    verify: bool = False  # re-run the audit right after, record fixed / not fixed
    where: Location = field(default=Location("<definitions>"), compare=False)

    def matches(self, audit_name: str) -> bool:
        return fnmatchcase(audit_name, self.audit)


@dataclass(slots=True)
class Catalog:
    """Everything a backend's definitions say, validated, with the pairs they give."""

    hosts: dict[str, Host]
    scripts: dict[str, Script]
    schedules: list[Schedule]
    sources: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    repairs: dict[str, RepairRule] = field(default_factory=dict)

    def summary(self) -> str:
        repairs = f", {len(self.repairs)} repairs" if self.repairs else ""
        return (
            f"{len(self.hosts)} hosts, {len(self.scripts)} scripts, "
            f"{len(self.sources)} schedule files -> {len(self.pairs)} audits{repairs}"
        )


@dataclass(slots=True)
class AuditRow:
    """The state of one (audit, host) pair, as the state store keeps it."""

    id: int
    host: str
    ip_address: str
    audit_name: str
    next_run: datetime
    created_at: datetime
    updated_at: datetime
    disabled: bool
    disabled_reason: str | None
    status: Status
    result: dict[str, Any] | None
    disabled_by: DisabledBy | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0

    # The fields promised to operators, in order, for status and --json.
    PUBLIC_FIELDS = (
        "id",
        "host",
        "ip_address",
        "audit_name",
        "next_run",
        "created_at",
        "updated_at",
        "disabled",
        "disabled_reason",
        "status",
        "result",
    )

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PUBLIC_FIELDS}


@dataclass(slots=True)
class Result:
    """What one run of an audit (or repair) found."""

    outcome: Outcome
    summary: str
    output: str = ""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    slot: datetime | None = None  # the scheduled time it ran for
    engine_id: str | None = None
    audit_name: str = ""
    host: str = ""

    @property
    def duration(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "audit_name": self.audit_name,
            "outcome": self.outcome.value,
            "summary": self.summary,
            "output": self.output,
            "metrics": self.metrics,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "slot": self.slot,
            "engine_id": self.engine_id,
        }


@dataclass(slots=True)
class RepairState:
    """What the guardrails remember of one (repair, host)."""

    repair_name: str
    host: str
    attempts: int = 0  # runs since the audit was last seen healthy
    last_started_at: datetime | None = None
    running_by: str | None = None  # the engine running it now, under a lease
    running_until: datetime | None = None
    flagged: bool = False  # max_attempts ran out: a human must look
    flagged_reason: str | None = None
    recovered: bool = False  # the audit was healthy since the last run (not stored)

    def running(self, now: datetime) -> bool:
        return self.running_by is not None and (
            self.running_until is None or self.running_until >= now
        )


@dataclass(frozen=True, slots=True)
class RepairDecision:
    """Whether a repair runs now for one host, and if not, why."""

    fire: bool
    reason: str
    attempt: int = 0  # which attempt this run is, when it fires
    flag: str | None = None  # flag the host for a human, with this reason


class Verify(StrEnum):
    FIXED = "fixed"
    NOT_FIXED = "not_fixed"


@dataclass(slots=True)
class RepairRun:
    """One run of a repair: its result, what verified it, and what triggered it."""

    repair_name: str
    audit_name: str  # the audit that triggered it
    script: str
    attempt: int
    result: Result  # the repair script's own result (host, times, engine)
    trigger: Result  # the audit result that fired it
    verify: Verify | None = None
    verify_result: Result | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run as stored, printed and published (the trigger's times as ISO text)."""
        result, checked, trigger = self.result, self.verify_result, self.trigger
        return {
            "repair_name": self.repair_name,
            "host": result.host,
            "audit_name": self.audit_name,
            "script": self.script,
            "attempt": self.attempt,
            "outcome": result.outcome.value,
            "summary": result.summary,
            "output": result.output,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "engine_id": result.engine_id,
            "verify": None if self.verify is None else self.verify.value,
            "verify_outcome": None if checked is None else checked.outcome.value,
            "verify_summary": None if checked is None else checked.summary,
            "trigger_result": {
                "outcome": trigger.outcome.value,
                "summary": trigger.summary,
                "slot": None if trigger.slot is None else trigger.slot.isoformat(),
                "finished_at": None
                if trigger.finished_at is None
                else trigger.finished_at.isoformat(),
                "engine_id": trigger.engine_id,
            },
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: int
    removed: int
    kept: int
    updated: int = 0
    restored: int = 0  # operator disables put back on pairs that returned
    remembered: int = 0  # operator disables of removed pairs, kept for their return
    put_back: tuple[str, ...] = ()  # what was put back, one line each, for the operator

    def __str__(self) -> str:
        text = (
            f"added {self.added}, removed {self.removed}, kept {self.kept} "
            f"({self.updated} of them updated)"
        )
        for count, what in ((self.restored, "put back"),
                            (self.remembered, "kept for their pairs' return")):  # fmt: skip
            if count:
                text += f"; {count} operator disable{'s' if count != 1 else ''} {what}"
        return text
