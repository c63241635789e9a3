"""The parts of kind: ssh that need no server: definitions, targets, the remote wrapper."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from entropy.backends import fetch
from entropy.config import load_conf
from entropy.dump import write_dir
from entropy.errors import ValidationError
from entropy.model import Catalog, Host, HostSsh, Schedule, Script, parse_jump
from entropy.ssh.remote import command_line
from entropy.ssh.settings import SshSettings, Target, target_for
from entropy.timing import Every
from entropy.transfer import catalog_differences

SCRIPTS = "ok: {kind: command, command: [true]}\n"
AUDITS = "web:\n  audits:\n    ok: {run_every: 1h}\n"


def fleet(root: Path, hosts: str, scripts: str = SCRIPTS) -> Path:
    (root / "audits").mkdir(parents=True)
    (root / "hosts.yaml").write_text(hosts)
    (root / "scripts.yaml").write_text(scripts)
    (root / "audits" / "web.yaml").write_text(AUDITS)
    return root


def load(root: Path) -> Catalog:
    return fetch(load_conf(), f"dir:{root}").load()


def problems(root: Path) -> list[str]:
    with pytest.raises(ValidationError) as info:
        load(root)
    return [str(p) for p in info.value.problems]


def test_a_host_ssh_entry_is_read(tmp_path: Path) -> None:
    root = fleet(tmp_path / "f", (
        "web-01: {ip_address: 10.0.0.1, host_type: web, ssh: {user: admin, port: 2222,"
        " address: web-01.internal, jump: 'ops@bastion:2200,10.0.0.9'}}\n"
        "web-02: {ip_address: 10.0.0.2, host_type: web}\n"
    ))  # fmt: skip
    hosts = load(root).hosts
    assert hosts["web-01"].ssh == HostSsh(
        "web-01.internal", 2222, "admin", "ops@bastion:2200,10.0.0.9"
    )
    assert hosts["web-02"].ssh is None


@pytest.mark.parametrize(("entry", "message"), [
    ("{port: 0}", "port must be a number from 1 to 65535"),
    ("{port: '22'}", "port must be a number from 1 to 65535"),
    ("{user: 'a b'}", "user must be one word"),
    ("{address: -oProxyCommand=x}", "address must be one word"),
    ("{jump: 'a b'}", "jump: 'a b' is not [user@]host[:port]"),
    ("{jump: 'bastion:99999'}", "port must be a number from 1 to 65535"),
    ("{pasword: x}", "unknown key 'pasword' in host 'web-01': ssh"),
    ("[user]", "host 'web-01': ssh must be a mapping"),
])  # fmt: skip
def test_a_bad_host_ssh_entry_is_a_problem_at_its_line(
    tmp_path: Path, entry: str, message: str
) -> None:
    root = fleet(tmp_path / "f", f"web-01:\n  ip_address: 10.0.0.1\n  host_type: web\n"
                                 f"  ssh: {entry}\n")  # fmt: skip
    found = problems(root)  # and the host is left out, so its group is unknown too
    assert any(":4:" in p and message in p for p in found), found


@pytest.mark.parametrize(("script", "message"), [
    ("{kind: ssh}", "needs command (what to run) or upload"),
    ("{kind: ssh, command: [a], upload: /bin/true}", "needs command (what to run) or upload"),
    ("{kind: ssh, command: [a], args: [b]}", "args go with upload"),
    ("{kind: ssh, command: [a], cwd: /tmp}", "unknown key 'cwd'"),
    ("{kind: ssh, command: [sh, -c, 'echo {vars.x}']}", "would run as shell code"),
    ("{kind: ssh, command: ['{vars.tool}', -v]}", "would choose what runs"),
    ("{kind: ssh, upload: 'plugins/{host}.sh'}", "it can't hold placeholders"),
    ("{kind: ssh, upload: /bin/true, args: {a: 1}}", "must be a list of arguments"),
    ("{kind: ssh, upload: /bin/true, output_limit: 0}", "must be a number of bytes"),
    ("{kind: ssh, command: [true], env: {PATH: '{vars.x}'}}", "PATH is read as code"),
])  # fmt: skip
def test_an_ssh_script_needs_command_or_upload(tmp_path: Path, script: str, message: str) -> None:
    root = fleet(tmp_path / "f", "web-01: {ip_address: 10.0.0.1, host_type: web}\n",
                 SCRIPTS + f"remote: {script}\n")  # fmt: skip
    found = problems(root)
    assert any(message in p and "scripts.yaml:2:" in p for p in found), found
    assert all("scripts.yaml:2:" in p for p in found), found  # nothing else is blamed


@pytest.mark.parametrize("store", ["sqlite", pytest.param("mongodb", marks=pytest.mark.mongodb)])
def test_host_ssh_survives_export_and_a_database_round_trip(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    ssh = HostSsh("10.1.0.1", 2222, "admin", "bastion")
    catalog = Catalog(
        {
            "web-01": Host("web-01", "10.0.0.1", "web", ssh=ssh),
            "web-02": Host("web-02", "10.0.0.2", "web"),
        },
        {"ok": Script("ok", "ssh", {"command": ["true"]})},
        [Schedule("web", "ok", Every(3600))],
    )
    write_dir(catalog, tmp_path / "out")
    written = (tmp_path / "out" / "hosts.yaml").read_text()
    assert "  ssh:\n    address: 10.1.0.1\n    port: 2222\n    user: admin\n" in written
    src = fetch(load_conf(), f"dir:{tmp_path / 'out'}")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    if store == "mongodb":
        url = request.getfixturevalue("mongodb_url")
    dst = fetch(load_conf(), url)
    try:
        copied = src.load()
        dst.write_definitions(copied)
        again = dst.load()
    finally:
        src.close()
        dst.close()
    assert catalog_differences(copied, again) == []
    assert again.hosts["web-01"].ssh == ssh and again.hosts["web-02"].ssh is None


def test_the_target_of_a_host() -> None:
    settings = SshSettings(user="ops", port=22)
    plain = target_for(Host("a", "10.0.0.1", "web"), settings)
    assert plain == Target("10.0.0.1", 22, "ops", None, "a")
    chained = target_for(
        Host("b", "10.0.0.2", "web", ssh=HostSsh(port=2222, jump="root@j1:2200,j2")), settings
    )
    assert str(chained) == "ops@10.0.0.2:2222 via ops@j2:22 via root@j1:2200"
    assert chained.key != plain.key
    assert (
        target_for(
            Host("c", "10.0.0.2", "web", ssh=HostSsh(port=2222, jump="root@j1:2200,j2")), settings
        ).key
        == chained.key
    )  # one connection for hosts at one place


def test_parse_jump_refuses_what_ssh_would_read_as_an_option() -> None:
    assert parse_jump("u@[fe80::1]:2200") == [("u", "fe80::1", 2200)]
    for bad in ("-J x", "u@", "[::1", "a,,b", "h:x"):
        with pytest.raises(ValueError):
            parse_jump(bad)


# -- the wrapper, under a local sh as sshd would start it ------------------------------------


def wrapped(text: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["sh", "-c", command_line(text, env or {})], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def test_the_wrapper_passes_output_status_and_env_through() -> None:
    proc = wrapped('echo "$A $B"; echo err >&2; exit 3', {"A": "x y", "B": "$(id)'"})
    code = proc.wait(10)  # stdin stays open meanwhile: closing it is what kills the command
    assert (code, proc.stdout.read(), proc.stderr.read()) == (3, "x y $(id)'\n", "err\n")
    proc.stdin.close()


def test_the_wrapper_kills_the_command_group_when_stdin_closes() -> None:
    proc = wrapped("sleep 300 & echo $!; sleep 301")
    child = int(proc.stdout.readline())
    proc.stdin.close()  # what sshd does when the channel or the connection goes
    assert proc.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while not _ended(child):
        assert time.monotonic() < deadline, f"the background sleep {child} still runs"
        time.sleep(0.02)


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for its reaper (it runs no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def test_the_wrapper_leaves_what_a_finished_command_started_alone() -> None:
    proc = wrapped("sleep 30 >/dev/null 2>&1 & echo $!")
    child = int(proc.stdout.readline())
    assert proc.wait(10) == 0
    proc.stdin.close()
    time.sleep(0.2)
    os.kill(child, 0)  # still running: it was not the watcher's to kill
    os.kill(child, signal.SIGKILL)
