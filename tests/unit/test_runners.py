"""The runners against real processes, a real HTTP server and real sockets.

Every test is quick: the timeout tests wait at most about a second.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from entropy import examples
from entropy.clock import SystemClock
from entropy.model import Host, Outcome, Script
from entropy.runners import Job, Result, command, http, python, run_job, tcp
from entropy.runners.nagios import cut, parse_perfdata, split_output

NASTY = "a b; touch pwned"  # would create a file if it reached a shell unquoted
HOST = Host(
    "web-01.example.com",
    "127.0.0.1",
    "compute",
    vars={"rack": "r1", "note": NASTY, "vms": ["vm1", "vm2"]},
)


def job(kind: str, timeout: float = 5.0, params: dict[str, Any] | None = None, **keys: Any) -> Job:
    return Job("the_audit", HOST, Script("the_audit", kind, keys), params or {}, timeout)


def script(tmp_path: Path, body: str, name: str = "check.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# --- Nagios output -----------------------------------------------------------

LONG_OUTPUT = """DISK OK - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968
/boot 68 MB (69%);
/var/log 819 MB (84%); | /boot=68MB;88;93;0;98
/home=69357MB;253404;253409;0;253414 'my label'=5ms;;;; 'it''s'=1
time=0.5s;1:2;@3:4 load=U junk =7 bad=x1 pct=99.5%;;;0;100
"""


def test_split_output_takes_summary_and_perfdata_from_every_line() -> None:
    summary, perfdata = split_output(LONG_OUTPUT)
    assert summary == "DISK OK - free space: / 3326 MB (56%)"
    assert "/=2643MB" in perfdata and "/boot=68MB" in perfdata and "pct=99.5%" in perfdata
    assert "819 MB" not in perfdata  # long text before the later `|` is not perfdata


def test_parse_perfdata_reads_labels_units_and_limits() -> None:
    metrics = parse_perfdata(split_output(LONG_OUTPUT)[1])
    assert metrics["/"] == {
        "value": 2643.0,
        "uom": "MB",
        "warn": "5948",
        "crit": "5958",
        "min": 0.0,
        "max": 5968.0,
    }
    assert metrics["/boot"]["value"] == 68.0
    assert metrics["/home"]["max"] == 253414.0
    assert metrics["my label"] == {
        "value": 5.0,
        "uom": "ms",
        "warn": None,
        "crit": None,
        "min": None,
        "max": None,
    }
    assert metrics["it's"]["value"] == 1.0
    assert metrics["time"]["uom"] == "s"
    assert (metrics["time"]["warn"], metrics["time"]["crit"]) == ("1:2", "@3:4")
    assert metrics["pct"] == {
        "value": 99.5,
        "uom": "%",
        "warn": None,
        "crit": None,
        "min": 0.0,
        "max": 100.0,
    }
    # Unmeasured ("U") and unreadable tokens are skipped, never an error.
    assert set(metrics) == {"/", "/boot", "/home", "my label", "it's", "time", "pct"}


def test_parse_perfdata_never_fails_on_garbage() -> None:
    assert parse_perfdata("=== ;;; 'unclosed=1 x=;;; =5 nan=nan") == {}


def test_cut_marks_where_output_was_cut() -> None:
    assert cut(b"short", 10) == "short"
    assert cut(b"0123456789abc", 10) == "0123456789\n[... output cut at 10 of 13 bytes ...]"


# --- command -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, Outcome.OK),
        (1, Outcome.WARNING),
        (2, Outcome.CRITICAL),
        (3, Outcome.UNKNOWN),
        (7, Outcome.UNKNOWN),
    ],
)
def test_command_exit_codes_follow_nagios(tmp_path: Path, code: int, outcome: Outcome) -> None:
    path = script(tmp_path, f"echo 'first line | x=1'\necho second line\nexit {code}\n")
    verdict = command.run(job("command", command=[path]))
    assert verdict.outcome is outcome
    if code == 7:
        assert verdict.summary == "exit code 7 is out of bounds: first line"
    else:
        assert verdict.summary == "first line"
    assert verdict.output == "first line | x=1\nsecond line\n"
    assert verdict.metrics["x"]["value"] == 1.0


def test_command_parses_long_output_perfdata(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text(LONG_OUTPUT)
    verdict = command.run(job("command", command=["cat", str(tmp_path / "out.txt")]))
    assert verdict.outcome is Outcome.OK
    assert verdict.summary == "DISK OK - free space: / 3326 MB (56%)"
    assert verdict.metrics["my label"]["uom"] == "ms"
    assert verdict.metrics["/home"]["value"] == 69357.0


def test_command_killed_by_a_signal_is_unknown(tmp_path: Path) -> None:
    verdict = command.run(job("command", command=[script(tmp_path, "kill -9 $$\n")]))
    assert verdict.outcome is Outcome.UNKNOWN
    assert verdict.summary == "killed by signal SIGKILL"


def test_command_appends_stderr_and_falls_back_to_it_for_the_summary(tmp_path: Path) -> None:
    both = script(tmp_path, "echo out\necho err >&2\nexit 2\n", "both.sh")
    verdict = command.run(job("command", command=[both]))
    assert (verdict.outcome, verdict.summary) == (Outcome.CRITICAL, "out")
    assert verdict.output == "out\n[stderr]\nerr\n"

    only_err = script(tmp_path, "echo 'it broke' >&2\nexit 2\n", "err.sh")
    assert command.run(job("command", command=[only_err])).summary == "it broke"

    silent = command.run(job("command", command=["true"]))
    assert (silent.outcome, silent.summary, silent.output) == (
        Outcome.OK,
        "exit code 0, no output",
        "",
    )


def test_command_output_is_capped_with_a_marker(tmp_path: Path) -> None:
    path = script(tmp_path, "head -c 5000 /dev/zero | tr '\\0' x\necho\n")
    verdict = command.run(job("command", command=[path], output_limit=1000))
    assert verdict.outcome is Outcome.OK
    assert verdict.output == "x" * 1000 + "\n[... output cut at 1000 of 5001 bytes ...]"
    assert verdict.summary == "x" * 1000


def test_command_substitutes_inside_single_arguments_without_a_shell(tmp_path: Path) -> None:
    args = script(tmp_path, 'echo "$#"\nfor a in "$@"; do echo "[$a]"; done\n')
    verdict = command.run(
        job(
            "command",
            params={"size": "10 GB; rm -rf /"},
            command=[args, "--host={host}", "{ip_address}", "n={vars.note}", "{params.size}"],
            cwd=str(tmp_path),
        )
    )
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.output.splitlines() == [
        "4",
        "[--host=web-01.example.com]",
        "[127.0.0.1]",
        f"[n={NASTY}]",
        "[10 GB; rm -rf /]",
    ]
    assert not (tmp_path / "pwned").exists()


def test_command_leaves_text_that_is_not_a_placeholder_alone() -> None:
    text = '{print $1} ${HOME} {} {0} \\{host} {"a": 1}'
    verdict = command.run(job("command", command=["printf", "%s", text]))
    assert verdict.output == text


@pytest.mark.parametrize(
    ("argument", "named"),
    [
        ("{hostname}", "{hostname}"),
        ("x={vars.nope}", "{vars.nope}"),
        ("{params.size}", "{params.size}"),
        ("{host.name}", "{host.name}"),  # no attribute access
    ],
)
def test_command_unknown_placeholder_is_an_error(argument: str, named: str) -> None:
    verdict = command.run(job("command", command=["echo", argument]))
    assert verdict.outcome is Outcome.ERROR
    assert named in verdict.summary


def test_command_environment_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENGINE", "inherited")
    path = script(
        tmp_path,
        'printf "%s\\n" "$ENTROPY_HOST" "$ENTROPY_IP_ADDRESS" "$ENTROPY_AUDIT" "$ENTROPY_VAR_RACK" '
        '"$ENTROPY_VAR_NOTE" "$ENTROPY_PARAM_MY_SIZE" "$GREETING" "$FROM_ENGINE" "$(pwd)"\n',
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    verdict = command.run(
        job(
            "command",
            params={"my-size": 10},
            command=[path],
            env={"GREETING": "hi {host}", "ENTROPY_HOST": "overridden"},
            cwd=str(workdir),
        )
    )
    assert verdict.output.splitlines() == [
        "web-01.example.com",  # ENTROPY_* win over the script's env
        "127.0.0.1",
        "the_audit",
        "r1",
        NASTY,
        "10",
        "hi web-01.example.com",
        "inherited",
        str(workdir.resolve()),
    ]


def test_shell_command_quotes_every_value(tmp_path: Path) -> None:
    nasty = 'x\' "$(touch pwned2)" `touch pwned3` ;touch pwned4 # \\'
    host = Host("h", "127.0.0.1", "compute", vars={"v": nasty})
    line = "printf '%s\\n' {vars.v} \"dq: {vars.v}\" 'sq: {vars.v}' $(echo {vars.v})"
    verdict = command.run(
        Job(
            "a",
            host,
            Script("a", "command", {"command": line, "shell": True, "cwd": str(tmp_path)}),
            {},
            5.0,
        )
    )
    assert verdict.outcome is Outcome.OK, verdict
    lines = verdict.output.splitlines()
    assert lines[:3] == [nasty, f"dq: {nasty}", f"sq: {nasty}"]
    assert list(tmp_path.iterdir()) == []  # no pwned2, pwned3, pwned4


@pytest.mark.parametrize(
    "line", ["echo `echo {host}`", 'echo "$(echo {host})"', "cat <<EOF\n{host}\nEOF"]
)
def test_shell_command_refuses_placeholders_it_cannot_quote(line: str) -> None:
    verdict = command.run(job("command", command=line, shell=True))
    assert verdict.outcome is Outcome.ERROR
    assert "{host}" in verdict.summary and "$ENTROPY_HOST" in verdict.summary


def test_shell_command_runs_pipes_and_exit_codes() -> None:
    verdict = command.run(job("command", command="echo {host} | tr a-z A-Z; exit 1", shell=True))
    assert (verdict.outcome, verdict.summary) == (Outcome.WARNING, "WEB-01.EXAMPLE.COM")


@pytest.mark.parametrize(
    "keys",
    [
        {"command": "echo hi"},  # a string needs shell: true
        {"command": ["echo"], "shell": True},
        {"command": []},
        {"command": ["echo"], "output_limit": 0},
        {"command": ["echo"], "env": ["A=1"]},
    ],
)
def test_command_bad_keys_are_errors(keys: dict[str, Any]) -> None:
    assert command.run(job("command", **keys)).outcome is Outcome.ERROR


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # a zombie waiting for init to reap it is dead


def test_command_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        # The child keeps the output file open too: the runner must not wait for it.
        f"sleep 60 &\necho $! > {tmp_path}/child.pid\necho started\nsleep 60\n",
    )
    started = time.monotonic()
    verdict = command.run(job("command", timeout=1.0, command=[path]))
    assert time.monotonic() - started < 3
    assert (verdict.outcome, verdict.summary) == (Outcome.TIMEOUT, "timed out after 1s")
    assert verdict.output == "started\n"
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 2
    while not _dead(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _dead(child)
    assert not command._running


def test_kill_all_ends_running_commands() -> None:
    found: list[Result] = []
    worker = threading.Thread(
        target=lambda: found.append(
            command.run(job("command", timeout=30, command=["sleep", "60"]))
        )
    )
    worker.start()
    deadline = time.monotonic() + 5
    while not command._running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert command.kill_all() == 1
    worker.join(5)
    assert not worker.is_alive()
    assert found[0].outcome is Outcome.ERROR
    assert "shutting down" in found[0].summary
    assert command.kill_all() == 0


def test_kill_all_while_a_command_is_starting_kills_it_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C of `audit run` lands between the command's exec and its registration (the
    window is widest under load): kill_all must not miss it, or `audit run` waits for it."""
    real_popen = subprocess.Popen

    def popen_then_interrupted(*args: Any, **kwargs: Any) -> Any:
        proc = real_popen(*args, **kwargs)  # the real process, running
        command.kill_all()  # the signal arrives now, before run() registers it
        return proc

    monkeypatch.setattr(command.subprocess, "Popen", popen_then_interrupted)
    found: list[Result] = []
    sleeper = job("command", timeout=60, command=["sleep", "30"])
    worker = threading.Thread(target=lambda: found.append(command.run(sleeper)))
    worker.start()
    worker.join(5)
    assert not worker.is_alive()  # not left to run its 30 s
    assert found[0].outcome is Outcome.ERROR
    assert "shutting down" in found[0].summary
    assert not command._running


