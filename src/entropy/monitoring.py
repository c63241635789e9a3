"""What operators expect of a check scheduler: pure rules, no I/O, time passed in.

Soft and hard states, flapping, downtimes, acknowledgements, dependencies,
passive results and overdue pairs, the way Icinga 2 and Nagios define them.
The engine, the stores, the repairer, the CLI and events call these functions
(docs/monitoring.md, "Phase 2 wiring"); nothing here reads a clock or a store.

Nothing configured costs nothing: a schedule entry without any of the keys
below has `Schedule.monitoring is None`, and the engine then records a result
exactly as before. Downtimes and acks only matter where a repair or an event
is decided, never on the recorder's path.

Soft and hard states (Icinga 2 `Checkable::ProcessCheckResult`, and its
`test/icinga-checkresult.cpp` cases for 1, 2 and 3 attempts):

- an ok result makes the state hard (attempt 1);
- the first problem after ok is soft, attempt 1; each further problem while
  soft is the next attempt; the attempt that reaches `max_attempts` makes the
  state hard and resets attempt to 1 (Icinga's numbering);
- a problem while in a hard problem state stays hard (a change between
  problem states, say warning -> critical, is a hard state change at once);
- a state change is any change of outcome, soft or hard.

Where Entropy differs from Icinga, and why:

- Outcomes. Icinga has four service states; Entropy's `error` (the audit
  could not run) and `timeout` are problems that Icinga would record as
  UNKNOWN (it maps every exit status above 3, a killed plugin included, to
  UNKNOWN). Entropy keeps them apart, so unknown -> error is a state change.
  `unreachable` is Entropy's outcome for a failure while a dependency is in a
  hard problem state (Icinga keeps the state and sets a "reachable" flag);
  it is a problem state like the others, but no repair rule may watch it.
- Recovery from a soft state (soft critical -> ok while the hard state was
  ok all along) is no hard state change here: `last_hard_state_change` stays,
  no `state.*` event, no repair. Icinga counts it as a hard change but sends
  no notification for it; the hard state did not change, so Entropy says so.
- Retries keep the schedule's grid: while soft the pair runs `retry_every`
  after each result, never later than its next regular slot, and afterwards
  resumes on the slots it had (Icinga re-bases its check interval on the
  last check). `retry_every` defaults to 1 minute, as Icinga's `retry_interval`.
- Flapping uses Nagios's weights (0.8 for the oldest of the last 20
  transitions up to 1.2 for the newest; Icinga uses 0.8 .. 1.18) and is off
  unless the entry says `flapping:` (Icinga's `enable_flapping` is off by
  default too). It starts above `high`, ends at or below `low`, and counts
  every result, soft or hard (as both do).
- Dependencies follow Icinga's default state filter: a dependency in hard
  warning still counts as up. With several parents a host is unreachable only
  when every parent's dependency is down (Nagios; Icinga 2's redundancy
  groups): one of two redundant uplinks failing must not hide real problems.
- Acknowledgements follow Icinga: a normal ack clears on any state change,
  a sticky one only on recovery (ok); both clear at their expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

from croniter import croniter

from .errors import EntropyError
from .model import (
    Ack,
    Dependency,
    Downtime,
    Flapping,
    Host,
    MonitorSettings,
    MonitorState,
    Outcome,
    Result,
    StateType,
)
from .timing import Timing, format_duration

DEFAULT_RETRY_EVERY = 60  # seconds: Icinga's retry_interval default
FLAP_WINDOW = 20  # transitions between the last 21 results (Nagios MAX_STATE_HISTORY_ENTRIES - 1)
_FLAP_MASK = (1 << FLAP_WINDOW) - 1
# A dependency in one of these hard states makes its dependents' failures unreachable.
DEPENDENCY_DOWN = frozenset(
    {Outcome.CRITICAL, Outcome.UNKNOWN, Outcome.ERROR, Outcome.TIMEOUT, Outcome.UNREACHABLE}
)
_OK, _SOFT, _HARD = Outcome.OK, StateType.SOFT, StateType.HARD


# -- soft and hard states, flapping ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """What one result did to a pair's monitoring state."""

    before: MonitorState
    after: MonitorState
    state_change: bool  # the outcome differs from the previous one (soft or hard)
    hard_change: bool  # the hard state changed: publish state.<audit>.<outcome>
    flapping_started: bool
    flapping_ended: bool
    next_run: datetime | None  # when the pair runs next (None if no timing was given)

    @property
    def retrying(self) -> bool:
        """Soft problem: the next run is a retry."""
        return self.after.state_type is _SOFT

    @property
    def recovery(self) -> bool:
        """A hard problem state ended with ok."""
        return self.hard_change and self.after.state is _OK


