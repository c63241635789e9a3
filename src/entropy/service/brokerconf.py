"""The broker an engine or a worker uses: [executor] transport_url and prefix, checked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..broker.topology import Topology
from ..errors import EntropyError
from .runtime import Runtime

if TYPE_CHECKING:
    from ..engine.broker_runs import OneOffRuns


def broker_of(rt: Runtime) -> tuple[str, Topology]:
    """[executor] transport_url and the names under [executor] prefix; an error if unset."""
    url = rt.option("transport_url", "executor")
    if not url:
        raise EntropyError(
            "no broker: set [executor] transport_url in entropy.conf (e.g. "
            "amqp://entropy:secret@mq.example.com:5672/entropy), or OS_EXECUTOR__TRANSPORT_URL"
        )
    return str(url), Topology(str(rt.option("prefix", "executor")))


def uses_broker(rt: Runtime) -> bool:
    """Whether engines of this config run their audits on workers ([executor] executor)."""
    return rt.option("executor", "executor") == "broker"


@contextlib.contextmanager
def repair_runs(rt: Runtime, who: str) -> Iterator[OneOffRuns | None]:
    """Where a process that is no engine runs repairs: with executor = broker, on a worker
    of the host's zone as the engines do (a connection of `who`'s own, closed after; made
    at the first repair that runs); None with the pool: here, in this process."""
    if not uses_broker(rt):
        yield None
        return
    # Here, not at the top: the engine package is heavy, and workers and the pool's
    # submits import this module without needing it.
    from ..engine.broker_runs import OneOffRuns

    url, topology = broker_of(rt)
    runs = OneOffRuns(url, topology, who, float(rt.option("claim_lease")))
    try:
        yield runs
    finally:
        runs.close()
