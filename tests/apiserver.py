"""A real `entropy api serve` process for tests: its fleet, tokens and an HTTP client.

Shared by tests/integration/test_api.py and test_dashboard.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import processes
from conftest import _free_port
from fleets import write_fleet
from processes import ENTROPY

SMALL_HOSTS = {
    "web-1.test": {"ip_address": "127.0.0.1", "host_type": "web"},
    "web-2.test": {"ip_address": "127.0.0.1", "host_type": "web"},
    "db-1.test": {"ip_address": "127.0.0.1", "host_type": "db"},
}
SCRIPTS = {
    "ok_check": {"kind": "command", "command": ["sh", "-c", "echo OK - fine"]},
    "bad_check": {"kind": "command", "command": ["sh", "-c", "echo CRITICAL - broken; exit 2"]},
    "fix_bad": {"kind": "command", "command": ["true"]},
}
SMALL_SCHEDULES = {
    "web.yaml": {"web": {"audits": {"ok_check": {"run_every": "1h"},
                                     "bad_check": {"run_every": "1h"}}}},
    "db.yaml": {"db": {"audits": {"ok_check": {"run_every": "1h"}}}},
}  # fmt: skip
# Fires on the first critical, verifies, is not fixed: the host is flagged at once.
REPAIRS = {
    "fix_bad": {"when": {"audit": "bad_check"}, "run": "fix_bad", "max_attempts": 1,
                "verify": True},
    "fix_ok": {"when": {"audit": "ok_check"}, "run": "fix_bad"},  # only a posted result fails it
}  # fmt: skip


@dataclass
class Api:
    """A running `entropy api serve`, its fleet, environment and tokens."""

    url: str
    fleet: Path
    env: dict[str, str]
    log: Path
    tokens: dict[str, str]  # name -> token

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def entropy(self, *args: str) -> Any:
        return processes.entropy(self.fleet, *args, env=self.env)


def server_env(state_url: str, **options: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        "OS_DIR__STATE_CONNECTION": state_url,
        "OS_DEFAULT__MAX_SPLAY": "1",
        "OS_DEFAULT__HEARTBEAT_INTERVAL": "0.5",
        "OS_DEFAULT__CLAIM_LEASE": "4",
        "OS_DEFAULT__MAX_CLOCK_SKEW": "0.5",
        **options,
    }


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/openapi.json", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serve(tmp: Path, fleet: Path, env: dict[str, str]) -> Iterator[Api]:
    """Sync the fleet, make a reader's and an operator's token, start the server."""
    processes.entropy(fleet, "sync", "--json", env=env)
    tokens = {}
    for name, role in (("viewer", "reader"), ("ops", "operator")):
        made = processes.entropy(fleet, "api", "token", "add", name, "--role", role, "--json",
                                 env=env)  # fmt: skip
        tokens[name] = made["token"]
    port = _free_port()
    log = tmp / "api.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [*ENTROPY, "--backend", f"dir:{fleet}", "api", "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=err, stderr=err, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for(lambda: server.poll() is not None or _answers(url), 60, "the API")
        assert server.poll() is None, log.read_text()
        yield Api(url, fleet, env, log, tokens)
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def small_fleet(
    tmp_path: Path, state_url: str, **options: str
) -> Iterator[tuple[Api, subprocess.Popen]]:
    """The small fleet, served, with an engine beside it (bad_check fails on both web
    hosts; its repair does not fix it, so they get flagged). options: OS_* variables."""
    fleet = write_fleet("dir", tmp_path / "fleet", SMALL_HOSTS, SCRIPTS, SMALL_SCHEDULES, REPAIRS)
    env = server_env(state_url, **options)
    with serve(tmp_path, fleet, env) as api:
        engine = processes.start_engine(fleet, env=env)
        try:
            yield api, engine
        finally:
            engine.terminate()
            engine.wait(timeout=30)


def flagged(api: Api) -> list[dict[str, Any]]:
    with api.client("viewer") as http:
        states = http.get("/v1/repairs/states").json()["items"]
    return [s for s in states if s["flagged"]]