def record(
    state: MonitorState | None,
    outcome: Outcome,
    at: datetime,
    settings: MonitorSettings,
    timing: Timing | None = None,
    slot: datetime | None = None,
) -> Transition:
    """Apply one result (`outcome`, finished `at`) to a pair's state.

    `state` None is a pair with no result yet: ok, hard, as Icinga starts one.
    With `timing` and `slot` (the slot this run was for) the transition also
    says when the pair runs next: `retry_every` after `at` while soft, never
    later than the next regular slot; the regular slot once it is hard or ok.
    """
    before = state or _NEW
    was_problem = before.state != _OK
    if outcome == _OK:
        state_type, attempt = _HARD, 1
    else:
        if not was_problem:
            state_type, attempt = _SOFT, 1
        elif before.state_type is _SOFT:
            state_type, attempt = _SOFT, before.attempt + 1
        else:  # hard problem -> another problem: stays hard
            state_type, attempt = _HARD, 1
        if attempt >= settings.max_attempts:
            state_type, attempt = _HARD, 1
    state_change = outcome != before.state
    hard_state = outcome if state_type is _HARD else before.hard_state
    hard_change = hard_state != before.hard_state
    last_change = at if state_change or before.last_state_change is None else None
    last_hard = at if hard_change or (
        before.last_hard_state_change is None and state_type is _HARD
    ) else None  # fmt: skip

    flapping, history = False, 0  # detection off (or just turned off): not flapping
    if settings.flapping is not None:
        history = ((before.flap_history << 1) | state_change) & _FLAP_MASK
        flapping = flapping_now(before.flapping, flap_percent(history), settings.flapping)
    started, ended = flapping and not before.flapping, before.flapping and not flapping

    anchor = None
    if state_type is _SOFT:
        anchor = before.regular_slot or slot
    after = MonitorState(
        outcome,
        state_type,
        attempt,
        hard_state,
        last_change or before.last_state_change,
        last_hard or before.last_hard_state_change,
        flapping,
        history,
        anchor,
    )
    next_run = None
    if timing is not None and slot is not None:
        regular = timing.next_slot(before.regular_slot or slot, at)
        if state_type is _SOFT:
            retry = at + timedelta(seconds=settings.retry_every or DEFAULT_RETRY_EVERY)
            next_run = min(retry, regular)
        else:
            next_run = regular
    return Transition(before, after, state_change, hard_change, started, ended, next_run)


_NEW = MonitorState()

# Nagios's weights: bit k (0 = the newest transition) weighs 1.2 - 0.4 * k / 19.
_WEIGHTS = [1.2 - 0.4 * k / (FLAP_WINDOW - 1) for k in range(FLAP_WINDOW)]
# Sums per 5-bit chunk, so a percentage is four lookups, not a loop over 20 bits.
_CHUNKS = [
    [sum(_WEIGHTS[base + b] for b in range(5) if bits >> b & 1) for bits in range(32)]
    for base in range(0, FLAP_WINDOW, 5)
]


def flap_percent(history: int) -> float:
    """Weighted share of state changes over the last 20 transitions, 0..100."""
    total = (
        _CHUNKS[0][history & 31]
        + _CHUNKS[1][history >> 5 & 31]
        + _CHUNKS[2][history >> 10 & 31]
        + _CHUNKS[3][history >> 15 & 31]
    )
    return 100.0 * total / FLAP_WINDOW


def flapping_now(was: bool, percent: float, thresholds: Flapping) -> bool:
    """Starts above `high`; once flapping, goes on while above `low`."""
    return percent > (thresholds.low if was else thresholds.high)


# -- downtimes ------------------------------------------------------------------------


def downtime_covers(downtime: Downtime, audit_name: str, host: Host) -> bool:
    """Whether the downtime names this pair (host by name or group, audit; globs)."""
    if downtime.audits and not any(fnmatchcase(audit_name, a) for a in downtime.audits):
        return False
    if any(fnmatchcase(host.name, h) for h in downtime.hosts):
        return True
    if downtime.groups:
        groups = (host.host_type, *host.groups)
        return any(fnmatchcase(g, pattern) for pattern in downtime.groups for g in groups)
    return not downtime.hosts  # only audits named: on every host


def downtime_window(downtime: Downtime, now: datetime) -> tuple[datetime, datetime] | None:
    """The window (start, end) the downtime is in at `now`, start included, end not."""
    if downtime.cron is None:
        start, end = downtime.start, downtime.end
        if start is None or end is None:
            return None
        return (start, end) if start <= now < end else None
    start = _cron_at_or_before(downtime.cron.expr, downtime.cron.timezone, now)
    end = start + timedelta(seconds=downtime.duration or 0)
    return (start, end) if now < end else None


