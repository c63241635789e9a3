"""A new fleet's first runs spread over the whole interval, on the fake clock (issue 11).

On 156156c, 100,000 daily audits all landed in the first 900 s (`max_splay`),
and, fixed-rate, in the same 15 minutes of every day after.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from entropy.backends import fetch
from entropy.clock import FakeClock
from entropy.config import load_conf, splay_cap

HOSTS, AUDITS = 2_000, 10  # 20,000 pairs (test_timing checks 100,000 first runs)


def write_fleet(root: Path) -> Path:
    (root / "audits").mkdir(parents=True)
    (root / "hosts.yaml").write_text("".join(
        f"compute-{i:05d}.example.com: {{ip_address: 10.0.{i // 256}.{i % 256}, "
        f"host_type: compute}}\n" for i in range(HOSTS)
    ))  # fmt: skip
    (root / "scripts.yaml").write_text("".join(
        f"check_{j:02d}: {{kind: command, command: ['true']}}\n" for j in range(AUDITS)
    ))  # fmt: skip
    (root / "audits" / "daily.yaml").write_text(
        "compute:\n  audits:\n"
        + "".join(f"    check_{j:02d}: {{run_every: 1day}}\n" for j in range(AUDITS))
    )
    return root


def test_max_splay_is_unset_by_default() -> None:
    conf = load_conf()
    assert conf.max_splay is None
    assert splay_cap(conf) == float("inf")


def test_a_new_fleet_of_daily_audits_spreads_over_the_day(tmp_path: Path, clock: FakeClock) -> None:
    backend = fetch(load_conf(), f"dir:{write_fleet(tmp_path / 'fleet')}")
    now = clock.now()
    report = backend.sync(backend.load(), now)
    assert report.added == HOSTS * AUDITS
    rows = backend.audits()
    hours = [0] * 24
    for row in rows:
        offset = (row.next_run - now).total_seconds()
        assert 0 <= offset <= 86400 + 1
        hours[min(int(offset // 3600), 23)] += 1
    expected = len(rows) / 24
    assert all(0.9 * expected < count < 1.1 * expected for count in hours), hours
    # The first 15 minutes hold about 1/96 of them, not all.
    early = sum(1 for row in rows if row.next_run < now + timedelta(minutes=15))
    assert early < 2 * len(rows) / 96
    backend.close()
