"""The monitoring rules (monitoring.py) on a fake clock: soft/hard states, flapping,
downtimes, acknowledgements, dependencies, passive results, overdue pairs, repair holds.

The soft/hard cases mirror Icinga 2's test/icinga-checkresult.cpp (service_1attempt,
service_2attempts, service_3attempts): after each result the state, its type and the
attempt must be Icinga's, and a hard state change must happen exactly where Icinga
sends a notification.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from entropy.clock import FakeClock
from entropy.model import (
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
from entropy.monitoring import (
    AckRefused,
    ack_active,
    ack_after,
    covering_downtime,
    dependency_keys,
    downtime_active,
    downtime_covers,
    downtime_window,
    flap_percent,
    hard_state_of,
    mark_unreachable,
    new_ack,
    next_downtime_window,
    overdue_since,
    passive_check,
    problem_event_marks,
    record,
    repair_hold,
    skips_check,
    unreachable_reason,
)
from entropy.timing import Every, parse_cron

OK, WARNING, CRITICAL, UNKNOWN = Outcome.OK, Outcome.WARNING, Outcome.CRITICAL, Outcome.UNKNOWN
SOFT, HARD = StateType.SOFT, StateType.HARD
START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
COMPUTE = Host("compute-01", "10.0.0.1", "compute", ("hypervisor",))
API = Host("api-01", "10.0.0.4", "control", ("web",))


def feed(settings: MonitorSettings, outcomes: list[Outcome], clock: FakeClock | None = None):
    """Record outcomes one minute apart; the transitions, in order."""
    clock = clock or FakeClock(START)
    state, out = None, []
    for outcome in outcomes:
        clock.advance(60)
        transition = record(state, outcome, clock.now(), settings)
        state = transition.after
        out.append(transition)
    return out


# -- soft and hard states: Icinga's cases ---------------------------------------------

# (result, state, state_type, attempt, hard state change = Icinga sends a notification)
ICINGA_1_ATTEMPT = [
    (UNKNOWN, UNKNOWN, HARD, 1, True),
    (OK, OK, HARD, 1, True),
    (CRITICAL, CRITICAL, HARD, 1, True),
    (OK, OK, HARD, 1, True),
]
ICINGA_2_ATTEMPTS = [
    (UNKNOWN, UNKNOWN, SOFT, 1, False),
    (CRITICAL, CRITICAL, HARD, 1, True),
    (OK, OK, HARD, 1, True),
    (CRITICAL, CRITICAL, SOFT, 1, False),
    (OK, OK, HARD, 1, False),  # recovery from soft: no hard change
]
ICINGA_3_ATTEMPTS = [
    (UNKNOWN, UNKNOWN, SOFT, 1, False),
    (CRITICAL, CRITICAL, SOFT, 2, False),
    (CRITICAL, CRITICAL, HARD, 1, True),
    (OK, OK, HARD, 1, True),
    (CRITICAL, CRITICAL, SOFT, 1, False),
    (OK, OK, HARD, 1, False),
]


@pytest.mark.parametrize(
    ("max_attempts", "steps"),
    [(1, ICINGA_1_ATTEMPT), (2, ICINGA_2_ATTEMPTS), (3, ICINGA_3_ATTEMPTS)],
    ids=["1attempt", "2attempts", "3attempts"],
)
def test_soft_and_hard_states_follow_icingas_cases(max_attempts: int, steps: list) -> None:
    transitions = feed(MonitorSettings(max_attempts=max_attempts), [s[0] for s in steps])
    for number, ((_, state, state_type, attempt, hard), t) in enumerate(
        zip(steps, transitions, strict=True), 1
    ):
        got = (t.after.state, t.after.state_type, t.after.attempt, t.hard_change)
        assert got == (state, state_type, attempt, hard), f"result {number}"


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 5])
def test_a_problem_turns_hard_after_exactly_max_attempts_results(max_attempts: int) -> None:
    transitions = feed(MonitorSettings(max_attempts=max_attempts), [CRITICAL] * (max_attempts + 2))
    types = [t.after.state_type for t in transitions]
    assert types == [SOFT] * (max_attempts - 1) + [HARD] * 3
    hard_changes = [i for i, t in enumerate(transitions, 1) if t.hard_change]
    assert hard_changes == [max_attempts]  # once, on the max_attempts-th result
    assert [t.after.attempt for t in transitions[: max_attempts - 1]] == list(
        range(1, max_attempts)
    )


def test_state_change_times_are_the_results_times() -> None:
    clock = FakeClock(START)
    t = feed(MonitorSettings(max_attempts=2), [OK, CRITICAL, CRITICAL, CRITICAL, OK], clock)
    at = [START + timedelta(minutes=n) for n in range(1, 6)]
    # The first result makes the state known: both times are set, but nothing "changed".
    assert (t[0].state_change, t[0].hard_change) == (False, False)
    assert t[0].after.last_state_change == t[0].after.last_hard_state_change == at[0]
    assert t[1].after.last_state_change == at[1]  # ok -> soft critical
    assert t[1].after.last_hard_state_change == at[0]
    assert t[2].after.last_hard_state_change == at[2]  # soft -> hard critical
    assert t[2].after.last_state_change == at[1]  # critical -> critical is no change
    assert t[3].after.last_state_change == at[1]
    assert t[4].recovery and t[4].after.last_state_change == at[4]
    assert t[4].after.last_hard_state_change == at[4]


def test_a_change_between_problems_in_a_hard_state_is_a_hard_change_at_once() -> None:
    t = feed(MonitorSettings(max_attempts=3), [WARNING, WARNING, WARNING, CRITICAL])
    assert t[2].after.state_type is HARD and t[2].hard_change
    assert (t[3].after.state, t[3].after.state_type, t[3].hard_change) == (CRITICAL, HARD, True)


def test_unknown_then_critical_count_as_attempts_in_a_row() -> None:
    """Icinga counts problems in a row, not one outcome repeated (its 3-attempt case)."""
    t = feed(MonitorSettings(max_attempts=2), [Outcome.ERROR, Outcome.TIMEOUT])
    assert t[1].after.state is Outcome.TIMEOUT and t[1].after.state_type is HARD
    assert t[1].state_change  # error -> timeout: Entropy keeps them apart


def test_recovery_from_soft_holds_no_repair_and_changes_no_hard_state() -> None:
    settings = MonitorSettings(max_attempts=3)
    t = feed(settings, [OK, CRITICAL, CRITICAL, OK])
    hold = repair_hold("check_a", COMPUTE, START, t[2].after, settings)
    assert hold == "soft state: critical, attempt 2 of 3; waiting for a hard state"
    assert not t[3].hard_change and not t[3].recovery
    assert t[3].after.hard_state is OK
    assert t[3].after.last_hard_state_change == t[0].after.last_hard_state_change
    assert repair_hold("check_a", COMPUTE, START, t[3].after, settings) is None


def test_max_attempts_1_is_todays_behaviour() -> None:
    """Every result hard at once; a hard change on every change of outcome."""
    outcomes = [OK, CRITICAL, CRITICAL, WARNING, OK, OK]
    t = feed(MonitorSettings(), outcomes)
    assert all(x.after.state_type is HARD for x in t)
    assert [x.hard_change for x in t] == [False, True, False, True, True, False]


# -- when the next run is due ---------------------------------------------------------


def test_retries_run_at_retry_every_then_the_schedule_resumes_on_its_grid() -> None:
    timing, settings = Every(3600), MonitorSettings(max_attempts=3, retry_every=120)
    slot = START  # the regular slot that ran
    clock = FakeClock(START + timedelta(seconds=2))
    first = record(None, CRITICAL, clock.now(), settings, timing, slot)
    assert first.retrying and first.next_run == clock.now() + timedelta(seconds=120)
    clock.set(first.next_run + timedelta(seconds=1))
    second = record(first.after, CRITICAL, clock.now(), settings, timing, first.next_run)
    assert second.retrying and second.next_run == clock.now() + timedelta(seconds=120)
    clock.set(second.next_run + timedelta(seconds=1))
    third = record(second.after, CRITICAL, clock.now(), settings, timing, second.next_run)
    assert third.after.state_type is HARD and not third.retrying
    assert third.next_run == START + timedelta(hours=1)  # the grid it had, not retry + 1h
    assert third.after.regular_slot is None


def test_a_retry_never_comes_later_than_the_next_regular_slot() -> None:
    timing, settings = Every(60), MonitorSettings(max_attempts=2, retry_every=600)
    t = record(None, CRITICAL, START + timedelta(seconds=1), settings, timing, START)
    assert t.retrying and t.next_run == START + timedelta(seconds=60)


def test_retry_every_defaults_to_one_minute() -> None:
    t = record(None, CRITICAL, START, MonitorSettings(max_attempts=2), Every(3600), START)
    assert t.next_run == START + timedelta(seconds=60)


def test_cron_resumes_at_its_next_firing_after_retries() -> None:
    timing = parse_cron("0 * * * *")
    settings = MonitorSettings(max_attempts=2, retry_every=300)
    first = record(None, CRITICAL, START, settings, timing, START)
    assert first.next_run == START + timedelta(minutes=5)
    second = record(first.after, OK, first.next_run, settings, timing, first.next_run)
    assert second.next_run == START + timedelta(hours=1)


def test_ok_and_hard_results_run_at_the_regular_slot() -> None:
    timing = Every(600)
    t = record(
        None, OK, START + timedelta(seconds=3), MonitorSettings(max_attempts=3), timing, START
    )
    assert t.next_run == START + timedelta(seconds=600)


# -- flapping -------------------------------------------------------------------------

FLAPPING = MonitorSettings(flapping=Flapping())


def test_flapping_starts_above_high_and_ends_at_or_below_low() -> None:
    # ok, critical, ok, ... from a new (ok) pair: every result after the first is a change.
    flips = [OK if n % 2 == 0 else CRITICAL for n in range(12)]
    t = feed(FLAPPING, flips + [OK] * 30)
    percent = [flap_percent(x.after.flap_history) for x in t]
    started = [i for i, x in enumerate(t) if x.flapping_started]
    ended = [i for i, x in enumerate(t) if x.flapping_ended]
    assert len(started) == 1 and len(ended) == 1
    s, e = started[0], ended[0]
    # 5 changes weigh 28.9 %, 6 weigh 34.4 % (Nagios's weights, newest 1.2).
    assert s == 6 and percent[s - 1] == pytest.approx(28.947, abs=1e-3)
    assert percent[s] == pytest.approx(34.421, abs=1e-3) and percent[s] > 30
    assert all(x.after.flapping for x in t[s:e])
    assert percent[e] <= 25 < percent[e - 1]
    assert not t[e].after.flapping and all(not x.after.flapping for x in t[e:])


def test_flapping_keeps_its_state_between_the_thresholds() -> None:
    # Hysteresis: below high but above low, a flapping pair stays flapping ...
    settings = MonitorSettings(flapping=Flapping(low=10, high=50))
    t = feed(settings, [OK if n % 2 == 0 else CRITICAL for n in range(12)] + [CRITICAL] * 20)
    percent = [flap_percent(x.after.flap_history) for x in t]
    first = next(i for i, x in enumerate(t) if x.after.flapping)
    assert percent[first] > 50
    between = [i for i in range(first, len(t)) if 10 < percent[i] <= 50]
    assert len(between) >= 3 and all(t[i].after.flapping for i in between)
    assert not t[-1].after.flapping and percent[-1] <= 10
    # ... and one that is not flapping does not start there.
    calm = feed(settings, [OK, CRITICAL, OK, CRITICAL, OK, CRITICAL])
    assert 10 < flap_percent(calm[-1].after.flap_history) <= 50
    assert not any(x.after.flapping for x in calm)


def test_twenty_changes_in_a_row_are_100_percent() -> None:
    t = feed(FLAPPING, [CRITICAL if n % 2 == 0 else OK for n in range(25)])
    assert flap_percent(t[-1].after.flap_history) == pytest.approx(100.0)


def test_icinga_docs_flapping_example_flaps_then_recovers() -> None:
    """The sequence of Icinga's host_flapping_docs_example: flapping, then calm after 7."""
    w, c = WARNING, CRITICAL
    sequence = [c, c, c, w, c, w, OK, OK, OK, OK, w, w, w, w, OK, OK, OK, w, w, w, c]
    t = feed(FLAPPING, sequence)
    assert t[-1].after.flapping and flap_percent(t[-1].after.flap_history) > 30
    calm = feed(FLAPPING, sequence + [c] * 7)
    assert not calm[-1].after.flapping and flap_percent(calm[-1].after.flap_history) <= 25