def test_after_kill_all_refusing_new_runs_no_command_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The process is ending (Ctrl-C of `audit run`): what was queued does not start."""
    monkeypatch.setattr(command, "_refusing", False)  # restored after: it is the process's
    assert command.kill_all(refuse_new=True) == 0
    marker = tmp_path / "ran"
    result = command.run(job("command", command=["touch", str(marker)]))
    assert result.outcome is Outcome.ERROR
    assert result.summary == "not run: this process is stopping"
    assert not marker.exists()


def test_command_not_found_or_not_executable_is_an_error(tmp_path: Path) -> None:
    missing = command.run(job("command", command=["no-such-command-entropy"]))
    assert missing.outcome is Outcome.ERROR
    assert "'no-such-command-entropy'" in missing.summary

    path = tmp_path / "not_executable.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    denied = command.run(job("command", command=[str(path)]))
    assert denied.outcome is Outcome.ERROR
    assert str(path) in denied.summary and "ermission denied" in denied.summary

    no_dir = command.run(job("command", command=["true"], cwd=str(tmp_path / "nowhere")))
    assert no_dir.outcome is Outcome.ERROR and "cwd" in no_dir.summary


# --- http --------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect":
            self._reply(302, b"", [("Location", "/")])
        elif self.path == "/missing":
            self._reply(404, b"not here")
        elif self.path == "/slow":
            time.sleep(0.3)
            self._reply(200, b"slow")
        else:
            self._reply(200, b"hello entropy")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = body + b" header=" + self.headers.get("X-Test", "").encode()
        self._reply(201, reply)

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """The base URL of a local HTTP server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    for _ in _serve(server):
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_http_ok_with_metrics(web: str) -> None:
    verdict = http.run(job("http", url=web + "/"))
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.summary.startswith("HTTP 200 OK - 13 bytes in ")
    assert verdict.metrics["status"]["value"] == 200.0
    assert verdict.metrics["time"]["uom"] == "ms" and verdict.metrics["time"]["value"] > 0
    assert verdict.output.endswith("hello entropy")


