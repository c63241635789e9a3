"""Plain objects shared by every layer. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from difflib import get_close_matches
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from .errors import Location, NotFound
from .timing import Cron, Timing


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
    UNREACHABLE = "unreachable"  # failed while a dependency was down (monitoring.py)


# What a repair rule may watch: never ok, never unreachable (its dependency is the problem).
REPAIRABLE_OUTCOMES = frozenset(
    {Outcome.WARNING, Outcome.CRITICAL, Outcome.UNKNOWN, Outcome.ERROR, Outcome.TIMEOUT}
)


class StateType(StrEnum):
    """Whether a pair's state is confirmed: soft while retries run, hard after max_attempts."""

    SOFT = "soft"
    HARD = "hard"


class DisabledBy(StrEnum):
    """Who disabled a row, so a re-sync undoes only what the definitions did."""

    DEFINITIONS = "definitions"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class HostSsh:
    """How to reach a host over SSH (hosts.yaml `ssh:`); None falls back to [ssh] config."""

    address: str | None = None  # default: the host's ip_address
    port: int | None = None
    user: str | None = None
    jump: str | None = None  # ProxyJump: "[user@]host[:port]", comma-separated for a chain

    def to_dict(self) -> dict[str, Any]:
        """The keys that are set, as hosts.yaml writes them."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


def parse_jump(spec: str) -> list[tuple[str | None, str, int | None]]:
    """ProxyJump text -> [(user, host, port)], hop by hop; ValueError saying what is wrong.

    `[user@]host[:port]`, `[user@][v6addr]:port`, several joined by commas.
    """
    hops: list[tuple[str | None, str, int | None]] = []
    for hop in spec.split(","):
        hop = hop.strip()
        user, at, rest = hop.rpartition("@")
        host, port = rest, None
        if rest.startswith("["):
            host, bracket, tail = rest[1:].partition("]")
            if not bracket or (tail and not tail.startswith(":")):
                raise ValueError(f"{hop!r}: an IPv6 address is written [addr]:port")
            port_text = tail[1:] if tail else None
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
        else:
            port_text = None  # a bare IPv6 address, or no port
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{hop!r}: port must be a number from 1 to 65535")
            port = int(port_text)
        if (
            not host
            or (at and not user)
            or any(bad in hop for bad in " \t\n'\"")
            or (host.startswith("-") or user.startswith("-"))
        ):
            raise ValueError(f"{hop!r} is not [user@]host[:port]")
        hops.append((user or None, host, port))
    return hops


DEFAULT_ZONE = "default"


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    ip_address: str
    host_type: str
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    where: Location = field(default=Location("<definitions>"), compare=False)
    parents: tuple[str, ...] = ()  # hosts this one is reached through (monitoring.py)
    ssh: HostSsh | None = None
    zone: str = DEFAULT_ZONE  # whose workers run its audits (executor = broker)

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
    monitoring: MonitorSettings | None = None  # None: none of monitoring.py's rules apply

    def settings(self) -> tuple:
        """What two schedules must agree on to give one pair without conflict."""
        return (
            self.timing, self.disabled, self.disabled_reason, self.timeout, self.params,
            self.monitoring,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Flapping:
    """Flapping thresholds, in percent of weighted state changes (Icinga's defaults)."""

    low: float = 25.0  # flapping ends at or below this
    high: float = 30.0  # flapping starts above this


@dataclass(frozen=True, slots=True)
class Dependency:
    """`depends_on`: the audit whose hard failure makes this one's failures unreachable."""

    audit: str
    host: str = "same"  # "same": that audit on this host; "parent": on each of its parents


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """A schedule entry's monitoring keys; a Schedule without any has `monitoring=None`."""

    max_attempts: int = 1  # results in a row before a problem is hard (max_check_attempts)
    retry_every: int | None = None  # seconds between retries while soft
    flapping: Flapping | None = None  # None: flapping detection off
    depends_on: Dependency | None = None
    passive: bool = False  # no script: results come from `entropy result submit`
    freshness: int | None = None  # passive: seconds without a result before `unknown`


@dataclass(frozen=True, slots=True)
class MonitorState:
    """One (audit, host) pair's monitoring state, kept beside its row (see monitoring.py).

    Frozen: monitoring.record() returns a new one. `to_dict`/`from_dict` give the
    JSON a store can keep in one column (or spread over columns of the same names).
    """

    state: Outcome = Outcome.OK  # the latest outcome (unreachable included)
    state_type: StateType = StateType.HARD
    attempt: int = 1  # Icinga's check_attempt: counts while soft, 1 once hard
    hard_state: Outcome = Outcome.OK  # the state as of the last hard state
    last_state_change: datetime | None = None
    last_hard_state_change: datetime | None = None
    flapping: bool = False
    flap_history: int = 0  # the last 20 results, newest in bit 0: 1 = a state change
    regular_slot: datetime | None = None  # while retrying: the schedule slot to resume from

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "state_type": self.state_type.value,
            "attempt": self.attempt,
            "hard_state": self.hard_state.value,
            "last_state_change": _iso(self.last_state_change),
            "last_hard_state_change": _iso(self.last_hard_state_change),
            "flapping": self.flapping,
            "flap_history": self.flap_history,
            "regular_slot": _iso(self.regular_slot),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> MonitorState:
        return cls(
            Outcome(value["state"]),
            StateType(value["state_type"]),
            int(value["attempt"]),
            Outcome(value["hard_state"]),
            _from_iso(value.get("last_state_change")),
            _from_iso(value.get("last_hard_state_change")),
            bool(value.get("flapping", False)),
            int(value.get("flap_history", 0)),
            _from_iso(value.get("regular_slot")),
        )


@dataclass(frozen=True, slots=True)
class Downtime:
    """A window in which problems are expected: repairs held, problem events marked.

    From the definitions (`name` is its key) or ad hoc (`name` is its id, with
    `created_by`/`created_at`). It covers a pair when the host matches `hosts`
    or `groups` (globs) and the audit matches `audits` (every audit if empty).
    The window is `start`..`end`, or `duration` from each time `cron` fires.
    """

    name: str
    reason: str
    hosts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    audits: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    cron: Cron | None = None
    duration: int | None = None  # seconds, with cron
    skip_checks: bool = False  # do not even run the covered audits
    created_by: str | None = None
    created_at: datetime | None = None
    where: Location = field(default=Location("<definitions>"), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """As a state store keeps an ad hoc one, and `downtime list --json` shows it."""
        return {
            "name": self.name,
            "reason": self.reason,
            "hosts": list(self.hosts),
            "groups": list(self.groups),
            "audits": list(self.audits),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "cron": None if self.cron is None else self.cron.expr,
            "cron_timezone": None if self.cron is None else self.cron.timezone,
            "duration": self.duration,
            "skip_checks": self.skip_checks,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Downtime:
        cron = value.get("cron")
        return cls(
            value["name"],
            value["reason"],
            tuple(value.get("hosts") or ()),
            tuple(value.get("groups") or ()),
            tuple(value.get("audits") or ()),
            _from_iso(value.get("start")),
            _from_iso(value.get("end")),
            None if cron is None else Cron(cron, value.get("cron_timezone") or "UTC"),
            value.get("duration"),
            bool(value.get("skip_checks", False)),
            value.get("created_by"),
            _from_iso(value.get("created_at")),
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """An operator's "seen it" on one (audit, host) problem (monitoring.ack_after)."""

    audit_name: str
    host: str
    reason: str
    state: Outcome  # the problem state it acknowledged
    sticky: bool = False  # survives changes between problem states; only ok clears it
    expires_at: datetime | None = None
    created_by: str | None = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit_name": self.audit_name,
            "host": self.host,
            "reason": self.reason,
            "state": self.state.value,
            "sticky": self.sticky,
            "expires_at": _iso(self.expires_at),
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Ack:
        return cls(
            value["audit_name"],
            value["host"],
            value["reason"],
            Outcome(value["state"]),
            bool(value.get("sticky", False)),
            _from_iso(value.get("expires_at")),
            value.get("created_by"),
            _from_iso(value.get("created_at")),
        )


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
    pairs: Sequence[Pair] = field(default_factory=list)  # a PairBlocks once loaded
    repairs: dict[str, RepairRule] = field(default_factory=dict)
    downtimes: dict[str, Downtime] = field(default_factory=dict)

    def summary(self) -> str:
        repairs = f", {len(self.repairs)} repairs" if self.repairs else ""
        return (
            f"{len(self.hosts)} hosts, {len(self.scripts)} scripts, "
            f"{len(self.sources)} schedule files -> {len(self.pairs)} audits{repairs}"
        )

    def select(self, audit: str, host: str | None = None, group: str | None = None) -> list[Pair]:
        """AUDIT's pairs (on one host, or the hosts of a group); NotFound says what is not."""
        pairs = [p for p in self.pairs if p.audit_name == audit]
        if not pairs:
            known = sorted({p.audit_name for p in self.pairs})
            raise NotFound(f"unknown audit {audit!r}{_did_you_mean(audit, known)}")
        if host:
            if host not in self.hosts:
                raise NotFound(f"unknown host {host!r}{_did_you_mean(host, list(self.hosts))}")
            pairs = [p for p in pairs if p.host == host]
            if not pairs:
                raise NotFound(f"audit {audit!r} does not run on host {host!r}")
        if group:
            members = {h.name for h in self.hosts.values() if h.in_group(group)}
            if not members:
                raise NotFound(f"no host is in group {group!r}")
            pairs = [p for p in pairs if p.host in members]
            if not pairs:
                raise NotFound(f"audit {audit!r} does not run on any host of group {group!r}")
        return pairs

    def select_hosts(self, host: str | None = None, group: str | None = None) -> list[Host]:
        """Every host, one, or a group's; NotFound when none is."""
        if host:
            if host not in self.hosts:
                close = get_close_matches(host, list(self.hosts), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise NotFound(f"unknown host {host!r}{hint}")
            return [self.hosts[host]]
        hosts = list(self.hosts.values())
        if group:
            hosts = [h for h in hosts if h.in_group(group)]
            if not hosts:
                raise NotFound(f"no host is in group {group!r}")
        if not hosts:
            raise NotFound("the definitions have no hosts")
        return hosts


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = get_close_matches(name, choices, n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


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
    monitor: MonitorState | None = None  # soft/hard state etc.; None without monitoring

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
        "monitor",
    )

    def public(self) -> dict[str, Any]:
        found = {name: getattr(self, name) for name in self.PUBLIC_FIELDS}
        if self.monitor is not None:
            found["monitor"] = self.monitor.to_dict()
        return found


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


def _from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


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
