"""`entropy engine run --metrics-port`: a real engine process serves its own figures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import _free_port
from fleets import write_fleet
from processes import ENTROPY, entropy, start_engine, wait_for

pytestmark = pytest.mark.slow

HOSTS = {f"web-{n}.test": {"ip_address": "127.0.0.1", "host_type": "web"} for n in (1, 2, 3)}
SCRIPTS = {
    "fine": {"kind": "command", "command": ["sh", "-c", "echo OK - fine"]},
    "bad": {"kind": "command", "command": ["sh", "-c", "echo CRITICAL - bad; exit 2"]},
}
SCHEDULES = {"web.yaml": {"web": {"audits": {"fine": {"run_every": "1h"},
                                             "bad": {"run_every": "1h"}}}}}  # fmt: skip


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def test_the_engine_serves_its_own_metrics(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", HOSTS, SCRIPTS, SCHEDULES)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = {**os.environ, "OS_DEFAULT__MAX_SPLAY": "1"}  # every pair runs within a second
    engine = start_engine(fleet, "--metrics-port", str(port), env=env)
    try:
        got = wait_for(lambda: _counted(url, 6), 60, "six results counted")
        assert got["entropy_engine_audits_total"] == {
            (("outcome", "critical"),): 3.0, (("outcome", "ok"),): 3.0}  # fmt: skip
        history = entropy(fleet, "results", "--json", env=env)
        assert len(history) == 6  # every result counted was stored
        assert got["entropy_engine_lateness_seconds_count"] == {(): 6.0}
        assert got["entropy_engine_claim_seconds_count"][()] >= 1
        assert got["entropy_engine_record_seconds_count"][()] >= 1
        assert got["entropy_engine_record_seconds_sum"][()] > 0
        depths = got["entropy_engine_queue_depth"]
        assert set(depths) == {(("queue", q),) for q in ("due", "in_flight", "results")}
        assert all(v == 0 for v in depths.values())  # everything ran and was recorded
    finally:
        engine.terminate()
        engine.wait(timeout=30)


def _counted(url: str, results: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The scrape once the engine counted `results` (empty before, or while not listening)."""
    try:
        got = _scrape(url)
    except httpx.TransportError:
        return {}
    return got if sum(got.get("entropy_engine_audits_total", {}).values()) == results else {}


def test_a_bad_metrics_port_is_a_usage_error(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", HOSTS, SCRIPTS, SCHEDULES)
    done = subprocess.run(
        [*ENTROPY, "--backend", f"dir:{fleet}", "engine", "run", "--metrics-port", "http"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--metrics-port 'http' is not HOST:PORT, e.g. 9100 or 0.0.0.0:9100" in done.stderr