def test_http_url_placeholders(web: str) -> None:
    port = web.rsplit(":", 1)[1]
    verdict = http.run(job("http", params={"port": port}, url="http://{ip_address}:{params.port}/"))
    assert verdict.outcome is Outcome.OK, verdict
    error = http.run(job("http", url="http://{ip_address}:{params.port}/"))
    assert error.outcome is Outcome.ERROR and "{params.port}" in error.summary


def test_http_unexpected_status_is_critical(web: str) -> None:
    verdict = http.run(job("http", url=web + "/missing"))
    assert verdict.outcome is Outcome.CRITICAL
    assert "HTTP 404" in verdict.summary and "expected status 200" in verdict.summary
    assert http.run(job("http", url=web + "/missing", expect_status=[404])).outcome is Outcome.OK


def test_http_does_not_follow_redirects(web: str) -> None:
    verdict = http.run(job("http", url=web + "/redirect"))
    assert verdict.outcome is Outcome.CRITICAL and "HTTP 302" in verdict.summary
    assert "Location: /" in verdict.output
    followed = http.run(job("http", url=web + "/redirect", expect_status=[200, 302]))
    assert followed.outcome is Outcome.OK
    assert followed.metrics["status"]["value"] == 302.0


def test_http_body_regex(web: str) -> None:
    assert http.run(job("http", url=web + "/", body_regex=r"hello \w+")).outcome is Outcome.OK
    verdict = http.run(job("http", url=web + "/", body_regex="^goodbye"))
    assert verdict.outcome is Outcome.CRITICAL and "'^goodbye'" in verdict.summary
    bad = http.run(job("http", url=web + "/", body_regex="("))
    assert bad.outcome is Outcome.ERROR and "body_regex" in bad.summary


