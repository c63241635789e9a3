"""kind: ssh against real servers: OpenSSH's sshd on 127.0.0.1, asyncssh fault servers.

The "remote" host is this machine, so each test can look at what happened
there: which processes still run, which files exist, what sshd logged.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entropy.clock import SystemClock
from entropy.model import Host, HostSsh, Outcome, Result, Script
from entropy.runners import Job, run_job
from entropy.ssh import client as ssh_client
from entropy.ssh.settings import SshSettings
from sshd import (
    FaultServer,
    Sshd,
    ensure_package,
    home_of,
    keygen,
    process_gone,
    silent_listener,
    wait_until,
)

pytestmark = pytest.mark.slow
CHECK_LOAD = "/usr/lib/nagios/plugins/check_load"


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    return keygen(tmp_path / "client_key")


@pytest.fixture
def sshd(tmp_path: Path, client_key: Path) -> Iterator[Sshd]:
    server = Sshd(client_key)
    yield server
    server.close()


@pytest.fixture
def settings(tmp_path: Path, client_key: Path, sshd: Sshd) -> Iterator[SshSettings]:
    """[ssh] for the test sshd; its host key already in known_hosts under its address."""
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line("127.0.0.1"))
    found = SshSettings(
        user=sshd.user, port=sshd.port, identity_files=(str(client_key),),
        known_hosts=str(known), connect_timeout=5.0,
        upload_dir=f".cache/entropy-tests/{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    yield use(found)
    ssh_client.reset()
    shutil.rmtree(home_of(sshd.user) / found.upload_dir, ignore_errors=True)


def use(settings: SshSettings, **changes: Any) -> SshSettings:
    """Make the process's SSH client use these settings (a fresh pool)."""
    settings = dataclasses.replace(settings, **changes)
    ssh_client.reset(settings)
    return settings


HOST = Host("web-01.example.com", "127.0.0.1", "web", vars={"rack": "r1"})


def run(command: Any, host: Host = HOST, timeout: float = 10, **params: Any) -> Result:
    script = Script("probe", "ssh", {"command": command, **params} if command else params)
    return run_job(Job("probe", host, script, {"mode": "fast"}, timeout), SystemClock())


def local(command: Any, host: Host = HOST, **params: Any) -> Result:
    script = Script("probe", "command", {"command": command, **params})
    return run_job(Job("probe", host, script, {"mode": "fast"}, 10), SystemClock())


def same(a: Result, b: Result) -> bool:
    return [(r.outcome, r.summary, r.output, r.metrics) for r in (a, b)] == [
        (b.outcome, b.summary, b.output, b.metrics)
    ] * 2


# -- the result convention is kind: command's ------------------------------------------------


@pytest.mark.parametrize(("code", "outcome"), [
    (0, Outcome.OK), (1, Outcome.WARNING), (2, Outcome.CRITICAL), (3, Outcome.UNKNOWN),
    (4, Outcome.UNKNOWN), (255, Outcome.UNKNOWN),
])  # fmt: skip
def test_exit_codes_read_as_nagios_exactly_like_a_local_command(
    settings: SshSettings, code: int, outcome: Outcome
) -> None:
    text = f"echo 'DISK {code} - /var at 91%|used=91%;80;90;0;100'; echo oops >&2; exit {code}"
    remote = run(text, shell=True)
    assert remote.outcome is outcome
    assert same(remote, local(text, shell=True)), (remote, local(text, shell=True))
    assert remote.metrics["used"]["value"] == 91.0


def test_a_signal_and_silence_read_like_a_local_command(settings: SshSettings) -> None:
    for text in ("kill -TERM $$", "exit 0", "echo only-stderr >&2; exit 2"):
        remote, here = run(text, shell=True), local(text, shell=True)
        assert same(remote, here), (text, remote, here)
    assert run("kill -TERM $$", shell=True).summary == "killed by signal SIGTERM"


