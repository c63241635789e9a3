"""The composition root: settings from the config, the engine it builds, signals, GC, exit."""

from __future__ import annotations

import gc
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import pytest

from entropy import config, gctuning
from entropy.backends.impl_memory import forget
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.engine import EngineSettings
from entropy.engine.broker_executor import BrokerExecutor
from entropy.errors import EntropyError
from entropy.model import Host, Outcome, Result, Script
from entropy.runners import Job, command
from entropy.service import definitions, fleet
from entropy.service.compose import EngineProcess, gc_tuned
from entropy.service.runtime import Runtime
from entropy.service.signals import Interrupted, raise_on_signals, stop_on_signals

_names = itertools.count()


def fine(host: Any, params: dict[str, Any]) -> tuple[str, str]:
    return "ok", f"thresholds {gc.get_threshold()}"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    url = f"memory:compose-{next(_names)}-{os.getpid()}"
    runtime = Runtime(backend_url=url, clock=FakeClock())
    definitions.add_host(runtime, "web-1", "10.0.0.1", "compute")
    definitions.add_script(runtime, "fine", "python", {"function": f"{__name__}:fine"})
    definitions.add_schedule(runtime, "compute", "fine", every="1m")
    fleet.sync(runtime)
    yield runtime
    runtime.close()
    forget(url)