def downtime_active(downtime: Downtime, now: datetime) -> bool:
    return downtime_window(downtime, now) is not None


def next_downtime_window(downtime: Downtime, now: datetime) -> tuple[datetime, datetime] | None:
    """The window in force at `now`, else the next one to start; None if none is left."""
    current = downtime_window(downtime, now)
    if current is not None:
        return current
    if downtime.cron is None:
        start, end = downtime.start, downtime.end
        return (start, end) if start is not None and end is not None and now < start else None
    local = now.astimezone(ZoneInfo(downtime.cron.timezone))
    start = croniter(downtime.cron.expr, local).get_next(datetime).astimezone(UTC)
    return (start, start + timedelta(seconds=downtime.duration or 0))


def covering_downtime(
    downtimes: Iterable[Downtime], audit_name: str, host: Host, now: datetime
) -> tuple[Downtime, datetime] | None:
    """The active downtime covering the pair that ends last, with its end; None if none."""
    found: tuple[Downtime, datetime] | None = None
    for downtime in downtimes:
        if not downtime_covers(downtime, audit_name, host):
            continue
        window = downtime_window(downtime, now)
        if window is not None and (found is None or window[1] > found[1]):
            found = (downtime, window[1])
    return found


def skips_check(
    downtimes: Iterable[Downtime], audit_name: str, host: Host, now: datetime
) -> Downtime | None:
    """An active downtime with `skip_checks` covering the pair: do not run it now."""
    for downtime in downtimes:
        if (
            downtime.skip_checks
            and downtime_covers(downtime, audit_name, host)
            and downtime_active(downtime, now)
        ):
            return downtime
    return None


def _cron_at_or_before(expr: str, timezone: str, now: datetime) -> datetime:
    """The latest time cron fires at or before `now` (cron fires on whole minutes)."""
    local = (now.replace(microsecond=0) + timedelta(seconds=1)).astimezone(ZoneInfo(timezone))
    return croniter(expr, local).get_prev(datetime).astimezone(UTC)


# -- acknowledgements -----------------------------------------------------------------


class AckRefused(EntropyError):
    """There is nothing to acknowledge (the pair is ok or has no result)."""


def new_ack(
    audit_name: str,
    host: str,
    current: Outcome | None,
    reason: str,
    now: datetime,
    expire: int | None = None,
    sticky: bool = False,
    created_by: str | None = None,
) -> Ack:
    """An ack of the pair's current problem; AckRefused when there is none."""
    if current is None:
        raise AckRefused(f"audit {audit_name!r} on {host!r} has no result yet: nothing to ack")
    if current is _OK:
        raise AckRefused(f"audit {audit_name!r} on {host!r} is ok: nothing to acknowledge")
    if not reason.strip():
        raise AckRefused("an acknowledgement needs a reason")
    expires = None if expire is None else now + timedelta(seconds=expire)
    return Ack(audit_name, host, reason, current, sticky, expires, created_by, now)


def ack_active(ack: Ack, now: datetime) -> bool:
    return ack.expires_at is None or now < ack.expires_at


def ack_after(ack: Ack, transition: Transition | None, now: datetime) -> Ack | None:
    """The ack still in force after a result (or at `now`, with no transition); None: cleared.

    Cleared at its expiry, on recovery (ok), and on any state change unless sticky.
    """
    if not ack_active(ack, now):
        return None
    if transition is None:
        return ack
    if transition.after.state is _OK:
        return None
    if transition.state_change and not ack.sticky:
        return None
    return ack


# -- dependencies ---------------------------------------------------------------------


def dependency_keys(dependency: Dependency, host: Host) -> tuple[tuple[str, str], ...]:
    """The (audit, host) pairs a pair on `host` depends on; none for a host without parents."""
    if dependency.host == "parent":
        return tuple((dependency.audit, parent) for parent in host.parents)
    return ((dependency.audit, host.name),)


def hard_state_of(state: MonitorState | None, latest: Outcome | None) -> Outcome | None:
    """A pair's hard state: its MonitorState's, or its latest outcome when it keeps none."""
    return state.hard_state if state is not None else latest


def unreachable_reason(
    dependency: Dependency, host: Host, hard_states: Mapping[tuple[str, str], Outcome | None]
) -> str | None:
    """Why a failure on `host` is unreachable now, or None if it is not.

    `hard_states` maps dependency pairs to their hard state (hard_state_of);
    a pair missing or without a result counts as up. Unreachable needs every
    one of the host's dependency pairs down (DEPENDENCY_DOWN).
    """
    keys = dependency_keys(dependency, host)
    if not keys:
        return None
    down = []
    for key in keys:
        state = hard_states.get(key)
        if state is None or state not in DEPENDENCY_DOWN:
            return None
        down.append(f"{key[0]} on {key[1]} is {state.value}")
    what = "parent" if dependency.host == "parent" else "dependency"
    if len(down) > 1:
        what = "every parent"
    return f"{what} down: " + ", ".join(down)