def test_output_is_capped_with_the_same_marker(settings: SshSettings) -> None:
    text = "head -c 5000 /dev/zero | tr '\\0' x; echo; head -c 3000 /dev/zero | tr '\\0' y >&2"
    remote = run(text, shell=True, output_limit=100)
    assert same(remote, local(text, shell=True, output_limit=100))
    assert "[... output cut at 100 of 5001 bytes ...]" in remote.output
    assert "[... output cut at 100 of 3000 bytes ...]" in remote.output


def test_placeholders_and_env_cannot_inject_through_host_names_or_vars(
    settings: SshSettings, tmp_path: Path
) -> None:
    victim = Path("/tmp") / f"entropy-injected-{uuid.uuid4().hex[:8]}"
    evil = f"x'; touch {victim}; echo '$(touch {victim})`touch {victim}`"
    host = Host(f"h;touch {victim}", "127.0.0.1", "web", vars={"evil": evil})
    argv = run(["echo", "{host}", "{vars.evil}", "{params.mode}"], host)
    assert argv.outcome is Outcome.OK
    assert argv.summary == f"h;touch {victim} {evil} fast"
    shell = run("echo {vars.evil} \"{host}\" '{vars.evil}'", host, shell=True)
    assert shell.summary == f"{evil} h;touch {victim} {evil}"
    env = run('echo "$ENTROPY_HOST,$ENTROPY_VAR_EVIL,$ENTROPY_PARAM_MODE,$MINE"', host,
              shell=True, env={"MINE": "{vars.evil}"})  # fmt: skip
    assert env.summary == f"h;touch {victim},{evil},fast,{evil}"
    assert not victim.exists()


def test_a_bad_env_name_is_an_error_before_anything_runs(settings: SshSettings) -> None:
    result = run(["true"], env={"A B": "1"})
    assert result.outcome is Outcome.ERROR and "not a variable name" in result.summary


# -- timeouts stop the remote command ----------------------------------------------------


def test_a_timeout_kills_the_remote_command_and_its_children(settings: SshSettings) -> None:
    started = time.monotonic()
    result = run("sleep 300 & echo $!; sh -c 'echo $$; exec sleep 301'", timeout=1.5, shell=True)
    assert result.outcome is Outcome.TIMEOUT and result.summary == "timed out after 1.5s"
    assert time.monotonic() - started < 4
    pids = [int(line) for line in result.output.split()]
    assert len(pids) == 2
    for pid in pids:  # on the "remote" host, which is this one
        wait_until(lambda pid=pid: process_gone(pid), 5, f"remote process {pid} to end")


def test_a_command_whose_connection_drops_dies_on_the_host(settings: SshSettings) -> None:
    """sshd leaves a non-pty command running when its client goes; the wrapper does not."""
    found: list[Result] = []
    worker = threading.Thread(target=lambda: found.append(
        run("echo $$; sleep 300 & sleep 301", timeout=60, shell=True)))  # fmt: skip
    worker.start()
    client = ssh_client.default()
    wait_until(lambda: client._running, 10, "the command to start")
    time.sleep(0.3)
    (entry,) = client.pool.entries.values()
    client.thread.soon(entry.conn.abort)  # the engine's end of the connection goes
    worker.join(10)
    (result,) = found
    assert result.outcome is Outcome.UNKNOWN and "dropped" in result.summary
    shell = int(result.output.split()[0])
    wait_until(lambda: process_gone(shell), 5, "the remote command to end")
    children = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and _parent(p) == shell]  # fmt: skip
    assert children == []


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_kill_all_at_engine_shutdown_stops_remote_commands(settings: SshSettings) -> None:
    found: list[Result] = []
    worker = threading.Thread(
        target=lambda: found.append(run("echo $$; exec sleep 300", timeout=60, shell=True))
    )
    worker.start()
    wait_until(lambda: ssh_client.default()._running, 10, "the command to start")
    time.sleep(0.3)
    assert ssh_client.kill_all() == 1
    worker.join(10)
    (result,) = found
    assert result.outcome is Outcome.ERROR and "shutting down" in result.summary
    wait_until(lambda: process_gone(int(result.output.split()[0])), 5, "the remote sleep to end")


