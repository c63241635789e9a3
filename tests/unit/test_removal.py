"""The removal rule on its own: how many rows a sync may remove, what it remembers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from entropy.model import DisabledBy
from entropy.removal import (
    KeptDisable,
    RemovalPolicy,
    RemovalRefused,
    allowed_removals,
    check_removal,
    plan_disables,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stored", "max_removal", "allowed"),
    [
        (0, 0.1, 0),
        (1, 0.1, 0),  # the only row: removing it empties the fleet
        (2, 0.1, 1),
        (4, 0.1, 1),  # a tiny fleet may still lose one audit
        (10, 0.1, 1),
        (100, 0.1, 10),
        (105, 0.1, 10),  # rounded down
        (1000, 0.25, 250),
        (4, 0.99, 3),  # never every row below 1
        (4, 1.0, 4),  # 1: no limit
        (100, 0.0, 0),  # 0: every removal needs force
    ],
)
def test_allowed_removals(stored: int, max_removal: float, allowed: int) -> None:
    assert allowed_removals(stored, max_removal) == allowed


def test_check_removal_refuses_past_the_limit_unless_forced_or_not_removing() -> None:
    gone = [("a", f"h{i}") for i in range(11)]
    check_removal(100, gone[:10], RemovalPolicy())
    with pytest.raises(RemovalRefused) as refused:
        check_removal(100, gone, RemovalPolicy())
    assert (len(refused.value.gone), refused.value.stored, refused.value.allowed) == (11, 100, 10)
    assert refused.value.to_dict()["by_audit"] == {"a": 11}
    check_removal(100, gone, RemovalPolicy(force=True))
    check_removal(100, gone, RemovalPolicy(remove=False))


def test_a_refusal_names_the_largest_audits_and_counts_the_rest() -> None:
    gone = [(f"audit_{n}", f"h{i}") for n in range(7) for i in range(n + 1)]
    text = str(RemovalRefused(gone, 30, 3, 0.1))
    assert text.splitlines()[1] == "  audit_6 on 7 hosts (h0, h1, h2 and 4 more)"
    assert "  and 3 rows of 2 more audits" in text  # audit_1 (2 rows) and audit_0 (1)
    assert "audit_0 on" not in text


def row(audit: str, host: str, by: DisabledBy | None, reason: str | None = None) -> object:
    return SimpleNamespace(audit_name=audit, host=host, disabled_by=by, disabled_reason=reason)


def test_plan_disables_remembers_operator_disables_and_restores_live_ones() -> None:
    policy = RemovalPolicy(disable_retention=3600, actor="me")
    gone = [row("a", "h1", DisabledBy.OPERATOR, "CHG-1"), row("a", "h2", DisabledBy.DEFINITIONS),
            row("a", "h3", None)]  # fmt: skip
    kept = [KeptDisable("b", "h1", "old", NOW - timedelta(seconds=3599)),
            KeptDisable("b", "h2", "too old", NOW - timedelta(seconds=3601)),
            KeptDisable("c", "h1", "not back", NOW)]  # fmt: skip
    plan = plan_disables(gone, kept, [("b", "h1"), ("b", "h2")], NOW, policy)
    assert plan.remember == [KeptDisable("a", "h1", "CHG-1", NOW, "me")]
    assert list(plan.restore) == [("b", "h1")]
    assert plan.expired_before == NOW - timedelta(seconds=3600)
