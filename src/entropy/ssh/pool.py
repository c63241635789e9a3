"""SSH connections, opened on demand and shared by every audit and repair on a host.

One connection per Target (address, port, user, jump), carrying up to
max_sessions_per_host commands at once; more wait their turn, within their
own deadline. At most max_connections are open: past it the least recently
used idle one is closed, and when none is idle a new target waits. A
connection with nothing running is closed after idle_timeout. A connection
that broke (sshd restarted, the network dropped it) leaves the pool as soon
as asyncssh notices; one found broken when a command starts is replaced once
(see client.py).

Everything here runs on the SSH loop's thread, so no locks: the loop is the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from .failures import BUSY, CONFIG, TIMEOUT, SshFailure, classify
from .hostkeys import HostKeyCheck, KnownHosts
from .settings import SshSettings, Target


@dataclass(eq=False)
class Entry:
    """One target: its connection (or the task opening it), its session slots, its timer."""

    target: Target
    slots: asyncio.Semaphore
    conn: Any = None  # asyncssh.SSHClientConnection once open
    jump: Entry | None = None  # the jump host conn is tunnelled through (held while it lives)
    opening: asyncio.Future[Any] | None = None
    busy: int = 0  # sessions running, plus connections tunnelled through this one
    idle_timer: asyncio.TimerHandle | None = None
    last_used: float = 0.0
    opened: int = 0  # connections opened for this target, ever (reuse shows as 1)
    uploaded: set[str] = field(default_factory=set)  # content hashes known to be there
    upload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(eq=False)
class Lease:
    """A session slot on an open connection, held for one command (see Pool.lease)."""

    entry: Entry
    conn: Any
    fresh: bool  # opened for this lease: a failure on it is not a stale connection's


class Pool:
    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self.known = KnownHosts(settings.known_hosts_path)
        self.entries: dict[Any, Entry] = {}
        self.open = 0  # connections open or opening
        self._room = asyncio.Condition()  # notified when a connection closes or goes idle
        self._tasks: set[asyncio.Future[Any]] = set()
        # None: no ~/.ssh/config unless asked for (asyncssh reads it by default).
        self._config = [str(Path(s).expanduser()) for s in [settings.config_file] if s] or None
        # Read once here, not at every connection; () lets asyncssh find its defaults
        # (an agent, ~/.ssh/id_*, or IdentityFile from the config file).
        keys: list[Any] = []
        for path in settings.identity_files:
            try:
                keys += asyncssh.load_keypairs(str(Path(path).expanduser()))
            except (OSError, asyncssh.KeyImportError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                why = f"[ssh] identity_files: cannot use {path}: {reason}"
                raise SshFailure(CONFIG, why) from None
        self._keys: Any = keys or ()  # a list of key pairs (a tuple would read as key, cert)
        # AES-GCM first (hardware AES): half the CPU of chacha20-poly1305 per packet here.
        # A config file's Ciphers, if one is read, is left to decide.
        self._ciphers: Any = () if self._config else _ciphers()

    # -- leases -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, target: Target, deadline: float) -> AsyncIterator[Lease]:
        """A session slot on target's connection (opened if need be) until the block ends."""
        entry = self._entry(target)
        await self._take_slot(entry, deadline)
        try:
            fresh = entry.conn is None
            conn = await self._connection(entry, deadline)
            self._hold(entry)
            try:
                yield Lease(entry, conn, fresh)
            finally:
                self._release(entry)
        finally:
            entry.slots.release()

    def discard(self, lease: Lease) -> None:
        """The lease's connection is broken: drop it, so the next lease opens a new one."""
        if lease.entry.conn is lease.conn:
            self._forget(lease.entry)
        lease.conn.abort()

    async def _take_slot(self, entry: Entry, deadline: float) -> None:
        try:
            await asyncio.wait_for(entry.slots.acquire(), _left(deadline))
        except TimeoutError:
            raise SshFailure(
                BUSY,
                f"{entry.target}: {self.settings.max_sessions_per_host} commands were "
                "already running there (max_sessions_per_host) until the timeout",
            ) from None

    def _hold(self, entry: Entry) -> None:
        entry.busy += 1
        self._touch(entry)

    def _release(self, entry: Entry) -> None:
        entry.busy -= 1
        self._touch(entry)

    # -- connections --------------------------------------------------------------------

    def _entry(self, target: Target) -> Entry:
        entry = self.entries.get(target.key)
        if entry is None:
            entry = Entry(target, asyncio.Semaphore(self.settings.max_sessions_per_host))
            self.entries[target.key] = entry
        return entry

    async def _connection(self, entry: Entry, deadline: float) -> Any:
        """entry's open connection; opened (once, shared by whoever waits) if there is none."""
        if entry.conn is not None:
            return entry.conn
        if entry.opening is None:
            entry.opening = asyncio.ensure_future(self._open(entry, deadline))
            entry.opening.add_done_callback(_retrieved)  # waiters may all have given up
        try:
            return await asyncio.wait_for(asyncio.shield(entry.opening), _left(deadline) + 0.5)
        except TimeoutError:
            raise SshFailure(
                TIMEOUT, f"{entry.target}: no SSH login before the audit's timeout"
            ) from None

    async def _open(self, entry: Entry, deadline: float) -> Any:
        """Open entry's connection, through its jump host's if it has one."""
        target = entry.target
        try:
            await self._make_room(target, deadline)
        except BaseException:
            entry.opening = None
            raise
        jump = None
        try:
            tunnel: Any = ()
            if target.jump is not None:
                jump = self._entry(target.jump)
                tunnel = await self._connection(jump, deadline)
                self._hold(jump)  # the jump host stays open while this connection lives
            timeout = min(self.settings.connect_timeout, _left(deadline))
            check = HostKeyCheck(target, self.known, self.settings.accept_new_host_keys)
            try:
                conn = await asyncssh.connect(
                    target.address,
                    target.port,
                    tunnel=tunnel,
                    config=self._config,
                    client_keys=self._keys,
                    encryption_algs=self._ciphers,
                    keepalive_interval=self.settings.keepalive_interval or None,
                    keepalive_count_max=self.settings.keepalive_count_max,
                    username=target.user,
                    known_hosts=check.known_hosts,
                    client_factory=lambda: _Client(self, entry, check),
                    connect_timeout=timeout,
                )
            except asyncssh.HostKeyNotVerifiable as exc:
                raise check.failure() or classify(exc, target, timeout) from None
            except Exception as exc:
                raise classify(exc, target, timeout) from None
            check.remember()
        except BaseException:
            entry.opening = None
            self.open -= 1
            if jump is not None and tunnel:
                self._release(jump)
            await self._notify()
            raise
        entry.conn, entry.jump, entry.opening = conn, jump, None
        entry.opened += 1
        return conn

    async def _make_room(self, target: Target, deadline: float) -> None:
        """Count one more connection, closing an idle one or waiting when at max_connections."""
        async with self._room:
            while self.open >= self.settings.max_connections:
                idle = [e for e in self.entries.values() if e.conn is not None and e.busy == 0]
                if idle:
                    self._close(min(idle, key=lambda e: e.last_used))
                    continue
                try:
                    await asyncio.wait_for(self._room.wait(), _left(deadline))
                except TimeoutError:
                    raise SshFailure(
                        BUSY,
                        f"{target}: all {self.settings.max_connections} connections "
                        "(max_connections) stayed busy until the timeout",
                    ) from None
            self.open += 1

    def _touch(self, entry: Entry) -> None:
        """Restart entry's idle clock: closed idle_timeout after its last session ends."""
        entry.last_used = time.monotonic()
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None
        if entry.busy == 0 and entry.conn is not None:
            if self.settings.idle_timeout <= 0:
                self._close(entry)
                return
            loop = asyncio.get_running_loop()
            entry.idle_timer = loop.call_later(
                self.settings.idle_timeout, self._close_if_idle, entry
            )
            if self.open >= self.settings.max_connections:
                self._spawn(self._notify())  # an idle connection is room for another

    def _close_if_idle(self, entry: Entry) -> None:
        entry.idle_timer = None
        if entry.busy == 0:
            self._close(entry)

    def _close(self, entry: Entry) -> None:
        conn = entry.conn
        if conn is not None:
            self._forget(entry)
            conn.close()

    def _forget(self, entry: Entry) -> None:
        """entry's connection is gone (closed, broken): free its place in the pool."""
        conn, entry.conn = entry.conn, None
        if conn is None:
            return
        self.open -= 1
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None
        jump, entry.jump = entry.jump, None
        if jump is not None:
            self._release(jump)
        self._spawn(self._notify())

    def lost(self, entry: Entry, conn: Any) -> None:
        """asyncssh says conn is closed (by us, the server, or the network)."""
        if entry.conn is conn:
            self._forget(entry)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # a task nobody holds may be collected before it runs
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        async with self._room:
            self._room.notify_all()

    async def close(self) -> None:
        """Close every connection (at exit), waiting a little for them to go."""
        conns = [e.conn for e in self.entries.values() if e.conn is not None]
        for entry in list(self.entries.values()):
            self._close(entry)
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2)

    def stats(self) -> dict[str, int]:
        """Connections open now, targets seen, connections opened ever, targets in use."""
        return {
            "open": self.open,
            "targets": len(self.entries),
            "opened": sum(e.opened for e in self.entries.values()),
            "busy": sum(1 for e in self.entries.values() if e.busy),
        }


def _ciphers() -> list[str]:
    found = [alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()]
    return sorted(found, key=lambda alg: "-gcm@" not in alg)  # stable: GCM first, rest as is


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


class _Client(asyncssh.SSHClient):
    """asyncssh's callbacks for one connection: the host key check, and its end."""

    def __init__(self, pool: Pool, entry: Entry, check: HostKeyCheck) -> None:
        self.pool, self.entry, self.check = pool, entry, check
        self.conn: Any = None

    def connection_made(self, conn: Any) -> None:
        self.conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.pool.lost(self.entry, self.conn)

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        return self.check.validate(key)