def test_a_kill_all_while_a_remote_command_is_starting_stops_it_once_it_runs(
    settings: SshSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill lands while the exec request is being answered (the command already runs on
    the host): it is stopped once registered, not left to run to its timeout."""
    from entropy.ssh import remote

    client = ssh_client.default()
    real_start = remote.start

    async def start_then_killed(*args: Any, **kwargs: Any) -> Any:
        running = await real_start(*args, **kwargs)
        await client._kill()  # what kill_all() runs on the loop, arriving just now
        return running

    monkeypatch.setattr(remote, "start", start_then_killed)
    marker = f"300.{uuid.uuid4().int % 10**8}"  # the remote sleep, found in /proc (sshd is here)
    began = time.monotonic()
    result = run(f"exec sleep {marker}", timeout=60, shell=True)
    assert time.monotonic() - began < 10
    assert result.outcome is Outcome.ERROR and "shutting down" in result.summary
    wait_until(lambda: not _running_with(marker), 5, "the remote sleep to end (if it started)")


def _running_with(marker: str) -> bool:
    """Whether a process whose command line holds marker runs (any user's, from /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                return True
        except OSError:  # ended meanwhile
            continue
    return False


def test_after_kill_all_refusing_new_no_remote_command_starts_until_allowed(
    settings: SshSettings,
) -> None:
    marker = Path("/tmp") / f"entropy-ran-{uuid.uuid4().hex[:8]}"
    assert run(["true"]).outcome is Outcome.OK  # the pool exists
    ssh_client.kill_all(refuse_new=True)
    try:
        refused = run(["touch", str(marker)])
    finally:
        ssh_client.allow_new()
    assert refused.outcome is Outcome.ERROR
    assert "not run: this process is stopping" in refused.summary
    assert not marker.exists()
    assert run(["true"]).outcome is Outcome.OK  # allowed again


# -- host keys ---------------------------------------------------------------------------


def test_an_unknown_host_key_is_refused_and_nothing_runs(
    settings: SshSettings, sshd: Sshd, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    use(settings, known_hosts=str(empty))
    marker = Path("/tmp") / f"entropy-ran-{uuid.uuid4().hex[:8]}"
    result = run(["touch", str(marker)])
    assert result.outcome is Outcome.UNKNOWN
    assert result.summary.startswith("SSH host key: ") and "unknown host key ssh-ed25519" in (
        result.summary
    )
    assert not marker.exists() and sshd.sessions() == 0 and not empty.exists()


def test_a_changed_host_key_is_refused_even_with_accept_new(
    settings: SshSettings, sshd: Sshd, tmp_path: Path
) -> None:
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "changed_known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    use(settings, known_hosts=str(known), accept_new_host_keys=True)
    result = run(["true"])
    assert result.outcome is Outcome.UNKNOWN and "host key CHANGED" in result.summary
    assert "ssh-keygen" in result.summary and sshd.sessions() == 0
    assert known.read_text().count("\n") == 1  # nothing recorded


def test_accept_new_records_a_first_seen_key_like_openssh(
    settings: SshSettings, sshd: Sshd, tmp_path: Path
) -> None:
    known = tmp_path / "new" / "known_hosts"
    use(settings, known_hosts=str(known), accept_new_host_keys=True)
    assert run(["true"]).outcome is Outcome.OK
    recorded = known.read_text()
    assert recorded == sshd.known_hosts_line(HOST.name, "127.0.0.1")
    use(settings, known_hosts=str(known))  # strict again: the recorded key is trusted
    assert run(["true"]).outcome is Outcome.OK


# -- failures are unknown, named, and never block other hosts ------------------------------


def test_authentication_failure(settings: SshSettings, tmp_path: Path) -> None:
    use(settings, identity_files=(str(keygen(tmp_path / "stranger")),))
    result = run(["true"])
    assert result.outcome is Outcome.UNKNOWN
    assert result.summary.startswith("SSH auth: ") and "authentication failed" in result.summary


def test_an_unreadable_identity_file_is_an_error_naming_it(
    settings: SshSettings, tmp_path: Path
) -> None:
    use(settings, identity_files=(str(tmp_path / "no_such_key"),))
    result = run(["true"])
    assert result.outcome is Outcome.ERROR
    assert result.summary.startswith("SSH config: [ssh] identity_files: cannot use ")
    assert "no_such_key" in result.summary


def test_connection_refused(settings: SshSettings) -> None:
    sock, port = silent_listener()
    sock.close()  # the port is closed again: nothing listens there
    result = run(["true"], dataclasses.replace(HOST, ssh=HostSsh(port=port)))
    assert result.outcome is Outcome.UNKNOWN
    assert result.summary == f"SSH refused: {settings.user}@127.0.0.1:{port}: connection refused"


def test_a_server_that_never_answers_times_out_at_connect_timeout(settings: SshSettings) -> None:
    use(settings, connect_timeout=0.5)
    sock, port = silent_listener()
    with sock:
        started = time.monotonic()
        result = run(["true"], dataclasses.replace(HOST, ssh=HostSsh(port=port)))
    assert result.outcome is Outcome.UNKNOWN and result.summary.startswith("SSH timeout: ")
    assert "no SSH login within 0.5s" in result.summary
    assert time.monotonic() - started < 2


def test_slow_authentication_times_out_and_other_hosts_go_on(settings: SshSettings) -> None:
    use(settings, connect_timeout=1.5)
    server = FaultServer("slow_auth", delay=30)
    try:
        slow_host = Host("slow", "127.0.0.1", "web", ssh=HostSsh(port=server.port))
        (settings_path := Path(settings.known_hosts)).write_text(
            settings_path.read_text() + server.known_hosts_line()
        )
        found: dict[str, Result] = {}
        slow = threading.Thread(target=lambda: found.update(slow=run(["true"], slow_host)))
        slow.start()
        time.sleep(0.2)  # the slow login is under way
        started = time.monotonic()
        for _ in range(3):
            assert run(["true"]).outcome is Outcome.OK
        assert time.monotonic() - started < 1.0  # not queued behind the slow host
        slow.join(10)
        assert found["slow"].outcome is Outcome.UNKNOWN
        assert found["slow"].summary.startswith("SSH timeout: ")
    finally:
        server.close()


def test_a_connection_dropped_mid_command_is_unknown_with_what_it_printed(
    settings: SshSettings,
) -> None:
    server = FaultServer("drop")
    try:
        Path(settings.known_hosts).write_text(server.known_hosts_line())
        result = run(["check_something"], Host("h", "127.0.0.1", "web",
                                                ssh=HostSsh(port=server.port)))  # fmt: skip
        assert result.outcome is Outcome.UNKNOWN
        assert result.summary.startswith("SSH dropped: ") and "while the command ran" in (
            result.summary
        )
        assert result.output.startswith("started")
    finally:
        server.close()


# -- connections: jump hosts, reuse, restarts, limits ---------------------------------------


def test_a_jump_host_reaches_the_target_through_it(settings: SshSettings, sshd: Sshd) -> None:
    host = Host("inner", "10.255.255.1", "web", ssh=HostSsh(
        address="127.0.0.1", port=sshd.port, jump=f"{sshd.user}@127.0.0.1:{sshd.port}",
    ))  # fmt: skip
    result = run(["sh", "-c", "echo $SSH_CLIENT"], host)
    assert result.outcome is Outcome.OK
    log = sshd.log.read_text()
    assert sshd.logins() == 2  # the jump host, then the target through its tunnel
    assert "direct-tcpip" in log or "Connection from 127.0.0.1" in log
    assert run(["true"], host).outcome is Outcome.OK and sshd.logins() == 2  # both reused


def test_audits_on_one_host_share_one_connection(settings: SshSettings, sshd: Sshd) -> None:
    for _ in range(10):
        assert run(["true"]).outcome is Outcome.OK
    threads = [threading.Thread(target=run, args=(["true"],)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sshd.sessions() == 20
    assert sshd.logins() == 1
    assert ssh_client.default().pool.stats()["opened"] == 1


def test_sshd_restarted_mid_run_and_the_engine_reconnects(
    settings: SshSettings, sshd: Sshd
) -> None:
    assert run(["true"]).outcome is Outcome.OK
    killed: list[Result] = []
    worker = threading.Thread(target=lambda: killed.append(run(["sleep", "30"], timeout=20)))
    worker.start()
    wait_until(lambda: sshd.sessions() == 2, 10, "the long command to start")
    sshd.restart()
    worker.join(10)
    assert killed[0].outcome is Outcome.UNKNOWN and "dropped" in killed[0].summary
    for _ in range(3):
        assert run(["true"]).outcome is Outcome.OK
    assert sshd.logins() == 2


def test_a_stale_pooled_connection_is_replaced_once(
    settings: SshSettings, sshd: Sshd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="entropy.ssh.client")
    assert run(["true"]).outcome is Outcome.OK
    pool = ssh_client.default().pool
    (entry,) = pool.entries.values()
    stale = entry.conn
    # The server goes away without asyncssh noticing yet: its transport is cut under it.
    ssh_client.default().thread.call(_cut(stale))
    assert run(["echo", "again"]).summary == "again"
    assert entry.conn is not stale and sshd.logins() == 2
    assert "pooled connection broken" in caplog.text  # found broken by the command, not before


async def _cut(conn: Any) -> None:
    conn._transport.pause_reading()  # the loss is not seen until a write fails
    conn._transport.get_extra_info("socket").shutdown(2)


def test_max_sessions_per_host_queues_commands(settings: SshSettings, sshd: Sshd) -> None:
    use(settings, max_sessions_per_host=1)
    started = time.monotonic()
    found: list[Result] = []
    threads = [threading.Thread(target=lambda: found.append(run(["sleep", "0.5"])))
               for _ in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.outcome for r in found] == [Outcome.OK, Outcome.OK]
    assert time.monotonic() - started >= 1.0 and sshd.logins() == 1


def test_idle_connections_close_and_reopen_on_demand(settings: SshSettings, sshd: Sshd) -> None:
    use(settings, idle_timeout=0.2)
    assert run(["true"]).outcome is Outcome.OK
    pool = ssh_client.default().pool
    wait_until(lambda: pool.stats()["open"] == 0, 5, "the idle connection to close")
    assert run(["true"]).outcome is Outcome.OK and sshd.logins() == 2


def test_max_connections_closes_the_least_recently_used_idle_one(
    settings: SshSettings, sshd: Sshd
) -> None:
    use(settings, max_connections=1)
    first = Host("a", "127.0.0.1", "web")
    second = Host("b", "127.0.0.1", "web", ssh=HostSsh(address="localhost"))
    Path(settings.known_hosts).write_text(sshd.known_hosts_line("127.0.0.1", "localhost"))
    assert run(["true"], first).outcome is Outcome.OK
    assert run(["true"], second).outcome is Outcome.OK
    assert ssh_client.default().pool.stats()["open"] == 1 and sshd.logins() == 2


def test_an_openssh_client_config_adds_what_entropy_does_not_set(
    settings: SshSettings, client_key: Path, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n  IdentityFile {client_key}\n")
    use(settings, identity_files=(), config_file=str(config))
    assert run(["true"]).outcome is Outcome.OK  # the key came from the config file
    use(settings, identity_files=())
    assert run(["true"]).summary.startswith("SSH auth: ")


# -- upload, a real plugin, repairs ---------------------------------------------------------


def test_check_load_is_uploaded_once_and_run_remotely(settings: SshSettings, sshd: Sshd) -> None:
    ensure_package(CHECK_LOAD, "monitoring-plugins-basic")
    args = ["-w", "1000,1000,1000", "-c", "2000,2000,2000"]
    first = run(None, upload=CHECK_LOAD, args=args)
    assert first.outcome is Outcome.OK, first
    assert first.summary.startswith("LOAD OK")
    assert set(first.metrics) >= {"load1", "load5", "load15"}
    second = run(None, upload=CHECK_LOAD, args=["-w", "0,0,0", "-c", "1000,1000,1000"])
    assert second.outcome is Outcome.WARNING
    assert sshd.log.read_text().count("subsystem 'sftp'") == 1  # sent once
    remote_dir = home_of(sshd.user) / settings.upload_dir
    (copied,) = remote_dir.iterdir()
    assert (
        copied.name.endswith("-check_load") and copied.read_bytes() == Path(CHECK_LOAD).read_bytes()
    )
    ssh_client.reset(settings)  # a new engine: asks SFTP once, sends nothing again
    assert run(None, upload=CHECK_LOAD, args=args).outcome is Outcome.OK
    assert sshd.log.read_text().count("subsystem 'sftp'") == 2
    assert len(list(remote_dir.iterdir())) == 1


def test_a_missing_upload_is_an_error_naming_it(settings: SshSettings, tmp_path: Path) -> None:
    result = run(None, upload=str(tmp_path / "nope.sh"))
    assert result.outcome is Outcome.ERROR and "nope.sh" in result.summary


def test_a_repair_runs_over_ssh_on_the_failing_host(
    settings: SshSettings, sshd: Sshd, tmp_path: Path, clock: Any
) -> None:
    from entropy.backends import fetch
    from entropy.config import load_conf
    from entropy.model import Verify
    from entropy.repairs import Repairer
    from fleets import write_fleet

    marker = Path("/tmp") / f"entropy-repair-{uuid.uuid4().hex[:8]}"
    check = f'test -f {marker}/{{host}} && echo "OK - there" || {{ echo CRITICAL; exit 2; }}'
    root = write_fleet(
        "dir", tmp_path / "fleet",
        hosts={"web-01": {"ip_address": "127.0.0.1", "host_type": "web"}},
        scripts={
            "marker": {"kind": "ssh", "command": check, "shell": True},
            "make_marker": {"kind": "ssh", "command": f"mkdir -p {marker} && touch "
                            f"{marker}/{{host}} && echo made", "shell": True},
        },
        schedules={"web.yaml": {"web": {"audits": {"marker": {"run_every": "1m"}}}}},
        repairs={"fix": {"when": {"audit": "marker"}, "run": "make_marker", "verify": True}},
    )  # fmt: skip
    backend = fetch(load_conf(), f"dir:{root}")
    try:
        catalog = backend.load()
        backend.sync(catalog, clock.now())
        (row,) = backend.audits()
        (pair,) = catalog.pairs
        audit = run_job(Job.for_pair(catalog, pair, 10), clock)
        audit.audit_name, audit.host, audit.slot = "marker", "web-01", clock.now()
        assert audit.outcome is Outcome.CRITICAL
        backend.state.record_adhoc(row.id, audit)
        repairer = Repairer(backend, clock, "e", default_timeout=10)
        done = repairer.handle(catalog, catalog.repairs["fix"], row.id, pair, audit)
        assert done.result.outcome is Outcome.OK and done.result.summary == "made"
        assert done.verify is Verify.FIXED
        assert (marker / "web-01").exists()  # made by the remote user, on the "remote" host
        assert sshd.logins() == 1  # the audit, the repair and its verify shared one connection
    finally:
        backend.close()
        shutil.rmtree(marker, ignore_errors=True)
