"""A full re-sync in a process of its own, so the engine's process keeps its GIL and memory.

Every full_resync_interval an engine compares every audit row with the
definitions and puts right what other hands changed. At a million pairs that
is seconds of Python work and hundreds of MB: in the engine's process it
held the GIL against the engine loop (p99 lateness 300 ms during a refresh,
docs/performance.md) and raised its RSS for good. Here a spawned child
loads, validates and syncs, and answers with what the table needs: the
(audit, host) of every row it added, removed, re-timed or (dis|en)abled.
The engine then re-reads only those rows (an incremental refresh widened
to them). The child's memory goes back to the system when it exits.

A backend the child cannot open again from its URL (the memory backend, a
store handed in by a test) is re-synced in the engine's process instead.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from oslo_config import cfg

from .backends import Backend, Capability
from .config import list_opts, load_conf
from .errors import BackendError, ConfigError, EntropyError, ValidationError
from .gctuning import collector_paused
from .model import SyncReport
from .removal import RemovalRefused

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ResyncJob:
    """What the child needs: the options in force, the backend's URL, when and who."""

    options: tuple[tuple[str | None, str, Any], ...]
    url: str
    now: datetime  # the engine's clock when the job was made ...
    actor: str
    wall: float = 0.0  # ... and time.time() then: the child reads its rows later

    def now_in_child(self) -> datetime:
        """The engine's clock moved on by the wall time since (the rows are read now)."""
        return self.now + timedelta(seconds=max(time.time() - self.wall, 0.0))


def backend_url(backend: Backend) -> str | None:
    """The URL `fetch()` opens this backend from again, or None if it cannot be."""
    source, name = backend.definitions, backend.name
    if name == "memory" or not backend.state.can(Capability.PERSISTENT):
        return None
    if backend.state.url != backend.state_url():
        return None  # a store handed in: the child would open another one
    if name in ("dir", "file"):
        # dir and file sources have a path; naming their classes here would import a
        # concrete backend (tests/unit/test_layering.py).
        return f"{name}:{source.path}"  # type: ignore[attr-defined]
    if name in ("sqlalchemy", "mongodb"):
        return backend.state_url()
    return None


def job_for(backend: Backend, url: str, now: datetime, actor: str) -> ResyncJob:
    return ResyncJob(_options(backend.conf), url, now, actor, time.time())


def _options(conf: cfg.ConfigOpts) -> tuple[tuple[str | None, str, Any], ...]:
    found = []
    for group, opts in list_opts():
        for opt in opts:
            try:
                value = getattr(conf[group], opt.dest) if group else getattr(conf, opt.dest)
            except (cfg.NoSuchOptError, cfg.ConfigFileValueError, ValueError):
                continue  # a bad value: the child reports it as the engine would
            found.append((group, opt.dest, value))
    return tuple(found)


def full_resync(job: ResyncJob) -> tuple[SyncReport, list[Key]]:
    """Run the job in a spawned child; (its report, the keys of the rows it changed).

    Raises what an in-process sync raises: ValidationError, RemovalRefused,
    BackendError.
    """
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            outcome = pool.submit(run_job, job).result()
    except (BrokenProcessPool, OSError) as exc:  # killed, out of memory, cannot start
        raise BackendError(f"the full re-sync's child process failed: {exc}") from exc
    kind, payload = outcome
    if kind == "ok":
        return payload
    if kind == "invalid":
        raise ValidationError([ConfigError(*problem) for problem in payload])
    if kind == "refused":
        raise RemovalRefused(*payload)
    raise BackendError(payload)


def run_job(job: ResyncJob) -> tuple[str, Any]:
    """In the child: load, sync every row, and say which rows the table must re-read."""
    with collector_paused():  # the child is a program of its own, doing bulk work only
        return _run_job(job)


def _run_job(job: ResyncJob) -> tuple[str, Any]:
    from .backends import fetch

    conf = load_conf()
    for group, name, value in job.options:
        conf.set_override(name, value, group=group)
    backend = fetch(conf, job.url)
    try:
        state = backend.state
        catalog = backend.load()
        before = _fingerprints(state.schedule_rows())
        # When the rows are read: a row recorded since the job was made has a next_run
        # up to an interval past that, which the job's `now` would take for old timing.
        report = backend.sync(catalog, job.now_in_child(), actor=job.actor)
        del catalog
        # Rows it removed need no re-reading: their pairs are in no catalog (or the
        # engine's own comparison of catalogs covers them).
        touched = []
        for row in state.schedule_rows():
            key = (row.audit_name, row.host)
            if before.get(row.id) != hash((key, row.next_run, row.disabled)):
                touched.append(key)
        return "ok", (report, touched)
    except ValidationError as exc:
        return "invalid", [(p.where, p.message) for p in exc.problems]
    except RemovalRefused as exc:
        return "refused", (exc.gone, exc.stored, exc.allowed, exc.max_removal)
    except EntropyError as exc:
        return "error", str(exc)
    finally:
        backend.close()


def _fingerprints(rows: list[Any]) -> dict[int, Any]:
    return {row.id: hash(((row.audit_name, row.host), row.next_run, row.disabled)) for row in rows}
