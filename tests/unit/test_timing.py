"""Durations, fixed-rate slots, coalescing, splay and cron (entropy.timing).

Every datetime here is a fixed, aware UTC value: nothing sleeps or reads the clock.
"""

from __future__ import annotations

import itertools
import zlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from entropy.errors import DurationError, EntropyError
from entropy.timing import (
    Cron,
    Every,
    format_duration,
    parse_cron,
    parse_duration,
    splay_fraction,
)

T0 = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 604800


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# --- parse_duration ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # Exactly as the original design notes write them.
        ("1day", 86400),
        ("30mins", 1800),
        ("2days", 172800),
        ("1hour", 3600),
    ],
)
def test_parse_duration_design_notes_spellings(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("2h", 7200),
        ("1d", DAY),
        ("1w", WEEK),
    ],
)
def test_parse_duration_short_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("unit", "size"),
    [
        *((u, 1) for u in ("s", "sec", "secs", "second", "seconds")),
        *((u, MINUTE) for u in ("m", "min", "mins", "minute", "minutes")),
        *((u, HOUR) for u in ("h", "hour", "hours")),
        *((u, DAY) for u in ("d", "day", "days")),
        *((u, WEEK) for u in ("w", "week", "weeks")),
    ],
)
def test_parse_duration_every_unit_spelling(unit: str, size: int) -> None:
    assert parse_duration(f"1{unit}") == size
    assert parse_duration(f"3{unit}") == 3 * size
    # A space between the number and the unit is allowed too.
    assert parse_duration(f"3 {unit}") == 3 * size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30m", HOUR + 30 * MINUTE),
        ("1d 2h", DAY + 2 * HOUR),
        ("1d2h3m4s", DAY + 2 * HOUR + 3 * MINUTE + 4),
        ("1w 1d", WEEK + DAY),
        ("1hour 30mins", HOUR + 30 * MINUTE),
        ("  2h  ", 2 * HOUR),
    ],
)
def test_parse_duration_combinations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1DAY", "30Mins", "2Days", "1HOUR", "1H30M", "90S", "1D 2H"])
def test_parse_duration_is_case_insensitive(text: str) -> None:
    assert parse_duration(text) == parse_duration(text.lower())


def test_parse_duration_returns_an_int() -> None:
    assert type(parse_duration("30mins")) is int


@pytest.mark.parametrize(
    "value",
    ["", "60", "5 parsecs", "0s", "-5m", "1fortnight", "1.5h", "h", "1h 30", "0h0m", 60],
)
def test_parse_duration_refuses_bad_text_and_quotes_it(value: object) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [1.5, True, False, None, [], {"h": 1}])
def test_parse_duration_refuses_non_text_and_quotes_it(value: object) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert repr(value) in str(info.value)


def test_parse_duration_bare_number_says_the_unit_is_missing() -> None:
    with pytest.raises(DurationError, match="no unit"):
        parse_duration("60")


def test_parse_duration_zero_says_it_must_be_longer_than_zero() -> None:
    with pytest.raises(DurationError, match="longer than zero"):
        parse_duration("0s")


def test_duration_error_is_an_entropy_error_and_a_value_error() -> None:
    with pytest.raises(DurationError) as info:
        parse_duration("5 parsecs")
    assert isinstance(info.value, EntropyError)
    assert isinstance(info.value, ValueError)


# --- format_duration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (90, "1m30s"),
        (1800, "30m"),
        (3600, "1h"),
        (5400, "1h30m"),
        (86400, "1d"),
        (172800, "2d"),
        (604800, "1w"),
        (WEEK + DAY + HOUR + MINUTE + 1, "1w1d1h1m1s"),
    ],
)
def test_format_duration_shortest_exact_spelling(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "seconds",
    [1, 59, 60, 61, 90, 1800, 3599, 3600, 3601, 5400, 86399, 86400, 90061, 172800, 604800, 694861],
)
def test_format_duration_round_trips_through_parse(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "normal"),
    [("1day", "1d"), ("30mins", "30m"), ("2days", "2d"), ("1hour", "1h"), ("90s", "1m30s")],
)
def test_parse_then_format_normalises(text: str, normal: str) -> None:
    assert format_duration(parse_duration(text)) == normal


# --- Every: fixed-rate slots -------------------------------------------------


