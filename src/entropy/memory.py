"""Give memory back to the operating system after bulk work.

A refresh at a million pairs allocates and frees about a gigabyte of short
lived objects (YAML nodes, rows, the pairs before they are compacted).
glibc keeps the freed pages for later; malloc_trim(0) returns the free ones
(also in the middle of the heap), so what the engine holds is what it uses.
Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def give_back_free_memory() -> bool:
    """malloc_trim(0) where glibc has it; True if it ran."""
    trim = _libc()
    if trim is None:
        return False
    trim(0)
    return True
