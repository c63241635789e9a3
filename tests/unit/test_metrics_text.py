"""/metrics' per-pair text (api.metrics.pair_families), read back by prometheus_client's parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from entropy.api.metrics import OUTCOME_VALUES, exposition
from entropy.backends.base import PairOutcome, PastDue
from entropy.clock import from_micros, to_micros
from entropy.service.engines import EngineList
from entropy.service.health import Health

NOW = datetime(2026, 12, 3, 13, 30, tzinfo=UTC)
ENDED = datetime(2026, 12, 3, 13, 8, 33, 684798, tzinfo=UTC)


def _scraped(
    pairs: list[PairOutcome], overdue: list[PastDue]
) -> dict[str, dict[tuple[str, str], float]]:
    seen = Health(NOW, pairs, overdue, {}, [], EngineList(NOW, 60.0, []))
    found: dict[str, dict[tuple[str, str], float]] = {}
    for family in text_string_to_metric_families(exposition(seen).decode()):
        for s in family.samples:
            if "audit" in s.labels:
                found.setdefault(s.name, {})[s.labels["audit"], s.labels["host"]] = s.value
    return found


@pytest.mark.parametrize("odd", [False, True], ids=["plain names", "names to escape"])
def test_each_pair_gives_its_outcome_exact_end_and_whether_overdue(odd: bool) -> None:
    host = 'we"b\\1\nx' if odd else "web-1"
    later = ENDED + timedelta(seconds=1, microseconds=1)
    pairs: list[PairOutcome] = [
        ("disk", host, "ok", to_micros(ENDED)),
        ("load", host, "critical", to_micros(later)),
        ("never_ran", host, None, None),  # no result yet: no sample
        ("newer", host, "from-a-newer-engine", None),  # an outcome this code doesn't know
    ]
    late = PastDue("disk", host, NOW - timedelta(hours=2), "ok", to_micros(ENDED), NOW)
    got = _scraped(pairs, [late])
    assert got["entropy_audit_outcome"] == {
        ("disk", host): OUTCOME_VALUES["ok"], ("load", host): OUTCOME_VALUES["critical"],
        ("newer", host): -1}  # fmt: skip
    # `{microseconds}e-6` reads back as the same double as the datetime's timestamp().
    assert got["entropy_audit_last_run_timestamp_seconds"] == {
        ("disk", host): ENDED.timestamp(), ("load", host): later.timestamp()}  # fmt: skip
    assert got["entropy_audit_overdue"] == {("disk", host): 1}


def test_microseconds_since_the_epoch_round_trip_exactly() -> None:
    for t in (ENDED, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), NOW):
        assert from_micros(to_micros(t)) == t
    assert to_micros(ENDED.replace(tzinfo=None)) == to_micros(ENDED)  # naive is UTC
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000
