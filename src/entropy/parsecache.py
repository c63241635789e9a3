"""Parsed definitions files, kept while each file stays the same.

An incremental refresh re-reads only the files that changed: a file whose
stat (mtime, size, inode, ctime) is unchanged is not read at all; one whose
stat changed but whose content hash did not (touched, or written back the
same) is not parsed again. What a file gives is kept only when parsing it
found no problem, so a broken file is read again, and reported again,
every time. Whatever comes from here still goes through the whole-catalog
validation (build_catalog) on every load.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .definitions import Problems
from .regularfile import open_regular

T = TypeVar("T")
_READ = 1 << 20


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def _digest(path: Path) -> bytes | None:
    digest = hashlib.blake2b(digest_size=20)
    try:
        with open_regular(path) as file:  # never a FIFO: it would block for ever
            while block := file.read(_READ):
                digest.update(block)
    except OSError:
        return None
    return digest.digest()


class ParseCache:
    """path -> (stat, content hash, what parsing it gave)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, ...] | None, bytes | None, Any]] = {}
        self.parsed = 0  # files parsed by the latest load (for logs and tests)

    def start(self) -> None:
        self.parsed = 0

    def get(self, path: Path, problems: Problems, parse: Callable[[], T],
            copy: Callable[[T], T]) -> T:  # fmt: skip
        """What parse() gives for path, from the cache when the file is unchanged.

        copy: a shallow copy handed out, so a caller changing what it got
        (a dict of hosts) never changes the cached one.
        """
        name = str(path)
        stat = _stat_key(path)
        entry = self._entries.get(name)
        if entry is not None and stat is not None and entry[0] == stat:
            return copy(entry[2])
        digest = _digest(path) if stat is not None else None
        if entry is not None and digest is not None and entry[1] == digest:
            self._entries[name] = (stat, digest, entry[2])
            return copy(entry[2])
        before = (len(problems.items), len(problems.unreadable))
        value = parse()
        self.parsed += 1
        if (len(problems.items), len(problems.unreadable)) == before and digest is not None:
            self._entries[name] = (stat, digest, value)
        else:
            self._entries.pop(name, None)
        return copy(value)

    def forget_others(self, keep: set[str]) -> None:
        """Drop the entries of files no longer read (a removed schedule file)."""
        for name in list(self._entries):
            if name not in keep:
                del self._entries[name]
