"""Pause the cyclic garbage collector around bulk work.

Loading 100,000 pairs allocates millions of acyclic objects; the collector
walks them all several times for nothing (0.9 s of a 1.4 s load, measured
by `python -m bench sync`). Reference counting frees them anyway.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