def test_every_next_slot_is_one_interval_after_the_slot() -> None:
    every = Every(1800)
    assert every.next_slot(T0, T0) == T0 + timedelta(minutes=30)


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(minutes=29)])
def test_every_is_fixed_rate_not_finish_time_plus_interval(late: timedelta) -> None:
    """A run that finishes late does not push the grid: next = slot + interval."""
    every = Every(1800)
    assert every.next_slot(T0, T0 + late) == T0 + timedelta(minutes=30)


def test_every_slots_stay_exactly_one_interval_apart() -> None:
    every = Every(3600)
    slot, slots = T0, [T0]
    for _ in range(48):
        # Each run finishes a little after its slot, as real runs do.
        slot = every.next_slot(slot, slot + timedelta(seconds=7))
        slots.append(slot)
    gaps = {b - a for a, b in itertools.pairwise(slots)}
    assert gaps == {timedelta(hours=1)}
    assert slots[-1] == T0 + timedelta(hours=48)


def test_every_next_slot_when_now_is_before_the_slot() -> None:
    every = Every(600)
    assert every.next_slot(T0, T0 - timedelta(minutes=3)) == T0 + timedelta(minutes=10)


def test_every_coalesces_missed_slots_into_one_run() -> None:
    """After 10 missed slots the next one is the first grid point after now: no burst."""
    every = Every(1800)
    now = T0 + timedelta(minutes=30 * 10, seconds=42)
    nxt = every.next_slot(T0, now)
    assert nxt == T0 + timedelta(minutes=30 * 11)
    assert nxt > now
    assert nxt - timedelta(seconds=1800) <= now  # the first grid point after now
    # Still on the original grid.
    assert (nxt - T0).total_seconds() % 1800 == 0
    # And from there it goes on at the normal rate.
    assert every.next_slot(nxt, nxt + timedelta(seconds=3)) == nxt + timedelta(minutes=30)


def test_every_coalescing_when_now_is_exactly_on_a_grid_point() -> None:
    """A slot equal to now is the one being run; the next is strictly later."""
    every = Every(1800)
    now = T0 + timedelta(minutes=30 * 10)
    assert every.next_slot(T0, now) == T0 + timedelta(minutes=30 * 11)


@pytest.mark.parametrize("missed", [1, 2, 10, 100, 1000])
def test_every_coalescing_never_returns_the_past(missed: int) -> None:
    every = Every(90)
    now = T0 + timedelta(seconds=90 * missed + 1)
    nxt = every.next_slot(T0, now)
    assert now < nxt <= now + timedelta(seconds=90)
    assert (nxt - T0).total_seconds() % 90 == 0


def test_every_following_and_latest_next_run() -> None:
    every = Every(7200)
    assert every.following(T0) == T0 + timedelta(hours=2)
    assert every.latest_next_run(T0) == T0 + timedelta(hours=2)


def test_every_keeps_utc() -> None:
    every = Every(60)
    assert_utc(every.next_slot(T0, T0 + timedelta(hours=5)))
    assert_utc(every.first_run(T0, "a", "h", 900))


def test_every_describe() -> None:
    assert Every(1800).describe() == "every 30m"
    assert Every(5400).describe() == "every 1h30m"


# --- Every.first_run: splay --------------------------------------------------


def test_first_run_is_now_plus_the_pair_splay() -> None:
    every = Every(3600)
    first = every.first_run(T0, "check_a", "compute-01", 900)
    expected = T0 + timedelta(seconds=900 * splay_fraction("check_a", "compute-01"))
    assert abs(first - expected) < timedelta(milliseconds=1)
    assert first >= T0


def test_first_run_with_a_fractional_now_is_never_before_now() -> None:
    every = Every(3600)
    now = T0 + timedelta(microseconds=123456)
    for i in range(50):
        first = every.first_run(now, "check", f"host-{i}", 900)
        assert now <= first < now + timedelta(seconds=900 + 1)
        assert first == every.first_run(now, "check", f"host-{i}", 900)


def test_splay_is_stable_across_calls_and_restarts() -> None:
    every = Every(3600)
    a = every.first_run(T0, "check_a", "compute-01", 900)
    b = Every(3600).first_run(T0, "check_a", "compute-01", 900)
    assert a == b
    # A later restart shifts the first run with now, but by the same splay.
    later = T0 + timedelta(days=3, seconds=17)
    assert every.first_run(later, "check_a", "compute-01", 900) - later == a - T0
    assert splay_fraction("check_a", "compute-01") == splay_fraction("check_a", "compute-01")


def test_splay_fraction_is_a_known_stable_value() -> None:
    """crc32 of 'audit\\0host' / 2**32: every engine, any Python, agrees."""
    expected = zlib.crc32(b"check_a\x00compute-01") / 2**32
    assert splay_fraction("check_a", "compute-01") == expected


