"""SSH servers on this machine for `python -m bench ssh`: OpenSSH sshd instances, and
one asyncssh server for idle connections.

sshd: each instance listens on up to 15 ports of 127.0.0.1 (sshd's limit is
16 sockets), so every host of the bench fleet has a port, and so a
connection, of its own, as hosts of a real fleet do. Logins go to the
dedicated user `entropy-ssh-test` (shell /bin/sh, no rc files) when run as
root, else to the current user. openssh-server is installed with apt-get
if missing (as root).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
USER = "entropy-ssh-test"
PORTS_PER_SSHD = 15
HERE = Path(__file__).resolve().parent


class BenchSetupError(RuntimeError):
    """Something the SSH bench needs is missing; the message says what."""


def ensure_sshd() -> None:
    if os.path.exists(SSHD):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchSetupError(f"{SSHD} is missing: apt-get install openssh-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "openssh-server"]
    if subprocess.run(command, capture_output=True, env=env).returncode:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        if subprocess.run(command, capture_output=True, env=env).returncode:
            raise BenchSetupError("cannot install openssh-server with apt-get")


def login_user() -> str:
    if os.geteuid() != 0:
        return getpass.getuser()
    if subprocess.run(["id", USER], capture_output=True).returncode:
        subprocess.run(
            ["useradd", "--system", "--shell", "/bin/sh", "--create-home",
             "--home-dir", f"/var/lib/{USER}", USER],
            check=True, capture_output=True,
        )  # fmt: skip
    subprocess.run(["usermod", "-p", "*", USER], check=True, capture_output=True)
    return USER


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SshdFarm:
    """Enough sshd instances for `ports` ports, all with one host key and one client key."""

    def __init__(self, root: Path, ports: int) -> None:
        ensure_sshd()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the login user reads authorized_keys here
        self.user = login_user()
        self.host_key = keygen(root / "host_key")
        self.client_key = keygen(root / "client_key")
        authorized = root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o644)
        self.ports = free_ports(ports)
        self.known_hosts = root / "known_hosts"
        algorithm, data = self.host_key.with_suffix(".pub").read_text().split()[:2]
        self.known_hosts.write_text(
            "".join(f"[127.0.0.1]:{port} {algorithm} {data}\n" for port in self.ports)
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        Path("/run/sshd").mkdir(exist_ok=True)
        for i in range(0, len(self.ports), PORTS_PER_SSHD):
            config = root / f"sshd_config.{i // PORTS_PER_SSHD}"
            listen = "".join(f"Port {p}\n" for p in self.ports[i : i + PORTS_PER_SSHD])
            config.write_text(
                f"{listen}ListenAddress 127.0.0.1\nHostKey {self.host_key}\nPidFile none\n"
                f"AuthorizedKeysFile {authorized}\nStrictModes no\nPermitRootLogin yes\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                "LogLevel ERROR\nMaxStartups 1000:100:1000\nMaxSessions 100\n"
                "Subsystem sftp internal-sftp\n"
            )
            self.procs.append(
                subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                 stderr=open(root / f"sshd.{i}.log", "wb"), start_new_session=True)  # noqa: SIM115 - closed with the process
            )  # fmt: skip
        deadline = time.monotonic() + 15
        for port in self.ports:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        self.close()
                        raise BenchSetupError(f"sshd did not listen on 127.0.0.1:{port}") from None
                    time.sleep(0.05)

    def close(self) -> None:
        """Stop every instance and everything it forked (sessions and their commands)."""
        for proc in self.procs:
            for pid in [proc.pid, *_descendants(proc.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()
        self.procs = []


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_rss(root: int, name: str | None = None) -> tuple[int, int]:
    """(bytes, processes) of root's process tree; only processes called name if given.

    Bytes are PSS (/proc/PID/smaps_rollup): pages shared by forks (Ansible's
    workers, ssh clients' libraries) are split between them, not counted once each.
    """
    total = count = 0
    for pid in [root, *_descendants(root)]:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            if name is not None and comm != name:
                continue
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss = next(int(line.split()[1]) for line in rollup.splitlines()
                       if line.startswith("Pss:"))  # fmt: skip
        except (OSError, ValueError, IndexError, StopIteration):
            continue
        total += pss * 1024
        count += 1
    return total, count


class IdleServer:
    """bench/peers/asyncssh_server.py in its own process: takes any login, exits 0 on exec."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "peers" / "asyncssh_server.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        try:
            found = json.loads(line)
        except ValueError:
            self.close()
            raise BenchSetupError(f"the asyncssh server did not start: {line!r}") from None
        self.port, self.known_hosts_line = found["port"], found["known_hosts"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()  # it stops when its stdin closes
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