def test_http_latency_thresholds(web: str) -> None:
    slow = http.run(job("http", url=web + "/slow", warning_ms=50))
    assert slow.outcome is Outcome.WARNING and "over warning 50 ms" in slow.summary
    assert slow.metrics["time"]["warn"] == "50"
    slower = http.run(job("http", url=web + "/slow", warning_ms=10, critical_ms=50))
    assert slower.outcome is Outcome.CRITICAL and "over critical 50 ms" in slower.summary
    fast = http.run(job("http", url=web + "/", warning_ms=10_000, critical_ms=20_000))
    assert fast.outcome is Outcome.OK


def test_http_post_with_headers_and_body_templates(web: str) -> None:
    verdict = http.run(
        job(
            "http",
            url=web + "/echo",
            method="post",
            body="host={host}",
            headers={"X-Test": "{vars.rack}"},
            expect_status=201,
            body_regex="^host=web-01.example.com header=r1$",
        )
    )
    assert verdict.outcome is Outcome.OK, verdict


def test_http_timeout_is_critical(web: str) -> None:
    verdict = http.run(job("http", timeout=0.1, url=web + "/slow"))
    assert verdict.outcome is Outcome.CRITICAL
    assert "timed out after 0.1s" in verdict.summary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_connection_refused_is_critical() -> None:
    verdict = http.run(job("http", url=f"http://127.0.0.1:{_free_port()}/"))
    assert verdict.outcome is Outcome.CRITICAL
    assert "connection refused" in verdict.summary


