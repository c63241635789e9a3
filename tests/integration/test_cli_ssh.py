"""`entropy ssh check` and `entropy audit run` with kind: ssh, as real processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleets import write_fleet
from processes import ENTROPY
from sshd import Sshd, keygen, silent_listener

pytestmark = pytest.mark.slow


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    server = Sshd(keygen(tmp_path / "client_key"))
    yield server
    server.close()


def conf(tmp_path: Path, sshd: Sshd, **extra: object) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line("127.0.0.1"))
    lines = [
        "[ssh]", f"user = {sshd.user}", f"port = {sshd.port}",
        f"identity_files = {tmp_path / 'client_key'}", f"known_hosts = {known}",
        *(f"{key} = {value}" for key, value in extra.items()),
    ]  # fmt: skip
    path = tmp_path / "entropy.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def entropy(config: Path, fleet: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENTROPY, "--config-file", str(config), "--backend", f"dir:{fleet}", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_ssh_check_names_what_failed_on_each_host(tmp_path: Path, sshd: Sshd) -> None:
    silent, silent_port = silent_listener()
    closed, closed_port = silent_listener()
    closed.close()
    hosts = {
        "good.example": {"ip_address": "127.0.0.1", "host_type": "web"},
        "stranger.example": {"ip_address": "127.0.0.1", "host_type": "web",
                             "ssh": {"address": "localhost"}},  # its key is not known as that
        "locked.example": {"ip_address": "127.0.0.1", "host_type": "db",
                           "ssh": {"user": "no-such-user"}},
        "closed.example": {"ip_address": "127.0.0.1", "host_type": "db",
                           "ssh": {"port": closed_port}},
        "silent.example": {"ip_address": "127.0.0.1", "host_type": "db",
                           "ssh": {"port": silent_port}},
    }  # fmt: skip
    fleet = write_fleet(
        "dir", tmp_path / "fleet", hosts=hosts,
        scripts={"noop": {"kind": "command", "command": ["true"]}},
        schedules={"web.yaml": {"web": {"audits": {"noop": {"run_every": "1h"}}}}},
    )  # fmt: skip
    config = conf(tmp_path, sshd, connect_timeout=1)
    with silent:
        done = entropy(config, fleet, "ssh", "check", "--json")
    assert done.returncode == 1, done.stderr
    found = {row["host"]: row for row in json.loads(done.stdout)}
    assert {host: row["result"] for host, row in found.items()} == {
        "good.example": "ok",
        "stranger.example": "host key",
        "locked.example": "auth",
        "closed.example": "refused",
        "silent.example": "timeout",
    }
    assert found["good.example"]["target"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
    assert found["silent.example"]["seconds"] < 3
    assert "unknown host key" in found["stranger.example"]["detail"]

    done = entropy(config, fleet, "ssh", "check", "--host", "good.example")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["HOST", "TARGET", "RESULT", "TIME", "DETAIL"]
    assert "good.example" in done.stdout and " ok " in done.stdout
    assert "1 of 1 hosts reached" in done.stderr

    done = entropy(config, fleet, "ssh", "check", "--group", "nosuch")
    assert done.returncode == 1 and "no host is in group 'nosuch'" in done.stderr
    assert "Traceback" not in done.stderr


def test_audit_run_runs_an_ssh_script_on_one_host(tmp_path: Path, sshd: Sshd) -> None:
    fleet = write_fleet(
        "dir", tmp_path / "fleet",
        hosts={"web-01": {"ip_address": "127.0.0.1", "host_type": "web", "vars": {"w": 5}},
               "web-02": {"ip_address": "127.0.0.1", "host_type": "web"}},
        scripts={"whoami": {"kind": "ssh", "command": ["sh", "-c", 'echo "OK - $(id -un) on '
                                                       '$ENTROPY_HOST|w=$ENTROPY_VAR_W"', ]}},
        schedules={"web.yaml": {"web-01": {"audits": {"whoami": {"run_every": "1h"}}}}},
    )  # fmt: skip
    done = entropy(conf(tmp_path, sshd), fleet, "audit", "run", "whoami", "--host", "web-01",
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (result,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert result["outcome"] == "ok"
    assert result["summary"] == f"OK - {sshd.user} on web-01"
    assert result["metrics"]["w"]["value"] == 5.0
