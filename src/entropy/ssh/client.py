"""What worker threads and the CLI call: run a command on a target, check a login.

One SshClient per process (`default()`), built from [ssh] on first use: its
event loop thread and its pool live until the process ends. A worker thread
submits a coroutine and waits for it; the coroutine itself keeps the job's
deadline (the wait in the thread only guards against a stuck loop).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import shlex
import threading
import time
from dataclasses import dataclass
from typing import Any

from .failures import ERROR, STOPPING, TIMEOUT, SshFailure
from .loop import LoopThread
from .settings import SshSettings, Target, configured
from .upload import LocalFile

LOG = logging.getLogger(__name__)
MARGIN = 5.0  # seconds a worker waits past the deadline before it gives up on the loop


@dataclass(slots=True)
class Outcome:
    """What running one command got: how it finished, or why it could not run."""

    finished: Any = None  # remote.Finished
    failure: SshFailure | None = None
    elapsed: float = 0.0


@dataclass(slots=True)
class Login:
    """One `entropy ssh check` answer."""

    target: Target
    failure: SshFailure | None
    elapsed: float
    reused: bool = False


class SshClient:
    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self.thread = LoopThread()
        self._pool: Any = None
        self._running: set[Any] = set()  # remote.Running, for kill_all
        # On the loop, as _running: kills so far (a command whose start a kill overlapped is
        # killed once it runs), and whether this process is ending (no command starts).
        self._kills = 0
        self._refusing = False

    @property
    def pool(self) -> Any:
        """The pool, made on the loop's thread (asyncio objects belong to their loop)."""
        pool = self._pool
        return pool if pool is not None else self.thread.call(self._make_pool())

    async def _make_pool(self) -> Any:
        """On the loop's thread, which makes it once even when workers ask at the same time."""
        from .pool import Pool  # imports asyncssh: only once needed

        if self._pool is None:
            logging.getLogger("asyncssh").setLevel(logging.WARNING)  # INFO: a line per channel
            self._pool = Pool(self.settings)
        return self._pool

    # -- from worker threads -------------------------------------------------------------

    def run(
        self,
        target: Target,
        command: list[str] | str,
        *,
        env: dict[str, str],
        timeout: float,
        limit: int,
        upload: LocalFile | None = None,
    ) -> Outcome:
        """Run command (argv, or shell text) on target within timeout seconds; never raises."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            pool = self.pool
            outcome = self.thread.call(
                self._run(pool, target, command, env, deadline, limit, upload), timeout + MARGIN
            )
        except SshFailure as exc:
            outcome = Outcome(failure=exc)
        except TimeoutError:
            outcome = Outcome(failure=SshFailure(TIMEOUT, f"{target}: the SSH loop did not answer"))
        except Exception as exc:  # a bug here must not take a worker (or the engine) down
            LOG.exception("ssh run on %s failed", target)
            outcome = Outcome(failure=SshFailure(ERROR, f"{target}: {type(exc).__name__}: {exc}"))
        outcome.elapsed = time.monotonic() - started
        return outcome

    async def _run(
        self,
        pool: Any,
        target: Target,
        command: list[str] | str,
        env: dict[str, str],
        deadline: float,
        limit: int,
        upload: LocalFile | None,
    ) -> Outcome:
        from . import remote
        from . import upload as uploads
        from .failures import classify

        if self._refusing:
            raise SshFailure(STOPPING, f"{target}: not run: this process is stopping")
        kills = self._kills
        for attempt in (1, 2):
            async with pool.lease(target, deadline) as lease:
                try:
                    text = command if isinstance(command, str) else shlex.join(command)
                    if upload is not None:
                        path = await uploads.ensure(
                            lease.conn, lease.entry, upload, self.settings.upload_dir
                        )
                        text = shlex.join([path, *command])
                    running = await remote.start(lease.conn, remote.command_line(text, env), limit)
                except SshFailure:
                    raise
                except Exception as exc:  # the connection broke before the command started
                    pool.discard(lease)
                    if lease.fresh or attempt == 2:
                        raise classify(exc, target, self.settings.connect_timeout) from None
                    LOG.info("%s: pooled connection broken (%s); opening a new one", target, exc)
                    continue
                self._running.add(running)
                if self._kills != kills:  # a kill_all() ran while it was starting
                    running.killed = True
                    running.kill()
                try:
                    finished = await running.wait(deadline, str(target))
                finally:
                    self._running.discard(running)
                if upload is not None and finished.code == 127:
                    uploads.forget(lease.entry, upload)  # gone from the host: check next time
                return Outcome(finished)
        raise AssertionError("unreachable")  # pragma: no cover

    def check(self, targets: list[Target], timeout: float) -> list[Login]:
        """Log in to each target (at once, within timeout); one Login each, in order."""
        if not targets:
            return []
        pool = self.pool
        return self.thread.call(self._check_all(pool, targets, timeout))

    async def _check_all(self, pool: Any, targets: list[Target], timeout: float) -> list[Login]:
        # No more at once than the pool holds, so no login waits for room against its clock.
        room = asyncio.Semaphore(self.settings.max_connections)
        return list(await asyncio.gather(*(self._check(pool, t, timeout, room) for t in targets)))

    async def _check(
        self, pool: Any, target: Target, timeout: float, room: asyncio.Semaphore
    ) -> Login:
        async with room:
            return await self._login(pool, target, timeout)

    async def _login(self, pool: Any, target: Target, timeout: float) -> Login:
        started = time.monotonic()
        try:
            async with pool.lease(target, started + timeout) as lease:
                reused = not lease.fresh
            return Login(target, None, time.monotonic() - started, reused)
        except SshFailure as exc:
            return Login(target, exc, time.monotonic() - started)

    def kill_all(self, refuse_new: bool = False) -> int:
        """Stop every running remote command (engine shutdown); how many there were. One
        starting meanwhile is stopped once it runs. refuse_new: none starts after this
        (the process is ending), until allow_new()."""
        if self._pool is None:  # nothing ran yet, and nothing is running
            self._refusing = self._refusing or refuse_new
            return 0
        try:
            return self.thread.call(self._kill(refuse_new), 5)
        except TimeoutError:  # a stuck loop: the commands' own timeouts still hold
            return 0

    def allow_new(self) -> None:
        """Commands may start again after kill_all(refuse_new=True)."""
        self._refusing = False  # one assignment: safe from any thread, and never waits

    async def _kill(self, refuse_new: bool = False) -> int:  # on the loop: as _running
        self._kills += 1
        self._refusing = self._refusing or refuse_new
        for item in self._running:
            item.killed = True
            item.kill()
        return len(self._running)

    def close(self) -> None:
        """Close the connections and stop the loop (at exit, or between tests)."""
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self.thread.call(self._pool.close(), 5)
            self._pool = None
        self.thread.stop()


_lock = threading.Lock()
_client: SshClient | None = None


def default() -> SshClient:
    """This process's client, built from [ssh] the first time (EntropyError if it is bad)."""
    global _client
    with _lock:
        if _client is None:
            _client = SshClient(configured())
            atexit.register(_client.close)
        return _client


def reset(settings: SshSettings | None = None) -> SshClient | None:
    """Close this process's client; with settings, start a new one on them (tests, bench)."""
    global _client
    with _lock:
        old, _client = _client, None
        if settings is not None:
            _client = SshClient(settings)
            atexit.register(_client.close)
    if old is not None:
        old.close()
    return _client


def kill_all(refuse_new: bool = False) -> int:
    """Stop the running remote commands of this process's client, if it has one."""
    client = _client
    return 0 if client is None else client.kill_all(refuse_new)


def allow_new() -> None:
    """Undo kill_all(refuse_new=True) on this process's client, if it has one."""
    client = _client
    if client is not None:
        client.allow_new()
