"""A real `entropy engine run` process on a temporary fleet with 2 s intervals.

These start real processes and take seconds of wall time (they are marked
slow); they poll for what they wait for rather than sleeping fixed times.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleets import write_fleet
from processes import ENTROPY, entropy, start_engine, wait_for

pytestmark = pytest.mark.slow

HOSTS = {
    "web-1.test": {"ip_address": "127.0.0.1", "host_type": "web"},
    "web-2.test": {"ip_address": "127.0.0.1", "host_type": "web"},
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The test's environment for child processes, with a module of python audits."""
    (tmp_path / "audits_mod.py").write_text(
        "import time\n"
        "def boom(host, params):\n    raise RuntimeError('disk on fire on ' + host.name)\n"
        "def stuck(host, params):\n    time.sleep(600)\n"
        "def fine(host, params):\n    return None\n"
    )
    path = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p),
            "OS_DEFAULT__SHUTDOWN_GRACE": "1"}  # fmt: skip


def test_each_pair_runs_on_its_two_second_slots(tmp_path: Path, env: dict[str, str]) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS,
        scripts={"ok": {"kind": "command", "command": ["true"]},
                 "py": {"kind": "python", "function": "audits_mod:fine"}},
        schedules={"a.yaml": {"web": {"audits": {"ok": {"run_every": "2s"},
                                                 "py": {"run_every": "2s"}}}}},
    )  # fmt: skip
    started = datetime.now().astimezone()
    engine = start_engine(fleet, "--for", "9s", env=env)
    out, err = engine.communicate(timeout=60)
    assert engine.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    slots: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for r in results:
        assert r["outcome"] == "ok", r
        slots[r["audit_name"], r["host"]].append(datetime.fromisoformat(r["slot"]))
    assert len(slots) == 4
    for key, times in slots.items():
        # 9 s at one run per 2 s: 4.5 expected, so 4 +- 1 (the first run is splayed).
        assert 3 <= len(times) <= 6, (key, times)
        assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(times))
        assert times[0] >= started - timedelta(seconds=1)
    history = entropy(fleet, "results", "--limit", "1000", "--json", env=env)
    assert len(history) == len(results)
    assert {"host", "audit_name", "outcome", "summary", "metrics", "slot", "started_at",
            "finished_at", "engine_id"} <= set(history[0])  # fmt: skip
    rows = entropy(fleet, "status", "--json", env=env)
    assert all(r["status"] == "processed" and r["result"]["outcome"] == "ok" for r in rows)


def test_sigterm_during_a_long_audit_leaves_nothing_processing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS,
        scripts={"slow": {"kind": "command", "command": ["sleep", "30"], "timeout": "60s"}},
        schedules={"a.yaml": {"web": {"audits": {"slow": {"run_every": "2s"}}}}},
    )  # fmt: skip
    engine = start_engine(fleet, env=env)
    try:

        def processing() -> bool:
            assert engine.poll() is None, engine.communicate()[1]
            return any(r["status"] == "processing" for r in entropy(
                fleet, "status", "--json", env=env))  # fmt: skip

        wait_for(processing, 20, "an audit to be processing")
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=20)
    finally:
        engine.kill()
    assert engine.returncode == 0
    rows = entropy(fleet, "status", "--json", env=env)
    assert [r["status"] for r in rows] and all(r["status"] != "processing" for r in rows)
    assert any(r["status"] == "new" for r in rows)  # the interrupted ones go back


