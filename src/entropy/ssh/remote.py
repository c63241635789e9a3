"""One command on an SSH connection: wrapped so that it dies with its channel.

sshd does not kill a command without a pty when its channel closes: a hung
check would outlive its timeout, its engine, even a dropped connection. So
every command runs under a small POSIX sh wrapper. A background watcher
blocks reading the channel's stdin; when that reaches EOF (we send it at the
timeout, and sshd closes it when the channel or the connection goes), the
watcher kills the session's process group (sshd makes each session its
own), command and children included. When the command ends on its own the
wrapper stops the watcher first, so anything it left running is left alone,
as with a local command. At the timeout we also send the `signal` request
(OpenSSH >= 7.9 kills the session's process group on it).

The command gets /dev/null as its stdin. Output is kept up to the limit as
it arrives and only counted beyond it, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import time
from dataclasses import dataclass
from typing import Any

import asyncssh

from .failures import DROPPED, SshFailure

# $1 is the command line. The watcher reads fd 3 (the channel's stdin); everything
# else gets /dev/null as stdin. The EXIT trap stops the watcher however the command ends.
WRAPPER = (
    "exec 3<&0 </dev/null\n"
    "{ while read -r _ <&3; do :; done; kill -9 0; } >/dev/null 2>&1 &\n"
    "w=$!\n"
    "exec 3<&-\n"
    "trap 'kill -9 $w 2>/dev/null' EXIT\n"
    'eval "$1"\n'
)
KILL_GRACE = 1.0  # seconds to wait for the channel to close once a command is killed


def command_line(text: str, env: dict[str, str]) -> str:
    """What sshd gets: the wrapper under /bin/sh, env set, text as its one argument."""
    assigned = "".join(shlex.quote(f"{name}={value}") + " " for name, value in env.items())
    runner = f"env {assigned}sh" if env else "sh"
    return f"exec {runner} -c {shlex.quote(WRAPPER)} entropy {shlex.quote(text)}"


@dataclass(slots=True)
class Finished:
    """How a remote command ended; output already cut to the limit."""

    code: int | None  # exit status, or -signal number; None when it never said
    signal_name: str | None
    stdout: bytes
    stdout_total: int
    stderr: bytes
    stderr_total: int
    timed_out: bool = False
    killed: bool = False  # by kill_all (the engine is stopping)
    dropped: SshFailure | None = None  # the connection went while it ran


class _Session(asyncssh.SSHClientSession[bytes]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.totals = [0, 0]
        self.status: int | None = None
        self.signal_name: str | None = None
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes, datatype: Any) -> None:
        err = datatype == asyncssh.EXTENDED_DATA_STDERR
        buffer = self.stderr if err else self.stdout
        room = self.limit - len(buffer)
        if room > 0:
            buffer += data[:room]
        self.totals[err] += len(data)

    def exit_status_received(self, status: int) -> None:
        self.status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.signal_name = signal

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


class Running:
    """A command started on a channel; `kill()` stops it from the loop's thread."""

    def __init__(self, chan: Any, session: _Session) -> None:
        self.chan, self.session = chan, session
        self.killed = False

    def kill(self) -> None:
        """EOF on stdin (the wrapper kills its group), the signal request, then close."""
        for step in (self.chan.write_eof, lambda: self.chan.send_signal("KILL")):
            try:
                step()
            except Exception:  # the channel is already closing: that is the goal
                continue

    async def wait(self, deadline: float, target: str) -> Finished:
        session = self.session
        timed_out = False
        try:
            lost = await asyncio.wait_for(
                asyncio.shield(session.closed), max(deadline - time.monotonic(), 0)
            )
        except TimeoutError:
            timed_out = True
            self.kill()
            try:
                lost = await asyncio.wait_for(asyncio.shield(session.closed), KILL_GRACE)
            except TimeoutError:
                lost = None
            self.chan.close()
        code: int | None = session.status
        if code is None and session.signal_name is not None:
            code = -_signal_number(session.signal_name) or None  # None: a signal we can't name
        dropped = None
        if code is None and session.signal_name is None and not timed_out and not self.killed:
            why = f": {lost}" if lost else ""
            dropped = SshFailure(
                DROPPED, f"{target}: the connection dropped while the command ran{why}"
            )
        return Finished(
            code,
            session.signal_name,
            bytes(session.stdout),
            session.totals[0],
            bytes(session.stderr),
            session.totals[1],
            timed_out=timed_out,
            killed=self.killed,
            dropped=dropped,
        )


async def start(conn: Any, command: str, limit: int) -> Running:
    """Open a session channel on conn and start command on it (raises if conn is broken)."""
    chan, session = await conn.create_session(lambda: _Session(limit), command, encoding=None)
    return Running(chan, session)


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 0