@pytest.mark.parametrize("url", ["file:///etc/passwd", "127.0.0.1/", "http://"])
def test_http_only_http_urls(url: str) -> None:
    verdict = http.run(job("http", url=url))
    assert verdict.outcome is Outcome.ERROR and "url" in verdict.summary


@pytest.fixture(scope="module")
def tls_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a local HTTPS server with a self-signed certificate."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for _ in _serve(server):
        yield f"https://127.0.0.1:{server.server_address[1]}"


def test_http_verifies_tls_unless_told_not_to(tls_web: str) -> None:
    verdict = http.run(job("http", url=tls_web + "/"))
    assert verdict.outcome is Outcome.CRITICAL
    assert "TLS certificate not trusted" in verdict.summary
    unverified = http.run(job("http", url=tls_web + "/", verify_tls=False))
    assert unverified.outcome is Outcome.OK, unverified


# --- tcp ---------------------------------------------------------------------


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_tcp_connects(listening: int) -> None:
    verdict = tcp.run(job("tcp", port=listening))
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.summary.startswith(f"TCP connect to 127.0.0.1:{listening} in ")
    assert verdict.metrics["time"]["uom"] == "ms"


def test_tcp_host_and_port_placeholders(listening: int) -> None:
    verdict = tcp.run(job("tcp", params={"p": listening}, host="{ip_address}", port="{params.p}"))
    assert verdict.outcome is Outcome.OK, verdict


def test_tcp_latency_thresholds(listening: int) -> None:
    verdict = tcp.run(job("tcp", port=listening, warning_ms=0, critical_ms=10_000))
    assert verdict.outcome is Outcome.WARNING and "over warning 0 ms" in verdict.summary
    assert tcp.run(job("tcp", port=listening, critical_ms=0)).outcome is Outcome.CRITICAL


def test_tcp_refused_is_critical() -> None:
    port = _free_port()
    verdict = tcp.run(job("tcp", port=port))
    assert verdict.outcome is Outcome.CRITICAL
    assert verdict.summary == f"127.0.0.1:{port}: connection refused"


