"""Process-wide garbage-collector knobs, applied only by a composition root.

Library code (the engine, the scheduler, the stores) never calls these:
they change the whole process, so the program that owns the process
(`entropy engine run`, through entropy.service.compose, and the benchmarks)
decides, behind a config option.
"""

from __future__ import annotations

import gc

# Each audit allocates a few dozen short-lived objects; with the default
# threshold (700) a collection ran every ~20 audits (`python -m bench dispatch`).
ENGINE_THRESHOLD = (50_000, 20, 20)


def tune_for_engine() -> None:
    """Collect young objects far less often: an engine's garbage is acyclic and short-lived."""
    gc.set_threshold(*ENGINE_THRESHOLD)


def freeze_start_up() -> None:
    """Move what start-up made (modules, config, caches) out of the collector's way: it lives
    for good, and a full collection of a worker walked it all (13 ms, bench broker)."""
    gc.freeze()
