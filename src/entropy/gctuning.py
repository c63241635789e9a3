"""Process-wide garbage-collector knobs, applied only by a composition root.

Library code (the engine, the scheduler, the load and the sync, the stores)
never calls these: they change the whole process, so the program that owns
the process decides (`entropy engine run` through entropy.service.compose,
`entropy sync`/`import`, `entropy worker run`, and the benchmarks).

Why each is worth it:
- tune_for_engine: each audit allocates a few dozen short-lived objects;
  with the default threshold (700) a collection ran every ~20 audits
  (`python -m bench dispatch`).
- collector_paused: a first start allocates millions of container objects
  that live (rows read back, the pairs' index), and the collector walks them
  again and again while they are made. Measured on 500,000 pairs (first
  start, 4 interleaved pairs of runs, 2026-12-02): median 8.8 s with the
  collector, 7.5 s paused. Nothing made there forms a cycle: reference
  counting frees it all the same.
- freeze_start_up: what a worker's start-up made lives for good, and a full
  collection walked it all (13 ms, `python -m bench broker`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

ENGINE_THRESHOLD = (50_000, 20, 20)


def tune_for_engine() -> None:
    """Collect young objects far less often: an engine's garbage is acyclic and short-lived."""
    gc.set_threshold(*ENGINE_THRESHOLD)


def freeze_start_up() -> None:
    """Move what start-up made (modules, config, caches) out of the collector's way."""
    gc.freeze()


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