@pytest.mark.parametrize("keys", [{"port": 0}, {"port": "ssh"}, {"port": 22, "warning_ms": "x"}])
def test_tcp_bad_keys_are_errors(keys: dict[str, Any]) -> None:
    assert tcp.run(job("tcp", **keys)).outcome is Outcome.ERROR


# --- python ------------------------------------------------------------------


def returns(value: Any) -> Any:
    return staticmethod(lambda host, params: value)


class Returns:
    """Audits returning each kind of value the python runner reads (a dotted path)."""

    none = returns(None)
    true = returns(True)
    false = returns(False)
    word = returns("warning")
    outcome = returns(Outcome.CRITICAL)
    pair = returns(("unknown", "cannot tell"))
    dict = returns({"outcome": "warning", "summary": "s", "output": "o", "metrics": {"n": 3}})
    verdict = returns(Result(Outcome.CRITICAL, "v"))
    bad_word = returns("fine")
    bad_type = returns(42)
    bad_key = returns({"outcome": "ok", "status": "fine"})
    unreachable = returns("unreachable")  # Entropy's word for a failed dependency, not an audit's
    unreachable_result = returns(Result(Outcome.UNREACHABLE, "u"))


def echo(host: Host, params: dict[str, Any]) -> tuple[str, str]:
    return "ok", f"{host.name} {params}"


def boom(host: Host, params: dict[str, Any]) -> None:
    raise ValueError("boom")


def slow(host: Host, params: dict[str, Any]) -> None:
    time.sleep(0.2)


NOT_CALLABLE = 5


def py(name: str, timeout: float = 5.0, params: dict[str, Any] | None = None) -> Job:
    return job("python", timeout, params, function=f"{__name__}:{name}")


@pytest.mark.parametrize(
    ("name", "outcome", "summary"),
    [
        ("none", Outcome.OK, "ok"),
        ("true", Outcome.OK, "ok"),
        ("false", Outcome.CRITICAL, "failed"),
        ("word", Outcome.WARNING, "warning"),
        ("outcome", Outcome.CRITICAL, "critical"),
        ("pair", Outcome.UNKNOWN, "cannot tell"),
        ("dict", Outcome.WARNING, "s"),
        ("verdict", Outcome.CRITICAL, "v"),
        ("bad_word", Outcome.ERROR, "the audit returned outcome 'fine'"),
        ("bad_type", Outcome.ERROR, "the audit returned a int, not a result"),
        ("bad_key", Outcome.ERROR, "the audit returned a dict with unknown keys ['status']"),
        ("unreachable", Outcome.ERROR, "the audit returned unreachable: only Entropy says"),
        ("unreachable_result", Outcome.ERROR, "the audit returned unreachable"),
    ],
)
def test_python_return_values(name: str, outcome: Outcome, summary: str) -> None:
    verdict = python.run(py(f"Returns.{name}"))
    assert verdict.outcome is outcome
    assert verdict.summary.startswith(summary)


def test_python_dict_metrics_numbers_become_metrics() -> None:
    verdict = python.run(py("Returns.dict"))
    assert verdict.output == "o"
    assert verdict.metrics == {
        "n": {"value": 3.0, "uom": "", "warn": None, "crit": None, "min": None, "max": None}
    }


def test_python_gets_the_host_and_the_schedule_params() -> None:
    verdict = python.run(py("echo", params={"warning": 3}))
    assert (verdict.outcome, verdict.summary) == (Outcome.OK, "web-01.example.com {'warning': 3}")
    assert f"{__name__}:echo" in python._functions  # resolved once, then cached


def test_python_exception_is_an_error() -> None:
    verdict = python.run(py("boom"))
    assert (verdict.outcome, verdict.summary) == (Outcome.ERROR, "ValueError: boom")


@pytest.mark.parametrize(
    ("function", "words"),
    [
        ("no_such_module_entropy:f", "cannot import 'no_such_module_entropy'"),
        (f"{__name__}:missing", "has no 'missing'"),
        (f"{__name__}:NOT_CALLABLE", "is not callable"),
        ("no_such_entry_point", "no entry point"),
        ("", "function must be"),
        (["a:b"], "function must be"),
    ],
)
def test_python_bad_function_is_an_error_naming_it(function: Any, words: str) -> None:
    verdict = python.run(job("python", function=function))
    assert verdict.outcome is Outcome.ERROR
    assert words in verdict.summary
    assert repr(function) in verdict.summary


