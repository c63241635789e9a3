"""The mongodb backend end to end, with real `entropy` commands and engines.

Against the session's NX-27017 server (see conftest): the seed fleet, the
schema's upgrade, and engines recording into MongoDB, with definitions in
MongoDB or in YAML (`[dir] state_connection = mongodb://...`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clirunner import run
from fleets import write_fleet
from processes import ENTROPY

pytestmark = pytest.mark.mongodb
SEED = Path(__file__).resolve().parents[2] / "examples" / "fleet"


def pairs(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(row["audit_name"], row["host"]) for row in rows}


def test_the_seed_fleet_syncs_into_mongodb_with_the_same_pairs_as_dir(mongodb_url: str) -> None:
    run("import", f"dir:{SEED}", mongodb_url)
    synced = json.loads(run("--backend", mongodb_url, "sync", "--json").stdout)
    in_mongodb = json.loads(run("--backend", mongodb_url, "status", "--json").stdout)
    run("--backend", f"dir:{SEED}", "sync")
    in_dir = json.loads(run("--backend", f"dir:{SEED}", "status", "--json").stdout)
    assert synced["added"] == len(in_mongodb) == len(in_dir) == 11  # 5 hosts, 5 scripts
    assert pairs(in_mongodb) == pairs(in_dir)
    # The same stable splay: every store computes the same first runs.
    assert {(r["audit_name"], r["host"], r["ip_address"]) for r in in_mongodb} == {
        (r["audit_name"], r["host"], r["ip_address"]) for r in in_dir
    }


def test_db_upgrade_creates_the_indexes_and_an_old_store_is_refused(
    empty_mongodb_url: str, tmp_path: Path
) -> None:
    url = empty_mongodb_url
    current = json.loads(run("--backend", url, "db", "current", "--json", code=1).stdout)
    assert current == {"url": url, "current": None, "head": "mongo-0001", "up_to_date": False}
    refused = run("--backend", url, "status", code=1)
    assert "has no Entropy collections" in refused.stderr
    assert "Run: entropy db upgrade" in refused.stderr
    assert "upgraded from (empty) to mongo-0001" in run("--backend", url, "db", "upgrade").stdout
    assert "already at revision mongo-0001" in run("--backend", url, "db", "upgrade").stdout
    import pymongo

    client = pymongo.MongoClient(url.rsplit("/", 1)[0])
    try:
        indexes = client[url.rsplit("/", 1)[1]].audits.index_information()
    finally:
        client.close()
    unique = [spec for spec in indexes.values() if spec.get("unique")]
    assert [list(dict(spec["key"])) for spec in unique] == [["audit_name", "host"]]


def test_a_dead_server_is_a_clear_error_within_seconds(tmp_path: Path) -> None:
    with socket_closed() as port:
        url = f"mongodb://127.0.0.1:{port}/entropy?serverSelectionTimeoutMS=500"
        result = run("--backend", url, "status", code=1)
    assert result.stderr.startswith(f"entropy: error: state store mongodb://127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


class socket_closed:
    """A port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *_: object) -> None:
        return None


FAST = {
    "hosts": {f"web-{i}.test": {"ip_address": "127.0.0.1", "host_type": "web"} for i in range(3)},
    "scripts": {"up": {"kind": "command", "command": ["true"]}},
    "schedules": {"s.yaml": {"web": {"audits": {"up": {"run_every": "1s"}}}}},
}


def engine_env(**options: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({"OS_DEFAULT__MAX_SPLAY": "1", "OS_DEFAULT__SHUTDOWN_GRACE": "2", **options})
    return env


@pytest.mark.slow
@pytest.mark.parametrize("definitions", ["mongodb", "dir"])
def test_engine_run_records_results_in_mongodb(
    definitions: str, mongodb_url: str, tmp_path: Path
) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", **FAST)
    env = engine_env()
    if definitions == "mongodb":
        run("import", f"dir:{fleet}", mongodb_url)
        backend = mongodb_url
    else:  # YAML definitions, state in MongoDB
        env["OS_DIR__STATE_CONNECTION"] = mongodb_url
        backend = f"dir:{fleet}"
    command = [*ENTROPY, "--backend", backend, "engine", "run", "--for", "4s", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(printed) >= 6 and {r["outcome"] for r in printed} == {"ok"}
    command = [*ENTROPY, "--backend", backend, "results", "--limit", "1000", "--json"]
    listed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    stored = json.loads(listed.stdout)
    assert len(stored) == len(printed)  # every printed result is in MongoDB's history
    assert {(r["host"], r["slot"]) for r in stored} == {(r["host"], r["slot"]) for r in printed}
    status = subprocess.run([*ENTROPY, "--backend", backend, "status", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    rows = json.loads(status.stdout)
    assert {r["status"] for r in rows} <= {"processed", "new"}  # nothing left processing
    assert all(r["result"]["outcome"] == "ok" for r in rows)