def test_flapping_is_off_unless_configured_and_ends_when_unconfigured() -> None:
    flips = [OK if n % 2 == 0 else CRITICAL for n in range(12)]
    assert not any(x.after.flapping or x.after.flap_history for x in feed(MonitorSettings(), flips))
    flapping = feed(FLAPPING, flips)[-1].after
    assert flapping.flapping
    t = record(flapping, OK, START, MonitorSettings())  # flapping: removed from the entry
    assert t.flapping_ended and not t.after.flapping


def test_a_flapping_pair_holds_its_repairs() -> None:
    state = feed(FLAPPING, [OK if n % 2 == 0 else CRITICAL for n in range(12)])[-1].after
    hold = repair_hold("check_a", COMPUTE, START, state, FLAPPING)
    assert hold is not None and hold.startswith("flapping: ")
    assert hold.endswith("% state changes (ends at or below 25%)")


# -- downtimes ------------------------------------------------------------------------

WINDOW = Downtime(
    "dc-move",
    "moving racks",
    groups=("control",),
    start=START + timedelta(hours=22),
    end=START + timedelta(hours=28),
)
WEEKLY = Downtime(
    "kernel",
    "kernel upgrades",
    hosts=("compute-*",),
    audits=("check_*",),
    cron=parse_cron("0 2 * * 6"),  # Saturdays 02:00 UTC
    duration=7200,
)


