"""A real engine run under the monitoring rules (issue 15): the Engine on the fake clock,
a real SQLite state store, real command audits and a real repair on its pool.

It shows a retry at retry_every, a downtime holding a repair (which fires once
the window is over), and a parent's failure making its child unreachable with
no repair. Each audit answers what a file under VERDICTS/ says for its host.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from entropy.backends import fetch
from entropy.clock import FakeClock
from entropy.config import load_conf
from entropy.engine import Engine, EngineSettings, WorkerPool
from entropy.model import Downtime, Outcome, StateType
from entropy.repairs import Repairer, plan
from entropy.scheduler import Scheduler
from fleets import write_fleet

HOSTS = {
    "sw-1": {"ip_address": "10.0.9.1", "host_type": "switch"},
    "h1": {"ip_address": "10.0.0.1", "host_type": "compute", "parents": ["sw-1"]},
    "h2": {"ip_address": "10.0.0.2", "host_type": "compute"},
}
SCHEDULES = {
    "compute.yaml": {"compute": {"audits": {"check": {
        "run_every": "10m", "max_attempts": 2, "retry_every": "1m",
        "depends_on": {"audit": "ping", "host": "parent"}}}}},
    "switch.yaml": {"switch": {"audits": {"ping": {"run_every": "10m"}}}},
}  # fmt: skip
REPAIRS = {"fix": {"when": {"audit": "check", "outcome": ["critical"]}, "run": "fix"}}


class Run:
    def __init__(self, tmp_path: Path, clock: FakeClock, state_url: str) -> None:
        self.verdicts = tmp_path / "verdicts"
        self.verdicts.mkdir()
        # Exit status from the file VERDICTS/HOST (0 when there is none): Nagios's convention.
        answer = f'exit "$(cat {self.verdicts}/"$ENTROPY_HOST" 2>/dev/null || echo 0)"'
        scripts = {
            "check": {"kind": "command", "command": ["sh", "-c", answer]},
            "ping": {"kind": "command", "command": ["sh", "-c", answer]},
            "fix": {"kind": "command", "command": ["true"]},
        }
        root = write_fleet("dir", tmp_path / "fleet", hosts=HOSTS, scripts=scripts,
                           schedules=SCHEDULES, repairs=REPAIRS)  # fmt: skip
        conf = load_conf()
        conf.set_override("max_splay", 0)
        conf.set_override("state_connection", state_url, group="dir")
        self.clock = clock
        self.backend = fetch(conf, f"dir:{root}")
        self.scheduler = Scheduler(self.backend, clock, refresh_in_background=False)
        self.scheduler.refresh()
        settings = EngineSettings("e1", max_workers=4)
        pool = WorkerPool(settings.max_workers, clock, "e1", inline=True)
        self.repairer = Repairer(self.backend, clock, "e1", default_timeout=10)
        self.engine = Engine(self.backend, self.scheduler, clock, settings, executor=pool,
                             repairer=self.repairer)  # fmt: skip
        self.start = self.scheduler.next_due()

    def fail(self, host: str, code: int = 2) -> None:
        (self.verdicts / host).write_text(str(code))

    def run_at(self, minutes: float) -> None:
        """One engine pass at start + minutes; its repairs run to the end on their pool."""
        self.clock.set(self.start + timedelta(minutes=minutes))
        self.engine.run_once()
        self.repairer.drain()  # the repairs it was handed are done

    def row(self, audit: str, host: str) -> Any:
        (found,) = self.backend.audits(host=host, audit_name=audit)
        return found

    def results(self, host: str) -> list[Outcome]:
        return [r.outcome for r in self.backend.state.results(host=host, audit_name="check")]


@pytest.fixture
def engine_run(tmp_path: Path, clock: FakeClock, sqlite_url: str) -> Any:
    made = Run(tmp_path, clock, sqlite_url)
    yield made
    made.backend.close()


def test_a_retry_at_retry_every_a_downtime_holding_a_repair_and_a_child_unreachable(
    engine_run: Run,
) -> None:
    run = engine_run
    store = run.backend.state
    now = run.start
    store.add_downtime(Downtime("dt-1", "kernel upgrade", hosts=("h2",), start=now,
                                end=now + timedelta(minutes=15)))  # fmt: skip
    run.fail("h2")
    run.run_at(0)
    soft = run.row("check", "h2")
    assert (soft.monitor.state_type, soft.monitor.attempt) == (StateType.SOFT, 1)
    assert soft.next_run == run.start + timedelta(minutes=1)  # the retry, at retry_every
    run.run_at(1)  # the retry: hard now, and its repair is due, but held by the downtime
    hard = run.row("check", "h2")
    assert (hard.monitor.state_type, hard.monitor.hard_state) == (StateType.HARD,
                                                                 Outcome.CRITICAL)  # fmt: skip
    assert hard.next_run == run.start + timedelta(minutes=10)  # back on its slots
    assert store.repairs.runs() == []
    (held,) = [i for i in plan(run.backend, run.backend.load(), run.clock.now())
               if i.host == "h2"]  # fmt: skip
    assert held.verdict == "held" and held.reason.startswith("in downtime 'dt-1' until ")
    run.run_at(10)  # still in the window: held
    assert store.repairs.runs() == []
    run.run_at(20)  # the window is over, the audit still fails: the repair fires
    (fired,) = store.repairs.runs()
    assert (fired.repair_name, fired.host, fired.outcome) == ("fix", "h2", "ok")
    assert run.results("h2") == [Outcome.CRITICAL] * 4

    # The parent (sw-1) fails: its child's failures are unreachable, and nothing is repaired.
    run.fail("sw-1")
    run.run_at(30)
    run.fail("h1")
    run.run_at(40)
    assert run.results("h1")[0] is Outcome.UNREACHABLE
    assert run.row("check", "h1").monitor.state is Outcome.UNREACHABLE
    assert {r.host for r in store.repairs.runs()} == {"h2"}  # none on h1
    (child,) = [i for i in plan(run.backend, run.backend.load(), run.clock.now())
                if i.host == "h1"]  # fmt: skip
    assert (child.verdict, child.reason) == (
        "held",
        "unreachable: a dependency (ping on its parents) is down",
    )


@pytest.mark.slow
def test_a_real_engine_process_retries_at_retry_every_and_goes_hard(tmp_path: Path) -> None:
    """`entropy engine run` as operators start it: retries 2 s apart, then the hard state and
    the regular slot (1 h away); a passive audit with no result turns unknown."""
    import itertools
    import json
    import os
    from datetime import datetime

    from processes import entropy, start_engine

    web = {"ip_address": "127.0.0.1", "host_type": "web", "parents": ["sw-1"]}
    hosts = {"sw-1": {"ip_address": "127.0.0.1", "host_type": "switch"}, "web-1": web}
    scripts = {"fails": {"kind": "command", "command": ["sh", "-c", "echo CRITICAL; exit 2"]},
               "ping": {"kind": "command", "command": ["true"]}}  # fmt: skip
    schedules = {"a.yaml": {
        "web": {"audits": {
            "fails": {"run_every": "1h", "max_attempts": 3, "retry_every": "2s",
                      "depends_on": {"audit": "ping", "host": "parent"}},
            "backup": {"passive": True, "freshness": "3s"}}},
        "switch": {"audits": {"ping": {"run_every": "1h"}}},
    }}  # fmt: skip
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=hosts, scripts=scripts,
                        schedules=schedules)  # fmt: skip
    env = {**os.environ, "OS_DEFAULT__MAX_SPLAY": "0", "OS_DEFAULT__SHUTDOWN_GRACE": "1"}
    engine = start_engine(fleet, "--for", "8s", env=env)
    out, err = engine.communicate(timeout=60)
    assert engine.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    fails = [r for r in results if r["audit_name"] == "fails"]
    assert [r["outcome"] for r in fails] == ["critical"] * 3  # its parent's ping is ok
    finished = [datetime.fromisoformat(r["finished_at"]) for r in fails]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(finished)]
    assert all(1.9 <= gap <= 3.5 for gap in gaps), gaps  # retry_every 2s, not run_every 1h
    (row,) = entropy(fleet, "status", "--audit", "fails", "--json", env=env)
    assert (row["monitor"]["state_type"], row["monitor"]["hard_state"]) == ("hard", "critical")
    next_run = datetime.fromisoformat(row["next_run"])
    assert next_run - finished[0] > timedelta(minutes=59)  # back on its hourly slot
    backup = [r for r in results if r["audit_name"] == "backup"]
    assert backup and backup[0]["outcome"] == "unknown"
    assert backup[0]["summary"] == "no result for backup on web-1 in 3s"