def test_splay_differs_across_pairs() -> None:
    pairs = [(f"audit_{a}", f"host-{h:02d}.example.com") for a in range(5) for h in range(40)]
    splays = {Every(3600).first_run(T0, a, h, 3600) for a, h in pairs}
    assert len(splays) > 0.95 * len(pairs)
    # Swapping audit and host is a different pair.
    assert splay_fraction("a", "b") != splay_fraction("b", "a")
    # The separator matters: ('ab', 'c') is not ('a', 'bc').
    assert splay_fraction("ab", "c") != splay_fraction("a", "bc")


def test_splay_spreads_over_the_span() -> None:
    fractions = [splay_fraction("check", f"host-{i}") for i in range(400)]
    assert min(fractions) < 0.1
    assert max(fractions) > 0.9


@pytest.mark.parametrize(
    ("interval", "max_splay", "bound"),
    [(3600, 900, 900), (60, 900, 60), (1800, 1800, 1800), (86400, 3600, 3600)],
)
def test_splay_is_bounded_by_interval_and_max_splay(
    interval: int, max_splay: float, bound: int
) -> None:
    every = Every(interval)
    for i in range(300):
        splay = (every.first_run(T0, "check", f"host-{i}", max_splay) - T0).total_seconds()
        assert 0 <= splay < bound


def test_zero_max_splay_runs_new_pairs_now() -> None:
    assert Every(3600).first_run(T0, "check", "host", 0) == T0


@pytest.mark.parametrize(
    ("audit", "host"),
    [("a", "b"), ("", ""), ("check_nova", "compute-01.example.com"), ("ü", "ホスト")],
)
def test_splay_fraction_in_unit_interval(audit: str, host: str) -> None:
    assert 0.0 <= splay_fraction(audit, host) < 1.0


def test_splay_fraction_in_unit_interval_for_many_pairs() -> None:
    for i in range(2000):
        assert 0.0 <= splay_fraction(f"a{i}", f"h{i * 7}") < 1.0


# --- Cron ---------------------------------------------------------------------


def test_parse_cron_builds_a_cron_in_utc_by_default() -> None:
    cron = parse_cron("*/5 * * * *")
    assert cron == Cron("*/5 * * * *", "UTC")


def test_parse_cron_keeps_the_timezone() -> None:
    assert parse_cron("0 9 * * *", "Europe/Paris") == Cron("0 9 * * *", "Europe/Paris")


@pytest.mark.parametrize(
    "expr",
    ["* * * *", "* * * * * *", "*/5", "", "   ", None, 5, ["*", "*", "*", "*", "*"]],
)
def test_parse_cron_needs_five_fields(expr: object) -> None:
    with pytest.raises(DurationError, match="five fields") as info:
        parse_cron(expr)
    assert repr(expr) in str(info.value)