@pytest.fixture
def handlers() -> Iterator[None]:
    """The test's signal handlers and GC thresholds, put back after it."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    thresholds = gc.get_threshold()
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)
    gc.set_threshold(*thresholds)


def test_engine_settings_come_from_the_config_in_one_place(rt: Runtime) -> None:
    conf = rt.conf
    for name, value in (("max_workers", 3), ("default_timeout", 7), ("shutdown_grace", 2),
                        ("result_retention", 3600), ("claim_lease", 12.0),
                        ("heartbeat_interval", 4.0), ("max_clock_skew", 0.5),
                        ("engine_id", "e-7")):  # fmt: skip
        conf.set_override(name, value)
    try:
        settings = EngineSettings.from_conf(conf)
        assert (settings.engine_id, settings.max_workers, settings.default_timeout,
                settings.shutdown_grace, settings.result_retention, settings.lease,
                settings.heartbeat_interval, settings.max_clock_skew) == (
                    "e-7", 3, 7, 2, 3600, 12.0, 4.0, 0.5)  # fmt: skip
        assert settings.pid == os.getpid() and settings.hostname
        assert EngineSettings.from_conf(conf, max_workers=11).max_workers == 11
        conf.set_override("claim_lease", 5.0)  # not 3 heartbeats
        with pytest.raises(EntropyError, match="claim_lease = 5 must be at least 3 x"):
            EngineSettings.from_conf(conf)
    finally:
        conf.clear_override("claim_lease")
    # Every setting the config has is taken from it: none falls back on a restated default.
    from_config = {"engine_id", "max_workers", "default_timeout", "shutdown_grace",
                   "result_retention", "lease", "heartbeat_interval", "max_clock_skew",
                   "hostname", "pid"}  # fmt: skip
    tuning = {"flush_interval", "flush_size", "result_queue_size"}  # the engine's own
    assert {f.name for f in fields(EngineSettings)} - from_config <= tuning


def test_engine_settings_defaults_are_the_configs() -> None:
    """Made by hand (tests, the bench), EngineSettings has the defaults config.py declares."""
    by_hand, from_conf = EngineSettings("e"), EngineSettings.from_conf(load_conf())
    for name in ("max_workers", "default_timeout", "shutdown_grace", "result_retention",
                 "lease", "heartbeat_interval", "max_clock_skew"):  # fmt: skip
        assert getattr(by_hand, name) == getattr(from_conf, name), name
    assert by_hand.lease == config.default("claim_lease")


def test_an_engine_built_from_the_config_runs_records_and_reports(
    rt: Runtime, handlers: None
) -> None:
    seen: list[Result] = []

    def record(result: Result) -> None:  # the first result stops it: the fake clock races on
        seen.append(result)
        process.engine.stop()

    process = EngineProcess(rt, max_workers=2, on_result=record)
    started = []
    gc.set_threshold(700, 10, 10)
    safety = threading.Timer(30, process.engine.stop)  # a failure ends, never hangs
    safety.start()
    try:
        done = process.run(on_start=lambda: started.append(signal.getsignal(signal.SIGTERM)))
    finally:
        safety.cancel()
    assert started and callable(started[0]) and started[0] is not signal.SIG_DFL
    assert done.recorded == len(seen) >= 1
    assert all(r.outcome is Outcome.OK for r in seen)
    assert seen[0].summary == f"thresholds {gctuning.ENGINE_THRESHOLD}"  # tuned while it ran
    assert gc.get_threshold() == (700, 10, 10)  # and put back after
    assert (done.dropped, done.stuck, done.exit_status) == (0, 0, 0)
    process.exit_if_stuck(done)  # nothing stuck: returns


def test_gc_tuning_is_applied_only_when_asked_and_restored() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with gc_tuned(False):
            assert gc.get_threshold() == (700, 10, 10)
        with gc_tuned(True):
            assert gc.get_threshold() == gctuning.ENGINE_THRESHOLD
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


class FakeEngine:
    def __init__(self) -> None:
        self.started = False
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1


def test_signals_stop_an_engine_gracefully_then_hurry_then_leave(handlers: None) -> None:
    engine, notices, left = FakeEngine(), [], []
    stop_on_signals(engine, notices.append, left.append)
    with pytest.raises(Interrupted, match="during start-up; the engine did not start"):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # let the handler run here
    engine.started = True
    for expected in (1, 2):
        os.kill(os.getpid(), signal.SIGINT)
        assert engine.stops == expected and not left
    os.kill(os.getpid(), signal.SIGTERM)
    assert left == [128 + signal.SIGTERM]
    assert notices == ["entropy: SIGTERM a third time: leaving now; unrecorded audits run "
                       "again after their lease"]  # fmt: skip


TRUE = Job("a", Host("h", "127.0.0.1", "web"), Script("a", "command", {"command": ["true"]}),
           timeout=5)  # fmt: skip


def test_a_command_is_interrupted_and_the_handlers_are_put_back(handlers: None) -> None:
    before = signal.getsignal(signal.SIGTERM)
    restore = raise_on_signals()
    with pytest.raises(Interrupted, match="interrupted by SIGTERM") as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)
    assert caught.value.signum == signal.SIGTERM
    try:
        refused = command.run(TRUE)  # the handler ended the command's runs, refuses new ones
    finally:
        restore()
    assert (refused.outcome, refused.summary) == (
        Outcome.ERROR, "not run: this process is stopping")  # fmt: skip
    assert signal.getsignal(signal.SIGTERM) is before
    assert command.run(TRUE).outcome is Outcome.OK  # the command is over: runs start again


def test_signals_are_left_alone_off_the_main_thread(handlers: None) -> None:
    before = signal.getsignal(signal.SIGTERM)
    done = []
    thread = threading.Thread(target=lambda: done.append(raise_on_signals()))
    thread.start()
    thread.join()
    done[0]()
    assert signal.getsignal(signal.SIGTERM) is before


def test_leaving_now_flushes_what_was_written_and_joins_no_thread() -> None:
    code = ("import sys, threading, time\n"
            "threading.Thread(target=time.sleep, args=(600,)).start()  # never joined\n"
            "sys.stdout.write('written, not flushed')\n"
            "from entropy.service.compose import leave_now\n"
            "leave_now(None, 7)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 7, done.stderr
    assert done.stdout == "written, not flushed"


def test_executor_broker_builds_the_broker_executor_for_audits_and_repairs(rt: Runtime) -> None:
    """Nothing connects while it is built: the broker is reached when the engine runs."""
    conf = rt.conf
    conf.set_override("executor", "broker", "executor")
    conf.set_override("transport_url", "amqp://u:secret@mq.example:5672/e", "executor")
    conf.set_override("max_in_flight", 300, "executor")
    conf.set_override("prefix", "fleet1", "executor")
    try:
        process = EngineProcess(rt)
    finally:
        for name in ("executor", "transport_url", "max_in_flight", "prefix"):
            conf.clear_override(name, "executor")
    broker = process.engine.executor
    assert isinstance(broker, BrokerExecutor) and broker is process.broker
    assert broker.window() == 300 and broker.settings.topology.prefix == "fleet1"
    assert broker.client.results_queue == f"fleet1.results.{process.settings.engine_id}"
    repairer = process.engine.publisher.repairer
    assert repairer is not None and repairer.runner == broker.run
    assert repairer.run_margin == broker.wait_margin()
    assert "secret" not in process.executor_description()


def test_executor_broker_without_a_transport_url_is_an_error(rt: Runtime) -> None:
    rt.conf.set_override("executor", "broker", "executor")
    try:
        with pytest.raises(EntropyError, match=r"\[executor\] transport_url"):
            EngineProcess(rt)
    finally:
        rt.conf.clear_override("executor", "executor")
