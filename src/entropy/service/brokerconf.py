"""The broker an engine or a worker uses: [executor] transport_url and prefix, checked."""

from __future__ import annotations

from ..broker.topology import Topology
from ..errors import EntropyError
from .runtime import Runtime


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