def test_a_hung_script_and_its_child_are_killed_at_the_timeout(
    tmp_path: Path, env: dict[str, str]
) -> None:
    pidfile = tmp_path / "child.pid"
    fleet = write_fleet("dir", tmp_path / "fleet", hosts={"web-1.test": HOSTS["web-1.test"]},
        scripts={"hang": {"kind": "command", "timeout": "1s", "command": [
            "sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]}},
        schedules={"a.yaml": {"web": {"audits": {"hang": {"run_every": "2s"}}}}},
    )  # fmt: skip
    engine = start_engine(fleet, "--for", "5s", env=env)
    out, err = engine.communicate(timeout=60)
    assert engine.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert results and all(r["outcome"] == "timeout" for r in results)
    assert all(0.9 <= _duration(r) < 3 for r in results)
    child = int(pidfile.read_text())
    wait_for(lambda: not _alive(child), 5, f"child {child} to be gone")


def test_a_raising_python_audit_is_an_error_and_the_engine_goes_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS,
        scripts={"boom": {"kind": "python", "function": "audits_mod:boom"},
                 "ok": {"kind": "command", "command": ["true"]}},
        schedules={"a.yaml": {"web": {"audits": {"boom": {"run_every": "2s"},
                                                 "ok": {"run_every": "2s"}}}}},
    )  # fmt: skip
    engine = start_engine(fleet, "--for", "7s", env=env)
    out, err = engine.communicate(timeout=60)
    assert engine.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    booms = [r for r in results if r["audit_name"] == "boom"]
    assert len(booms) >= 4 and all(r["outcome"] == "error" for r in booms)
    assert "RuntimeError: disk on fire on web-" in booms[0]["summary"]
    oks = [r for r in results if r["audit_name"] == "ok"]
    assert len(oks) >= 4 and all(r["outcome"] == "ok" for r in oks)


def _duration(result: dict[str, Any]) -> float:
    started = datetime.fromisoformat(result["started_at"])
    return (datetime.fromisoformat(result["finished_at"]) - started).total_seconds()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; only its parent could reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_stuck_python_audit_is_recorded_as_timeout_and_the_rest_go_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts={"web-1.test": HOSTS["web-1.test"]},
        scripts={"stuck": {"kind": "python", "function": "audits_mod:stuck", "timeout": "1s"},
                 "ok": {"kind": "command", "command": ["true"]}},
        schedules={"a.yaml": {"web": {"audits": {"stuck": {"run_every": "1day"},
                                                 "ok": {"run_every": "2s"}}}}},
    )  # fmt: skip
    engine = start_engine(fleet, "--for", "7s", env={**env, "OS_DEFAULT__MAX_SPLAY": "1"})
    out, err = engine.communicate(timeout=60)
    assert engine.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    (stuck,) = [r for r in results if r["audit_name"] == "stuck"]
    assert stuck["outcome"] == "timeout"
    assert 2.5 <= _duration(stuck) < 5  # recorded soon after the timeout, not never
    assert len([r for r in results if r["audit_name"] == "ok"]) >= 2
    rows = entropy(fleet, "status", "--json", env=env)
    assert all(r["status"] != "processing" for r in rows)


@pytest.mark.multiprocess  # two real engines on one store, then `engine stop`: the serial phase's
def test_a_second_engine_on_the_same_sqlite_file_is_refused_and_stop_works(
    tmp_path: Path, env: dict[str, str]
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS,
        scripts={"ok": {"kind": "command", "command": ["true"]}},
        schedules={"a.yaml": {"web": {"audits": {"ok": {"run_every": "2s"}}}}},
    )  # fmt: skip
    env = {**env, "OS_DEFAULT__HEARTBEAT_INTERVAL": "0.5", "OS_DEFAULT__CLAIM_LEASE": "3"}
    first = start_engine(fleet, env={**env, "OS_DEFAULT__ENGINE_ID": "first"})
    try:
        wait_for(lambda: [e for e in entropy(fleet, "engines", "--json", env=env)
                          if e["state"] == "running"], 20, "the first engine")  # fmt: skip
        second = subprocess.run(
            [*ENTROPY, "--backend", f"dir:{fleet}", "engine", "run", "--for", "5s"],
            capture_output=True, text=True, env={**env, "OS_DEFAULT__ENGINE_ID": "second"},
            timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        assert "is in use by engine first (pid" in second.stderr
        assert "a SQLite state store serves one engine at a time" in second.stderr
        stop = entropy(fleet, "engine", "stop", "--all", "--wait", "20s", "--json", env=env)
        assert stop == {"asked": ["first"], "still_running": []}
        first.wait(timeout=20)
    finally:
        first.kill()
    assert first.returncode == 0
    listed = {e["engine_id"]: e["state"] for e in entropy(fleet, "engines", "--json", env=env)}
    assert listed == {"first": "stopped"}  # the refused one never registered
