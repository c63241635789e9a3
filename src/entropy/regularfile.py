"""Open a definitions file only if it is a regular file.

A named pipe where hosts.yaml should be blocks open() until a writer comes,
for ever; /dev/zero or /dev/urandom reads without end; a directory or a
symlink loop fails with a bare errno. The type is checked before opening,
and the file is opened with O_NONBLOCK (which a regular file ignores) and
checked again on the open descriptor, so a file swapped in between cannot
block either.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """The path is there, but is not a regular file (or a symlink to one)."""


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def check_regular(path: Path | str, mode: int) -> None:
    """Raise NotRegularFile when `mode` (of path) is not a regular file's."""
    if not stat.S_ISREG(mode):
        raise NotRegularFile(errno.EINVAL, f"is {_kind(mode)}, not a regular file", str(path))


def open_regular(path: Path | str) -> BinaryIO:
    """The file opened for reading in binary; NotRegularFile (an OSError) if it is not one.

    Other failures are the OSError open() raises (not found; ELOOP for a symlink loop).
    """
    check_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        check_regular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def describe_os_error(exc: OSError) -> str:
    """What went wrong reading a file, in words ("is a named pipe (FIFO), not a regular file")."""
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop (too many levels of symbolic links)"
    return exc.strerror or str(exc)


def not_regular_reason(path: Path | str) -> str | None:
    """Why path cannot be read as a definitions file ("not found", "is a directory, ..."),
    or None when it is a regular file."""
    try:
        check_regular(path, os.stat(path).st_mode)
    except FileNotFoundError:
        return "not found"
    except OSError as exc:
        return describe_os_error(exc)
    return None
