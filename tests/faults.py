"""Real faults for tests: a database that never answers, a server whose replies stop coming,
a small tmpfs (read-only or full),
and a deadline for code that could block for ever (a FIFO opened for reading).

Mounting needs root (CAP_SYS_ADMIN); where it is not permitted the tests
that need it skip and say why, except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

UNDER_CI = os.environ.get("CI", "").lower() == "true"


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never says a word."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self.first_accepted_at: float | None = None  # time.monotonic()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            self._held.append(conn)  # kept open, never read from nor written to
            if self.first_accepted_at is None:
                self.first_accepted_at = time.monotonic()
            self.accepted += 1

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


@contextlib.contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


class HeldReplies:
    """A TCP proxy on 127.0.0.1 to a real server, that can go silent on the connections open
    at the time of hold(): from then on, what the server sends them is dropped (their requests
    still reach it), as a reply that never comes. Connections made later pass untouched."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self._open: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        threading.Thread(target=self._accept, name="held-replies", daemon=True).start()

    def hold(self) -> None:
        for _, _, held in self._open:
            held.set()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:  # closed
                return
            far = socket.create_connection(self.upstream)
            held = threading.Event()
            self._open.append((near, far, held))
            self.accepted += 1
            for source, sink, gate in ((near, far, None), (far, near, held)):
                threading.Thread(target=_copy, args=(source, sink, gate), daemon=True).start()

    def close(self) -> None:
        """Drop every connection (its peer sees the end at once) and take no more."""
        for sock in (self._listener, *(s for near, far, _ in self._open for s in (near, far))):
            # shutdown first: a thread blocked in accept() or recv() keeps it open otherwise
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _copy(source: socket.socket, sink: socket.socket, held: threading.Event | None) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if held is None or not held.is_set():
                sink.sendall(data)


@contextlib.contextmanager
def held_replies(upstream: tuple[str, int]) -> Iterator[HeldReplies]:
    proxy = HeldReplies(upstream)
    try:
        yield proxy
    finally:
        proxy.close()


class SilentDns:
    """A DNS server on 127.0.0.N:53 (UDP and TCP) that takes every query and never answers,
    and a resolv.conf naming it; `resolving(argv)` runs argv with that resolv.conf
    bind-mounted over /etc/resolv.conf in a mount namespace of its own (unshare -m)."""

    def __init__(self, tmp: Path) -> None:
        self.address = f"127.0.{os.getpid() % 250 + 1}.{secrets.randbelow(250) + 2}"
        try:
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.bind((self.address, 53))
            self._tcp = socket.create_server((self.address, 53))
        except OSError as exc:  # port 53 needs root
            _cannot(f"a DNS server on {self.address}:53: {exc}", "needs root")
        self.resolv_conf = tmp / "resolv.conf"
        # Each look-up would wait 30 s x 5 tries on its own: far past any budget.
        self.resolv_conf.write_text(f"nameserver {self.address}\noptions timeout:30 attempts:5\n")
        threading.Thread(target=self._swallow, daemon=True).start()

    def _swallow(self) -> None:
        while True:
            try:
                self._udp.recvfrom(4096)
            except OSError:  # closed
                return

    def resolving(self, argv: list[str]) -> list[str]:
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        return ["unshare", "-m", "sh", "-c", script, str(self.resolv_conf), *argv]

    def close(self) -> None:
        self._udp.close()
        self._tcp.close()


@contextlib.contextmanager
def silent_dns(tmp: Path) -> Iterator[SilentDns]:
    if shutil.which("unshare") is None:
        _cannot("a mount namespace: no unshare(1)", "util-linux")
    server = SilentDns(tmp)
    try:
        yield server
    finally:
        server.close()


def _cannot(what: str, needs: str) -> None:
    if UNDER_CI:
        pytest.fail(f"cannot set up {what} (CI=true: these tests must run)")
    pytest.skip(f"cannot set up {what} ({needs})")


def _cannot_mount(reason: str) -> None:
    if UNDER_CI:
        pytest.fail(f"cannot mount a tmpfs: {reason} (CI=true: these tests must run)")
    pytest.skip(f"cannot mount a tmpfs ({reason}): needs root with CAP_SYS_ADMIN")


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "4m") -> Iterator[Path]:
    """A fresh tmpfs of `size` mounted at where (created), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "none", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        _cannot_mount(done.stderr.strip() or f"mount exited {done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def fill(where: Path) -> Path:
    """Write a file in where until its filesystem is full; the file, for freeing it later."""
    path = where / "filler"
    with open(path, "wb", buffering=0) as out:
        for size in (65536, 4096, 512):  # smaller writes take what bigger ones left
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return path


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the test if the block takes longer than seconds, even inside a blocked open()/read().

    SIGALRM interrupts the system call, and the handler's exception ends it
    (main thread only, as pytest runs tests).
    """

    def expired(_signum: int, _frame: object) -> None:
        # pytest.fail, not TimeoutError: that is an OSError, which code reading files catches.
        pytest.fail(f"still blocked after {seconds:g}s")

    before = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