@pytest.mark.parametrize(
    "expr", ["61 * * * *", "* 25 * * *", "a b c d e", "* * 32 * *", "* * * 13 *", "*/0 * * * *"]
)
def test_parse_cron_refuses_invalid_expressions(expr: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_cron(expr)
    assert repr(expr) in str(info.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Not A Zone", "", "../../etc/passwd"])
def test_parse_cron_refuses_unknown_timezone(zone: str) -> None:
    with pytest.raises(DurationError, match="timezone") as info:
        parse_cron("*/5 * * * *", zone)
    assert repr(zone) in str(info.value)


def test_cron_following_is_the_next_cron_time_in_utc() -> None:
    cron = parse_cron("*/5 * * * *")
    nxt = cron.following(utc(2024, 1, 1, 12, 2))
    assert nxt == utc(2024, 1, 1, 12, 5)
    assert_utc(nxt)


def test_cron_following_is_strictly_after_a_matching_slot() -> None:
    cron = parse_cron("*/5 * * * *")
    assert cron.following(utc(2024, 1, 1, 12, 5)) == utc(2024, 1, 1, 12, 10)


def test_cron_next_slot_after_a_run() -> None:
    cron = parse_cron("0 * * * *")
    slot = utc(2024, 1, 1, 12, 0)
    assert cron.next_slot(slot, slot + timedelta(seconds=30)) == utc(2024, 1, 1, 13, 0)
    # now before the slot (a clock a little behind): still the slot after it.
    assert cron.next_slot(slot, slot - timedelta(seconds=30)) == utc(2024, 1, 1, 13, 0)


def test_cron_next_slot_coalesces_missed_runs() -> None:
    """After many missed cron times: one run, then the first cron time after now."""
    cron = parse_cron("*/5 * * * *")
    slot = utc(2024, 1, 1, 12, 0)
    now = utc(2024, 1, 1, 15, 2, 30)  # 36 slots missed
    assert cron.next_slot(slot, now) == utc(2024, 1, 1, 15, 5)


def test_cron_next_slot_coalesces_over_days() -> None:
    cron = parse_cron("30 2 * * *")
    slot = utc(2024, 1, 1, 2, 30)
    now = utc(2024, 1, 20, 9, 0)
    assert cron.next_slot(slot, now) == utc(2024, 1, 21, 2, 30)


def test_cron_first_and_latest_next_run_have_no_splay() -> None:
    cron = parse_cron("0 * * * *")
    now = utc(2024, 1, 1, 12, 17)
    assert cron.first_run(now, "check_a", "compute-01", 900) == utc(2024, 1, 1, 13, 0)
    assert cron.first_run(now, "check_b", "compute-02", 900) == utc(2024, 1, 1, 13, 0)
    assert cron.latest_next_run(now) == utc(2024, 1, 1, 13, 0)


def test_cron_in_paris_fires_at_0800_utc_in_winter() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Paris")
    nxt = cron.following(utc(2024, 1, 15, 0, 0))
    assert nxt == utc(2024, 1, 15, 8, 0)
    assert_utc(nxt)
    assert cron.following(nxt) == utc(2024, 1, 16, 8, 0)


def test_cron_in_paris_fires_at_0700_utc_in_summer() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Paris")
    nxt = cron.following(utc(2024, 7, 15, 0, 0))
    assert nxt == utc(2024, 7, 15, 7, 0)
    assert_utc(nxt)
    assert cron.following(nxt) == utc(2024, 7, 16, 7, 0)


def test_cron_in_paris_across_the_spring_and_autumn_changes() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Paris")
    # Clocks go forward on 2024-03-31 and back on 2024-10-27.
    assert cron.following(utc(2024, 3, 30, 8, 0)) == utc(2024, 3, 31, 7, 0)
    assert cron.following(utc(2024, 10, 26, 7, 0)) == utc(2024, 10, 27, 8, 0)


def test_cron_timezone_does_not_depend_on_the_input_offset() -> None:
    """The same instant given in another offset gives the same next run."""
    cron = parse_cron("0 9 * * *", "Europe/Paris")
    instant = utc(2024, 1, 15, 0, 0)
    tokyo = instant.astimezone(timezone(timedelta(hours=9)))
    assert cron.following(tokyo) == cron.following(instant) == utc(2024, 1, 15, 8, 0)


def test_cron_in_a_timezone_coalesces_to_the_next_local_time() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Paris")
    slot = utc(2024, 1, 1, 8, 0)
    now = utc(2024, 1, 10, 12, 0)
    assert cron.next_slot(slot, now) == utc(2024, 1, 11, 8, 0)


def test_cron_describe() -> None:
    assert parse_cron("*/5 * * * *").describe() == "cron '*/5 * * * *' (UTC)"
    assert "Europe/Paris" in parse_cron("0 9 * * *", "Europe/Paris").describe()


def test_timings_compare_by_value() -> None:
    """Two schedules agree when their timings are equal values (definitions rely on it)."""
    assert Every(parse_duration("30mins")) == Every(parse_duration("1800s"))
    assert Every(60) != Every(61)
    assert parse_cron("0 9 * * *") != parse_cron("0 9 * * *", "Europe/Paris")
    assert hash(Every(60)) == hash(Every(60))


# --- splay over the whole interval (issue 11, item 11) ---------------------------


def test_first_runs_spread_over_the_whole_interval_by_default() -> None:
    """100,000 daily audits: about 1/24 of them in each hour of the day, none at once."""
    every = Every(DAY)
    hours = [0] * 24
    for i in range(100_000):
        first = every.first_run(T0, f"audit_{i % 10:02d}", f"compute-{i // 10:05d}.example.com")
        assert T0 <= first < T0 + timedelta(days=1)
        hours[int((first - T0).total_seconds() // HOUR)] += 1
    expected = 100_000 / 24
    assert all(0.9 * expected < count < 1.1 * expected for count in hours), hours


def test_max_splay_still_caps_the_spread_when_set() -> None:
    firsts = [Every(DAY).first_run(T0, "check", f"h{i}", 900) for i in range(1000)]
    assert max(firsts) < T0 + timedelta(seconds=900)