def test_python_entry_point_names(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("example_noop", "entropy.examples:noop", python.GROUP)

    def entry_points(group: str, name: str) -> list[EntryPoint]:
        return [point] if (group, name) == (python.GROUP, point.name) else []

    monkeypatch.setattr(python, "entry_points", entry_points)
    monkeypatch.setattr(python, "_functions", {})
    verdict = python.run(job("python", function="example_noop"))
    assert (verdict.outcome, verdict.summary) == (Outcome.OK, "ok")


def test_python_overrunning_its_timeout_is_reported_when_it_returns() -> None:
    verdict = python.run(py("slow", timeout=0.05))
    assert verdict.outcome is Outcome.TIMEOUT
    assert "over the 0.05s timeout" in verdict.summary
    assert "it returned ok" in verdict.output


def test_examples() -> None:
    def run(name: str, **params: Any) -> Result:
        return python.run(job("python", params=params, function=f"entropy.examples:{name}"))

    assert run("noop").outcome is Outcome.OK
    vms = run("vm_count")
    assert (vms.outcome, vms.summary) == (Outcome.OK, "2 VMs on web-01.example.com")
    assert vms.metrics["vms"]["value"] == 2.0
    assert run("load_average", warning=1e9, critical=2e9).outcome is Outcome.OK
    load = run("load_average", warning=-2, critical=-1)
    assert load.outcome is Outcome.CRITICAL
    assert load.metrics["load1"]["value"] == pytest.approx(os.getloadavg()[0], abs=5)
    assert examples.noop(HOST, {}) is None


# --- run_job end to end ------------------------------------------------------


def test_run_job_records_an_exception_as_error() -> None:
    result = run_job(py("boom"), SystemClock())
    assert result.outcome is Outcome.ERROR and result.summary == "ValueError: boom"
    assert result.started_at is not None and result.finished_at is not None
    assert result.started_at <= result.finished_at


def test_run_job_runs_a_command(tmp_path: Path) -> None:
    path = script(tmp_path, "echo 'PING OK | rta=0.5ms;100;200;0'\n")
    result = run_job(job("command", command=[path]), SystemClock())
    assert (result.outcome, result.summary) == (Outcome.OK, "PING OK")
    assert result.metrics["rta"]["crit"] == "200"
    assert result.duration > 0


# --- the summary is capped at 1 KiB (issue 11, item 9) -----------------------


def test_a_300_kb_one_line_output_gives_a_1_kib_summary(tmp_path: Path) -> None:
    path = script(tmp_path, "head -c 300000 /dev/zero | tr '\\0' 'x'; echo ' | t=1'\n")
    result = run_job(job("command", command=[path]), SystemClock())
    assert result.outcome is Outcome.OK
    assert len(result.summary.encode()) <= 1024
    assert result.summary.startswith("x" * 900)
    # the summary is cut from the kept output's first line
    assert result.summary.endswith(" [... summary cut at 1024 of 65536 bytes]")
    assert len(result.output) > 64 * 1024  # the output keeps its own cap (output_limit)
    assert result.output.endswith("[... output cut at 65536 of 300007 bytes ...]")


def test_every_kind_s_summary_passes_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10,000 bytes: the cut falls between characters, never inside one
    module = "def f(host, params):\n    return ('warning', 'é' * 5000)\n"
    (tmp_path / "long_summary_mod.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_job(job("python", function="long_summary_mod:f"), SystemClock())
    assert result.outcome is Outcome.WARNING
    data = result.summary.encode()
    assert len(data) <= 1024
    assert result.summary.endswith(" [... summary cut at 1024 of 10000 bytes]")
    assert result.summary.startswith("é" * 400)


def test_a_short_summary_is_left_alone() -> None:
    result = run_job(job("command", command=["echo", "OK - fine | t=1"]), SystemClock())
    assert result.summary == "OK - fine"
