"""Kill the audit commands of a process that died, kill -9 included.

runners/command.py starts this once per process that runs commands, as
`python -I -S reaper.py PID`, and keeps the write end of its stdin. Each
command runs in a process group of its own, announced here as `+PGID`
when it starts and `-PGID` when it has ended. End of file on stdin means
that process is gone (the kernel closed the pipe, however it died): every
group still announced is killed with SIGKILL, children and grandchildren
included, and this exits. So a command never outlives its engine, and an
engine that takes over its rows never runs a command a second time while
the first still runs.

Standalone: no imports beyond the standard library, so it starts in a
few milliseconds with no site packages.
"""

from __future__ import annotations

import contextlib
import os
import signal


def main() -> None:
    # Signals for the engine's terminal or service are not for us: we end with its pipe.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    groups: set[int] = set()
    pending = b""
    while chunk := os.read(0, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    for pgid in groups:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.killpg(pgid, signal.SIGKILL)


if __name__ == "__main__":
    main()
