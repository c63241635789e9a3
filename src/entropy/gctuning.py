"""The cyclic garbage collector around bulk work: the program's choice, not the library's.

Library code never changes process-wide state (issue 14): the load, the sync
and the scheduler leave the collector alone. A composition root that knows
it is about to do bulk work may pause it explicitly: `entropy engine run`
around its first load, `entropy sync` and `entropy import`, and the
benchmarks where they measure those.

Why it is worth it: a first start allocates millions of container objects
that live (rows read back, the pairs' index), and the collector walks them
again and again while they are made. Measured on 500,000 pairs (first start,
4 interleaved pairs of runs, 2026-12-02): median 8.8 s with the collector,
7.5 s paused. Nothing made there forms a cycle: reference counting frees it
all the same.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside; the collector as it was after (on if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