def test_a_start_end_downtime_is_active_from_start_until_end() -> None:
    start, end = WINDOW.start, WINDOW.end
    assert start is not None and end is not None
    assert not downtime_active(WINDOW, start - timedelta(seconds=1))
    assert downtime_window(WINDOW, start) == (start, end)
    assert downtime_active(WINDOW, end - timedelta(microseconds=1))
    assert not downtime_active(WINDOW, end)


def test_a_cron_downtime_is_active_for_its_duration_after_each_firing() -> None:
    saturday = datetime(2026, 1, 3, 2, 0, tzinfo=UTC)
    assert not downtime_active(WEEKLY, saturday - timedelta(seconds=1))
    assert downtime_window(WEEKLY, saturday) == (saturday, saturday + timedelta(hours=2))
    assert downtime_active(WEEKLY, saturday + timedelta(hours=1, minutes=59, seconds=59))
    assert not downtime_active(WEEKLY, saturday + timedelta(hours=2))
    assert downtime_active(WEEKLY, saturday + timedelta(days=7, minutes=30))
    assert not downtime_active(WEEKLY, saturday + timedelta(days=1))


def test_a_cron_downtime_fires_in_its_timezone() -> None:
    berlin = Downtime(
        "night",
        "backups",
        groups=("control",),
        cron=parse_cron("0 2 * * *", "Europe/Berlin"),
        duration=3600,
    )
    assert downtime_active(berlin, datetime(2026, 1, 10, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert not downtime_active(berlin, datetime(2026, 1, 10, 2, 30, tzinfo=UTC))
    assert downtime_active(berlin, datetime(2026, 7, 10, 0, 30, tzinfo=UTC))  # 02:30 CEST


def test_next_downtime_window() -> None:
    assert next_downtime_window(WINDOW, START) == (WINDOW.start, WINDOW.end)
    assert next_downtime_window(WINDOW, START + timedelta(days=2)) is None
    saturday = datetime(2026, 1, 3, 2, 0, tzinfo=UTC)
    assert next_downtime_window(WEEKLY, START) == (saturday, saturday + timedelta(hours=2))


def test_what_a_downtime_covers() -> None:
    assert downtime_covers(WEEKLY, "check_a", COMPUTE)
    assert not downtime_covers(WEEKLY, "ping", COMPUTE)  # audits: check_*
    assert not downtime_covers(WEEKLY, "check_a", API)  # hosts: compute-*
    assert downtime_covers(WINDOW, "anything", API)  # group control, every audit
    assert not downtime_covers(WINDOW, "anything", COMPUTE)
    by_group_glob = Downtime("x", "r", groups=("hyper*",))
    assert downtime_covers(by_group_glob, "ping", COMPUTE)  # through its groups
    fleet_wide = Downtime("y", "r", audits=("ping",))
    assert downtime_covers(fleet_wide, "ping", API) and not downtime_covers(fleet_wide, "x", API)


def test_a_repair_due_in_a_downtime_is_held_and_not_after_it() -> None:
    clock = FakeClock(datetime(2026, 1, 3, 1, 59, tzinfo=UTC))
    hard_critical = feed(MonitorSettings(), [CRITICAL])[-1].after
    assert repair_hold("check_a", COMPUTE, clock.now(), hard_critical, downtimes=[WEEKLY]) is None
    clock.advance(minutes=1)
    assert repair_hold("check_a", COMPUTE, clock.now(), hard_critical, downtimes=[WEEKLY]) == (
        "in downtime 'kernel' until 2026-01-03 04:00:00Z: kernel upgrades"
    )
    clock.advance(hours=1, minutes=59)
    assert repair_hold("check_a", COMPUTE, clock.now(), downtimes=[WEEKLY]) is not None
    clock.advance(minutes=1)  # 04:00: over
    assert repair_hold("check_a", COMPUTE, clock.now(), hard_critical, downtimes=[WEEKLY]) is None


def test_the_covering_downtime_that_ends_last_is_named() -> None:
    late = Downtime(
        "late", "long", hosts=("compute-01",), start=START, end=START + timedelta(days=1)
    )
    early = Downtime(
        "early", "short", hosts=("compute-01",), start=START, end=START + timedelta(hours=1)
    )
    assert covering_downtime([early, late], "ping", COMPUTE, START) == (late, late.end)


def test_skip_checks_only_in_a_window_that_asks_for_it() -> None:
    skipping = Downtime(
        "s",
        "r",
        hosts=("compute-01",),
        start=START,
        end=START + timedelta(hours=1),
        skip_checks=True,
    )
    assert skips_check([WINDOW, skipping], "ping", COMPUTE, START) is skipping
    assert skips_check([skipping], "ping", COMPUTE, START + timedelta(hours=1)) is None
    assert skips_check([WINDOW], "ping", API, WINDOW.start) is None  # runs, repairs held


# -- acknowledgements -----------------------------------------------------------------


def test_an_ack_expires() -> None:
    clock = FakeClock(START)
    ack = new_ack(
        "check_a", "compute-01", CRITICAL, "on it", clock.now(), expire=4 * 3600, created_by="alice"
    )
    state = feed(MonitorSettings(), [CRITICAL])[-1].after
    assert repair_hold("check_a", COMPUTE, clock.now(), state, ack=ack) == (
        "acknowledged by alice until 2026-01-01 04:00:00Z: on it"
    )
    clock.advance(hours=4)
    assert not ack_active(ack, clock.now()) and ack_after(ack, None, clock.now()) is None
    assert repair_hold("check_a", COMPUTE, clock.now(), state, ack=ack) is None


def test_a_sticky_ack_survives_warning_to_critical_and_a_normal_one_does_not() -> None:
    t = feed(MonitorSettings(), [WARNING, CRITICAL, OK])
    sticky = new_ack("check_a", "compute-01", WARNING, "known", START, sticky=True)
    normal = new_ack("check_a", "compute-01", WARNING, "known", START)
    assert t[1].state_change and t[1].after.state is CRITICAL
    assert ack_after(sticky, t[1], START) is sticky
    assert ack_after(normal, t[1], START) is None
    assert ack_after(sticky, t[2], START) is None  # recovery clears even a sticky one


def test_an_ack_stays_while_the_problem_does_not_change() -> None:
    t = feed(MonitorSettings(), [CRITICAL, CRITICAL])
    ack = new_ack("check_a", "compute-01", CRITICAL, "known", START)
    assert not t[1].state_change and ack_after(ack, t[1], START) is ack


@pytest.mark.parametrize(("current", "message"), [(OK, "is ok"), (None, "no result yet")])
def test_only_a_problem_can_be_acknowledged(current: Outcome | None, message: str) -> None:
    with pytest.raises(AckRefused, match=message):
        new_ack("check_a", "compute-01", current, "x", START)
    with pytest.raises(AckRefused, match="needs a reason"):
        new_ack("check_a", "compute-01", CRITICAL, "  ", START)


def test_ack_as_json() -> None:
    ack = new_ack("a", "h", CRITICAL, "r", START, expire=60, sticky=True, created_by="bob")
    assert json.loads(json.dumps(ack.to_dict()))["expires_at"] == "2026-01-01T00:01:00+00:00"


# -- dependencies ---------------------------------------------------------------------

SWITCH = Host("sw-1", "10.0.9.1", "switch")
BEHIND = Host("compute-01", "10.0.0.1", "compute", parents=("sw-1",))
TWO_UPLINKS = Host("compute-02", "10.0.0.2", "compute", parents=("sw-1", "sw-2"))
ON_PARENT = Dependency("ping", "parent")


def test_a_child_behind_a_hard_failed_parent_is_unreachable_with_no_repair() -> None:
    parent = feed(MonitorSettings(max_attempts=2), [CRITICAL, CRITICAL])[-1].after
    states = {("ping", "sw-1"): hard_state_of(parent, CRITICAL)}
    reason = unreachable_reason(ON_PARENT, BEHIND, states)
    assert reason == "parent down: ping on sw-1 is critical"
    failing = Result(CRITICAL, "connection refused", audit_name="check_a", host="compute-01")
    recorded = mark_unreachable(failing, reason)
    assert recorded.outcome is Outcome.UNREACHABLE
    assert recorded.summary == (
        "unreachable (parent down: ping on sw-1 is critical); was critical: connection refused"
    )
    settings = MonitorSettings(depends_on=ON_PARENT)
    child = record(None, recorded.outcome, START, settings).after
    assert repair_hold("check_a", BEHIND, START, child, settings) == (
        "unreachable: a dependency (ping on its parents) is down"
    )
    assert problem_event_marks(recorded.outcome, True) is None  # its events are suppressed


def test_a_child_behind_a_soft_failed_parent_is_not_unreachable() -> None:
    parent = feed(MonitorSettings(max_attempts=3), [CRITICAL, CRITICAL])[-1].after
    assert parent.state is CRITICAL and parent.state_type is SOFT
    states = {("ping", "sw-1"): hard_state_of(parent, CRITICAL)}
    assert unreachable_reason(ON_PARENT, BEHIND, states) is None


@pytest.mark.parametrize(
    ("states", "unreachable"),
    [
        ({("ping", "sw-1"): WARNING}, False),  # warning counts as up (Icinga's default)
        ({}, False),  # no result yet: up
        ({("ping", "sw-1"): Outcome.UNREACHABLE}, True),  # behind a parent that is itself cut off
        ({("ping", "sw-1"): Outcome.TIMEOUT}, True),
    ],
)
def test_which_parent_states_count_as_down(states: dict, unreachable: bool) -> None:
    assert (unreachable_reason(ON_PARENT, BEHIND, states) is not None) is unreachable


def test_with_two_parents_both_must_be_down() -> None:
    one = {("ping", "sw-1"): CRITICAL, ("ping", "sw-2"): OK}
    both = {("ping", "sw-1"): CRITICAL, ("ping", "sw-2"): CRITICAL}
    assert unreachable_reason(ON_PARENT, TWO_UPLINKS, one) is None
    assert unreachable_reason(ON_PARENT, TWO_UPLINKS, both) == (
        "every parent down: ping on sw-1 is critical, ping on sw-2 is critical"
    )


def test_same_host_dependency_and_a_host_without_parents() -> None:
    same = Dependency("ping")
    assert dependency_keys(same, COMPUTE) == (("ping", "compute-01"),)
    assert dependency_keys(ON_PARENT, SWITCH) == ()
    assert unreachable_reason(ON_PARENT, SWITCH, {("ping", "sw-1"): CRITICAL}) is None
    states = {("ping", "compute-01"): Outcome.ERROR}
    assert (
        unreachable_reason(same, COMPUTE, states) == "dependency down: ping on compute-01 is error"
    )


def test_an_ok_result_stays_ok_behind_a_failed_parent() -> None:
    ok = Result(OK, "fine")
    assert mark_unreachable(ok, "parent down: x") is ok
    assert mark_unreachable(Result(CRITICAL, "x"), None).outcome is CRITICAL


# -- passive results, overdue pairs ---------------------------------------------------


def test_a_passive_audit_goes_unknown_after_its_freshness() -> None:
    clock, day = FakeClock(START), 86400
    last = START
    clock.advance(hours=23)
    fresh = passive_check("backup_done", "db-01", day, last, START, clock.now())
    assert fresh.result is None and fresh.next_run == START + timedelta(days=1)
    just_before = fresh.next_run - timedelta(microseconds=1)
    assert passive_check("backup_done", "db-01", day, last, START, just_before).result is None
    clock.set(fresh.next_run)
    stale = passive_check("backup_done", "db-01", day, last, START, clock.now())
    assert stale.result is not None and stale.result.outcome is UNKNOWN
    assert stale.result.summary == "no result for backup_done on db-01 in 1d"
    assert (stale.result.audit_name, stale.result.host) == ("backup_done", "db-01")
    assert stale.next_run == clock.now() + timedelta(days=1)


def test_a_passive_audit_with_no_result_yet_counts_from_its_creation() -> None:
    check = passive_check("backup_done", "db-01", 3600, None, START, START + timedelta(hours=1))
    assert check.result is not None and check.result.outcome is UNKNOWN


def test_a_pair_is_overdue_at_twice_its_interval() -> None:
    every = Every(600)
    assert overdue_since(every, START, START + timedelta(seconds=1200)) is None
    late = START + timedelta(seconds=1201)
    assert overdue_since(every, START, late) == START + timedelta(seconds=1200)
    hourly = parse_cron("0 * * * *")
    last = START + timedelta(minutes=5)  # ran at 00:05: due 01:00, 02:00
    assert overdue_since(hourly, last, START + timedelta(hours=2)) is None
    assert overdue_since(hourly, last, START + timedelta(hours=2, seconds=1)) is not None


# -- holds in order, events, storage --------------------------------------------------


def test_a_downtime_is_named_before_an_ack() -> None:
    ack = new_ack("ping", "api-01", CRITICAL, "on it", START)
    inside = WINDOW.start
    assert inside is not None
    hold = repair_hold("ping", API, inside, downtimes=[WINDOW], ack=ack)
    assert hold is not None and hold.startswith("in downtime 'dc-move'")
    assert repair_hold("ping", API, START, ack=ack) == "acknowledged: on it"
    assert repair_hold("ping", API, START) is None


def test_problem_event_marks() -> None:
    ack = new_ack("ping", "api-01", CRITICAL, "on it", START)
    assert problem_event_marks(CRITICAL, False) == {}
    assert problem_event_marks(CRITICAL, False, ack=ack, now=START) is None  # no repeats
    assert problem_event_marks(CRITICAL, True, ack=ack, now=START) == {"acknowledged": "on it"}
    assert problem_event_marks(CRITICAL, False, downtime=WINDOW) == {
        "downtime": "dc-move",
        "downtime_reason": "moving racks",
    }
    assert problem_event_marks(OK, True, ack=ack) == {}


def test_the_state_round_trips_through_json() -> None:
    settings = MonitorSettings(max_attempts=3, flapping=Flapping())
    t = feed(settings, [OK, CRITICAL, OK, CRITICAL])
    state = record(t[-1].after, CRITICAL, START, settings, Every(60), START).after
    assert state.regular_slot is not None and state.flap_history
    assert MonitorState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
