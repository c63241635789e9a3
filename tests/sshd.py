"""Real SSH servers for tests: OpenSSH's sshd on 127.0.0.1, and asyncssh fault servers.

`Sshd` runs `/usr/sbin/sshd -D -e -f CONFIG` in the foreground on a free port
with a fresh ed25519 host key, letting one client key in; its log (stderr)
says how many logins and sessions it served. openssh-server (and the
monitoring plugins the tests run "remotely") are installed with apt-get when
missing; without root or network the tests skip saying why, except under
CI=true, where they fail.

As root, logins go to a dedicated user `entropy-ssh-test` (shell /bin/sh,
no rc files), so the machine's root dotfiles neither slow nor change what
a test sees; otherwise to the current user.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

UNDER_CI = os.environ.get("CI", "").lower() == "true"
SSHD = "/usr/sbin/sshd"
TEST_USER = "entropy-ssh-test"
_installed: set[str] = set()


def unavailable(reason: str) -> None:
    if UNDER_CI:
        pytest.fail(f"{reason} (CI=true: SSH tests must run)")
    pytest.skip(reason)


def ensure_package(path: str, package: str) -> None:
    """Install the Debian package that provides path, if it is missing (skip if we can't)."""
    if os.path.exists(path) or package in _installed:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        unavailable(f"{path} is missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", package]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:  # maybe the package lists are missing: fetch them once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0 or not os.path.exists(path):
        unavailable(f"cannot install {package}: {done.stderr.strip()[-300:]}")
    _installed.add(package)


def login_user() -> str:
    """The user tests log in as: a dedicated one with a plain /bin/sh when we are root."""
    if os.geteuid() != 0:
        return getpass.getuser()
    if subprocess.run(["id", TEST_USER], capture_output=True).returncode != 0:
        added = subprocess.run(
            ["useradd", "--system", "--shell", "/bin/sh", "--create-home",
             "--home-dir", f"/var/lib/{TEST_USER}", TEST_USER],
            capture_output=True,
        )  # fmt: skip
        # Another xdist worker's SSH test may have added it just now: that is fine too.
        there = subprocess.run(["id", TEST_USER], capture_output=True).returncode == 0
        if added.returncode != 0 and not there:
            added.check_returncode()
    # A locked password ('!') makes sshd refuse even key logins without PAM; '*' does not.
    subprocess.run(["usermod", "-p", "*", TEST_USER], check=True, capture_output=True)
    return TEST_USER


def home_of(user: str) -> Path:
    import pwd

    return Path(pwd.getpwnam(user).pw_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    """A fresh ed25519 key pair at path (and path.pub)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class Sshd:
    """OpenSSH's sshd in the foreground, as a test's remote host."""

    def __init__(self, client_key: Path, port: int | None = None, extra: str = "") -> None:
        ensure_package(SSHD, "openssh-server")
        # Not under pytest's tmp_path: the login user must read authorized_keys (0700 dirs).
        self.root = root = Path(tempfile.mkdtemp(prefix="entropy-sshd-"))
        self.port = port or free_port()
        self.host_key = (
            keygen(root / "host_key") if not (root / "host_key").exists() else (root / "host_key")
        )
        self.user = login_user()
        authorized = root / "authorized_keys"
        authorized.write_text(client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o644)
        root.chmod(0o755)
        self.config = root / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile none\nAuthorizedKeysFile {authorized}\nStrictModes no\n"
            "PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nLogLevel VERBOSE\nMaxStartups 200\nMaxSessions 50\n"
            "Subsystem sftp internal-sftp\n" + extra
        )
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"sshd did not listen on {self.port}")

    def stop(self) -> None:
        """Kill sshd and everything it forked (sessions, their commands): a host going down."""
        if self.proc is None:
            return
        family = _descendants(self.proc.pid)
        for pid in [self.proc.pid, *family]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def logins(self) -> int:
        """How many logins sshd accepted so far (one per connection)."""
        return self.log.read_text(errors="replace").count("Accepted publickey for")

    def sessions(self) -> int:
        return self.log.read_text(errors="replace").count("Starting session:")

    def known_hosts_line(self, *names: str) -> str:
        pub = self.host_key.with_suffix(".pub").read_text().split()[:2]
        patterns = ",".join(f"[{name}]:{self.port}" for name in names)
        return f"{patterns} {' '.join(pub)}\n"


def _descendants(root: int) -> list[int]:
    """Every process below root, by parent pid (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_gone(pid: int) -> bool:
    """True once pid has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


class FaultServer:
    """An asyncssh server on its own loop thread, misbehaving on purpose.

    mode: "slow_auth" (logins take `delay` seconds), "drop" (accepts any login,
    prints a line on exec, then drops the TCP connection), "ok" (accepts any
    login, runs nothing: for holding idle connections).
    """

    def __init__(self, mode: str, delay: float = 30.0) -> None:
        import asyncssh

        self.mode, self.delay = mode, delay
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.public_key = key.export_public_key().decode()
        server = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                self.conn = conn

            async def begin_auth(self, username: str) -> bool:
                if server.mode == "slow_auth":
                    await asyncio.sleep(server.delay)
                return False  # no authentication needed

        async def process(proc: Any) -> None:
            proc.stdout.write("started\n")
            await asyncio.sleep(0.2)
            proc.channel.get_connection().abort()  # the network goes: no exit status

        async def listen() -> Any:
            return await asyncssh.create_server(
                Server, "127.0.0.1", self.port, server_host_keys=[key],
                process_factory=process, keepalive_interval=0,
            )  # fmt: skip

        self.acceptor = self.call(listen())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def known_hosts_line(self) -> str:
        algorithm, data = self.public_key.split()[:2]
        return f"[127.0.0.1]:{self.port} {algorithm} {data}\n"

    def close(self) -> None:
        async def stop() -> None:  # on the server's own loop: asyncio is not thread-safe
            self.acceptor.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # a login still sleeping in begin_auth, say
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def silent_listener() -> tuple[socket.socket, int]:
    """A socket that accepts TCP (the kernel's backlog) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
