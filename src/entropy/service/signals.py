"""SIGINT and SIGTERM: what they do to a command, and to a running engine.

Installed by the composition root (the CLI's start, EngineProcess.run),
never by library code: handlers are the whole process's.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ..runners import allow_new as allow_new_runs
from ..runners import kill_all as kill_all_runs

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM ended a command; raised in the main thread by the signal handler.

    A BaseException, so no `except Exception` on the way out swallows it.
    """

    def __init__(self, signum: int, during: str = "") -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}{during}")


def _interrupt(signum: int, _frame: Any) -> None:
    # `audit run` waits for its commands (local and ssh): end them, and start no more.
    kill_all_runs(refuse_new=True)
    raise Interrupted(signum)


def raise_on_signals() -> Callable[[], None]:
    """Ctrl-C and SIGTERM end any command at once, with a message; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach only the main thread (a test may call from another)
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _interrupt)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        allow_new_runs()  # the interrupted command is over (in-process callers go on)

    return restore


class Stoppable(Protocol):
    started: bool

    def stop(self) -> None: ...


def stop_on_signals(
    engine: Stoppable,
    on_notice: Callable[[str], None],
    leave: Callable[[int], None],
    what: str = "engine",
    unfinished: str = "unrecorded audits run again after their lease",
) -> None:
    """SIGINT/SIGTERM: during start-up, leave at once; then stop gracefully.

    Once running, the first signal stops the engine gracefully (running
    audits get shutdown_grace), the second ends the grace period now, a
    third leaves at once (`leave(status)`): what is not recorded runs again
    after its lease. `what` and `unfinished` word the messages for another
    main job (a worker: its unfinished jobs go back to the broker).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    received = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not engine.started:  # e.g. connecting to a database that does not answer
            raise Interrupted(signum, f" during start-up; the {what} did not start")
        received.append(signum)
        if len(received) <= 2:
            engine.stop()
            return
        name = signal.Signals(signum).name
        on_notice(f"entropy: {name} a third time: leaving now; {unfinished}")
        kill_all_runs()
        leave(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
