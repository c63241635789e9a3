"""A dir fleet's default state follows the fleet, not its path (FLEET/.entropy-state)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from entropy.backends import fetch
from entropy.cli import main
from entropy.config import load_conf
from faults import remount_read_only, tmpfs
from fleets import write_fleet
from processes import ENTROPY


def run(fleet: Path, *args: str, code: int = 0):
    result = CliRunner().invoke(main, ["--backend", f"dir:{fleet}", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


def path_keyed(state_dir: Path, fleet: Path) -> Path:
    """Where earlier versions kept a dir fleet's state: keyed by a hash of its path."""
    resolved = fleet.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    return state_dir / f"dir-{resolved.stem}-{digest}.sqlite"


def default_state_dir() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "entropy"  # see conftest's _isolated_state


def history(fleet: Path) -> list[tuple[str, str, str]]:
    found = json.loads(run(fleet, "results", "--json").stdout)
    return sorted((r["audit_name"], r["host"], r["finished_at"]) for r in found)


def with_history(fleet: Path) -> list[tuple[str, str, str]]:
    run(fleet, "sync")
    run(fleet, "audit", "run", "check_nova_config_exists")
    found = history(fleet)
    assert len(found) == 2
    return found


def test_a_moved_fleet_keeps_its_history(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    before = with_history(fleet)
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(fleet, moved)
    assert history(moved) == before
    run(moved, "sync")  # the first write here notes where the fleet is now
    assert f"path: {moved}" in (moved / ".entropy-state").read_text()
    assert history(moved) == before


def test_a_fleet_state_from_before_is_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading users keep history: the path-keyed file of earlier versions is taken on."""
    fleet = write_fleet("dir", tmp_path / "fleet")
    legacy = path_keyed(default_state_dir(), fleet)
    monkeypatch.setenv("OS_DIR__STATE_CONNECTION", f"sqlite:///{legacy}")  # as before
    before = with_history(fleet)
    monkeypatch.delenv("OS_DIR__STATE_CONNECTION")
    assert not (fleet / ".entropy-state").exists()
    assert history(fleet) == before  # read-only: adopts it without writing
    run(fleet, "sync")
    assert f"state: {legacy.name}" in (fleet / ".entropy-state").read_text()
    shutil.move(fleet, tmp_path / "moved")
    assert history(tmp_path / "moved") == before
    # A new fleet where that one was does not take its state (it was adopted).
    write_fleet("dir", fleet)
    assert "added 8" in run(fleet, "sync").stdout
    assert history(fleet) == [] and history(tmp_path / "moved") == before


def test_a_new_fleet_where_one_was_moved_from_starts_afresh(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    before = with_history(fleet)
    shutil.move(fleet, tmp_path / "moved")
    write_fleet("dir", fleet)
    assert "added 8" in run(fleet, "sync").stdout
    assert history(fleet) == [] and history(tmp_path / "moved") == before


def test_a_copy_of_a_fleet_gets_a_state_of_its_own(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    before = with_history(fleet)
    copy = tmp_path / "copy"
    shutil.copytree(fleet, copy)
    assert "no state yet" in run(copy, "status").stderr
    assert "added 8" in run(copy, "sync").stdout
    assert history(copy) == []
    assert history(fleet) == before
    assert "added 0" in run(fleet, "sync").stdout


@pytest.mark.parametrize(
    "content",
    ["state: ../../../etc/passwd\npath: /x\n", "state: [a\n", "just text\n", "state: x.db\n"],
)
def test_a_damaged_marker_is_a_clear_error(tmp_path: Path, content: str) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    (fleet / ".entropy-state").write_text(content)
    result = run(fleet, "sync", code=1)
    assert f"entropy: error: {fleet}/.entropy-state: " in result.stderr
    assert "fix or remove it" in result.stderr


def test_a_read_only_fleet_directory_keys_its_state_by_path_and_says_so(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        fleet = write_fleet("dir", mnt / "fleet")
        remount_read_only(mnt)
        env = {**os.environ, "OS_DEFAULT__STATE_DIR": str(tmp_path / "state")}
        done = subprocess.run([*ENTROPY, "--backend", f"dir:{fleet}", "sync"],
                              capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"cannot write {fleet}/.entropy-state (Read-only file system)" in done.stderr
        assert "moving the directory loses its history" in done.stderr
        assert path_keyed(tmp_path / "state", fleet).exists()


def test_commands_starting_together_on_a_new_fleet_agree_on_its_state(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet")
    start = threading.Barrier(8, timeout=30)

    def first_use(_: int) -> str:
        backend = fetch(load_conf(), f"dir:{fleet}")
        start.wait()
        return backend.state_url()

    with ThreadPoolExecutor(8) as pool:
        urls = set(pool.map(first_use, range(8)))
    assert len(urls) == 1
    (url,) = urls
    assert url.endswith(".sqlite") and (fleet / ".entropy-state").read_text().count("state:") == 1
    assert sorted(p.name for p in fleet.iterdir()) == [".entropy-state", "audits", "hosts.yaml",
                                                       "scripts.yaml"]  # fmt: skip
