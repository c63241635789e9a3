"""Events from real engines to the real brokers, and a repair loop in a real engine.

RabbitMQ is stopped (`rabbitmqctl stop_app`) and started again in the middle
of one test: the engine must not notice beyond a warning, and events must
flow again afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import kombu
import pytest

from entropy.events import exchange
from fleets import write_fleet
from processes import entropy, start_engine, wait_for

pytestmark = pytest.mark.slow

HOSTS = {
    "web-1.test": {"ip_address": "127.0.0.1", "host_type": "web"},
    "web-2.test": {"ip_address": "127.0.0.1", "host_type": "web"},
}


class Listener:
    """A queue bound to the `entropy` exchange, read in the test's own thread."""

    def __init__(self, url: str, pattern: str = "#") -> None:
        self.url, self.pattern = url, pattern
        self.connection = kombu.Connection(url)
        name = f"test-{uuid.uuid4().hex[:8]}"
        self.queue = self.connection.SimpleQueue(
            kombu.Queue(name, exchange(), routing_key=pattern, auto_delete=True)
        )

    def take(self, count: int, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        got: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"got {len(got)} of {count} events in {timeout}s"
            try:
                message = self.queue.get(timeout=min(left, 1.0))
            except self.queue.Empty:
                continue
            message.ack()
            got.append((message.delivery_info["routing_key"], message.payload))
        return got

    def close(self) -> None:
        try:
            self.queue.close()
        finally:
            self.connection.release()


def fleet_with_checks(root: Path) -> Path:
    bad = ["sh", "-c", "echo CRITICAL - bad; exit 2"]
    return write_fleet("dir", root, hosts=HOSTS,
        scripts={"ok": {"kind": "command", "command": ["true"]},
                 "bad": {"kind": "command", "command": bad}},
        schedules={"a.yaml": {"web": {"audits": {"ok": {"run_every": "1s"},
                                                 "bad": {"run_every": "1s"}}}}},
    )  # fmt: skip


def engine_env(url: str) -> dict[str, str]:
    return {**os.environ, "OS_NOTIFICATIONS__TRANSPORT_URL": url,
            "OS_DEFAULT__SHUTDOWN_GRACE": "1"}  # fmt: skip


def stop(engine: subprocess.Popen) -> tuple[str, str]:
    engine.send_signal(signal.SIGTERM)
    out, err = engine.communicate(timeout=30)
    assert engine.returncode == 0, err
    return out, err


def test_redis_carries_a_real_engines_events(tmp_path: Path, redis_url: str) -> None:
    fleet = fleet_with_checks(tmp_path / "fleet")
    listener = Listener(redis_url, "audit.bad.#")
    engine = start_engine(fleet, env=engine_env(redis_url))
    try:
        events = listener.take(3, timeout=20)
    finally:
        stop(engine)
        listener.close()
    assert {key for key, _ in events} == {"audit.bad.critical"}
    assert {body["host"] for _, body in events} <= set(HOSTS)
    assert all(body["summary"] == "CRITICAL - bad" and body["slot"] for _, body in events)


def _rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([tool, *args], check=True, capture_output=True, timeout=120)


@pytest.mark.disruptive
def test_rabbitmq_going_away_does_not_stop_the_engine_and_events_resume(
    tmp_path: Path, rabbitmq_url: str
) -> None:
    if not (shutil.which("rabbitmqctl") or os.path.exists("/usr/sbin/rabbitmqctl")):
        pytest.skip("rabbitmqctl is not here to stop and start RabbitMQ")
    fleet = fleet_with_checks(tmp_path / "fleet")
    listener = Listener(rabbitmq_url, "audit.#")
    engine = start_engine(fleet, env=engine_env(rabbitmq_url))
    try:
        first = listener.take(4, timeout=20)
        assert {key for key, _ in first} >= {"audit.ok.ok", "audit.bad.critical"}
        listener.close()
        _rabbitmqctl("stop_app")
        try:
            recorded = len(entropy(fleet, "results", "--json", "--limit", "10000"))
            # The engine goes on running and recording while the broker is gone.
            wait_for(lambda: len(entropy(fleet, "results", "--json", "--limit", "10000"))
                     >= recorded + 8, 20, "results recorded with the broker down")  # fmt: skip
            assert engine.poll() is None
        finally:
            _rabbitmqctl("start_app")
        listener = wait_for(lambda: _try_listen(rabbitmq_url), 30, "RabbitMQ back")
        again = listener.take(4, timeout=30)
        assert {key for key, _ in again} >= {"audit.ok.ok", "audit.bad.critical"}
        assert engine.poll() is None
    finally:
        listener.close()
        if engine.poll() is None:
            _, err = stop(engine)
    assert "cannot publish events to amqp://guest:**@127.0.0.1:5672//" in err
    assert "publishing events again after" in err


def _try_listen(url: str) -> Listener | None:
    try:
        return Listener(url, "audit.#")
    except Exception:  # not accepting connections yet
        return None


def test_a_real_engine_repairs_and_verifies(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    check = f'test -f {markers}/"$ENTROPY_HOST" && echo OK || {{ echo "CRITICAL - gone"; exit 2; }}'
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS,
        scripts={"marker": {"kind": "command", "command": ["sh", "-c", check]},
                 "remake": {"kind": "command", "command": ["touch", f"{markers}/{{host}}"]}},
        schedules={"a.yaml": {"web": {"audits": {"marker": {"run_every": "1s"}}}}},
        repairs={"remake": {"when": {"audit": "marker", "consecutive": 2}, "run": "remake",
                            "verify": True, "cooldown": "1h"}},
    )  # fmt: skip
    engine = start_engine(fleet, env={**os.environ, "OS_DEFAULT__SHUTDOWN_GRACE": "1"})
    try:
        runs = wait_for(lambda: len(r := entropy(fleet, "results", "--kind", "repair", "--json"))
                        == len(HOSTS) and r, 20, "a repair on each host")  # fmt: skip
        out, _ = stop(engine)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert {(r["host"], r["outcome"], r["verify"], r["attempt"]) for r in runs} == {
        (host, "ok", "fixed", 1) for host in HOSTS
    }
    assert all(r["trigger_result"]["outcome"] == "critical" for r in runs)
    assert sorted(p.name for p in markers.iterdir()) == sorted(HOSTS)
    printed = [line for line in out.splitlines() if '"kind": "repair"' in line]
    assert len(printed) == len(HOSTS)  # --json prints repair runs too
    # Each host failed exactly twice in a row before its repair, then stayed ok.
    history = entropy(fleet, "results", "--audit", "marker", "--json", "--limit", "1000")
    for host in HOSTS:
        outcomes = [r["outcome"] for r in reversed(history) if r["host"] == host]
        assert outcomes[:2] == ["critical", "critical"]
        assert set(outcomes[2:]) == {"ok"}