def mark_unreachable(result: Result, reason: str | None) -> Result:
    """The result as recorded: a failure becomes `unreachable` while a dependency is down."""
    if reason is None or result.outcome is _OK or result.outcome is Outcome.UNREACHABLE:
        return result
    summary = f"unreachable ({reason}); was {result.outcome.value}: {result.summary}"
    return replace(result, outcome=Outcome.UNREACHABLE, summary=summary)


# -- passive results and overdue pairs ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassiveCheck:
    """What a passive pair's freshness check found: a result to record (or None), and
    when to check again."""

    result: Result | None
    next_run: datetime


def passive_check(
    audit_name: str,
    host: str,
    freshness: int,
    last_result_at: datetime | None,
    since: datetime,
    now: datetime,
) -> PassiveCheck:
    """Whether a passive pair went stale: no result within `freshness` of the last one
    (or of `since`, the row's creation, before any). Stale gives an `unknown` result."""
    deadline = (last_result_at or since) + timedelta(seconds=freshness)
    if now < deadline:
        return PassiveCheck(None, deadline)
    summary = f"no result for {audit_name} on {host} in {format_duration(freshness)}"
    result = Result(
        Outcome.UNKNOWN, summary, started_at=now, finished_at=now, slot=now,
        audit_name=audit_name, host=host,
    )  # fmt: skip
    return PassiveCheck(result, now + timedelta(seconds=freshness))


def overdue_since(timing: Timing, last_result_at: datetime, now: datetime) -> datetime | None:
    """When the pair became overdue (its last result older than twice its interval), or None.

    For cron, "twice its interval" is two firings after the last result.
    """
    deadline = timing.following(timing.following(last_result_at))
    return deadline if now > deadline else None


# -- repair holds and events ----------------------------------------------------------


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def repair_hold(
    audit_name: str,
    host: Host,
    now: datetime,
    state: MonitorState | None = None,
    settings: MonitorSettings | None = None,
    downtimes: Iterable[Downtime] = (),
    ack: Ack | None = None,
) -> str | None:
    """Why a repair for this pair is held now (the text `repair plan` shows), or None.

    In order: downtime, acknowledgement, dependency (unreachable), flapping, soft state.
    """
    covering = covering_downtime(downtimes, audit_name, host, now)
    if covering is not None:
        downtime, end = covering
        return f"in downtime {downtime.name!r} until {_stamp(end)}: {downtime.reason}"
    if ack is not None and ack_active(ack, now):
        by = f" by {ack.created_by}" if ack.created_by else ""
        until = f" until {_stamp(ack.expires_at)}" if ack.expires_at else ""
        return f"acknowledged{by}{until}: {ack.reason}"
    if state is None:
        return None
    if state.state is Outcome.UNREACHABLE:
        dependency = settings.depends_on if settings else None
        on = ""
        if dependency is not None:
            where = "its parents" if dependency.host == "parent" else "this host"
            on = f" ({dependency.audit} on {where})"
        return f"unreachable: a dependency{on} is down"
    thresholds = settings.flapping if settings is not None else Flapping()
    if state.flapping and thresholds is not None:
        low = thresholds.low
        return (
            f"flapping: {flap_percent(state.flap_history):.1f}% state changes "
            f"(ends at or below {low:g}%)"
        )
    if state.state_type is _SOFT:
        of = f" of {settings.max_attempts}" if settings else ""
        return (
            f"soft state: {state.state.value}, attempt {state.attempt}{of}; "
            f"waiting for a hard state"
        )
    return None


def problem_event_marks(
    outcome: Outcome,
    state_change: bool,
    downtime: Downtime | None = None,
    ack: Ack | None = None,
    now: datetime | None = None,
) -> dict[str, object] | None:
    """What to add to an audit event's body, or None to suppress it.

    Unreachable failures publish nothing; an acknowledged problem publishes
    only its state changes; a problem in downtime is marked with it.
    """
    if outcome is Outcome.UNREACHABLE:
        return None
    marks: dict[str, object] = {}
    if outcome is not _OK and ack is not None and (now is None or ack_active(ack, now)):
        if not state_change:
            return None
        marks["acknowledged"] = ack.reason
    if downtime is not None:
        marks["downtime"] = downtime.name
        marks["downtime_reason"] = downtime.reason
    return marks
