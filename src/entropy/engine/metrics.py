"""An engine's own metrics: audits run, claim and record latency, queue depth, lateness.

What `entropy engine run --metrics-port` serves (Prometheus' text format),
from this process's memory, not the state store (that is /metrics of
`entropy api serve`). The parts report to an EngineMetrics; NO_METRICS, the
default, keeps nothing. Each EngineMetrics has a registry of its own, so
two engines in one process (tests) never mix their figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..model import Result

# Seconds: a claim or a record is one transaction (ms on a LAN, more under load).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds after its slot an audit started: the scheduler's promise is "on time".
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Waiting(Protocol):
    def waiting(self) -> int: ...


class InFlight(Protocol):
    def in_flight(self) -> int: ...


class NoMetrics:
    """What the parts report to when nobody asked for metrics: nothing is kept."""

    @contextmanager
    def claiming(self) -> Iterator[None]:
        yield

    @contextmanager
    def recording(self) -> Iterator[None]:
        yield

    def recorded(self, results: list[Result]) -> None:
        pass


NO_METRICS = NoMetrics()


class _Depths(Collector):
    """entropy_engine_queue_depth, read when scraped: no bookkeeping on the hot path."""

    def __init__(self, dispatcher: Waiting, executor: InFlight, results: Waiting) -> None:
        self.dispatcher, self.executor, self.results = dispatcher, executor, results

    def depths(self) -> dict[str, int]:
        return {"due": self.dispatcher.waiting(), "in_flight": self.executor.in_flight(),
                "results": self.results.waiting()}  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "entropy_engine_queue_depth",
            "Audits waiting in this engine, by queue: due (not claimed yet), in_flight "
            "(claimed, running), results (run, not recorded yet).",
            labels=["queue"],
        )
        for queue, count in self.depths().items():
            depth.add_metric([queue], count)
        yield depth


class EngineMetrics(NoMetrics):
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.audits = Counter("entropy_engine_audits", "Audit results this engine recorded.",
                              ["outcome"], registry=self.registry)  # fmt: skip
        self.claim_seconds = Histogram(
            "entropy_engine_claim_seconds", "Time of one claim in the state store.",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.record_seconds = Histogram(
            "entropy_engine_record_seconds", "Time of one batch of results written.",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.lateness = Histogram(
            "entropy_engine_lateness_seconds", "How long after its slot each audit started.",
            buckets=LATENESS_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def watch(self, dispatcher: Waiting, executor: InFlight, results: Waiting) -> None:
        """Read the depths of the engine's queues at each scrape: due rows not claimed
        (dispatcher), audits running (executor), results not recorded yet."""
        self.registry.register(_Depths(dispatcher, executor, results))

    @contextmanager
    def claiming(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.claim_seconds.observe(time.perf_counter() - started)

    @contextmanager
    def recording(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.record_seconds.observe(time.perf_counter() - started)

    def recorded(self, results: list[Result]) -> None:
        for result in results:
            self.audits.labels(result.outcome.value).inc()
            if result.slot is not None and result.started_at is not None:
                self.lateness.observe(max((result.started_at - result.slot).total_seconds(), 0.0))
