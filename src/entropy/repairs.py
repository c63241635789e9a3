"""Repairs: when an audit keeps failing on a host, run a repair script there.

A rule fires on the `consecutive`-th failing result in a row of one
(audit, host) pair, counted from the stored history, so the count survives
restarts. Its guardrails are checked and the run claimed in one transaction
(see RepairStore.start): one run per (repair, host) at a time, a cooldown
per host, at most `max_concurrent` across the fleet, and after
`max_attempts` runs that did not fix the audit the host is flagged for a
human and left alone until `entropy repair reset`.

With `verify`, the audit runs again right after the repair; its result is
stored like any audit result and the run is recorded as fixed (outcome ok)
or not fixed.

Before the guardrails, the monitoring rules may hold a repair (issue 15,
monitoring.repair_hold): a downtime covering the pair, an acknowledgement,
a dependency down (the failure is `unreachable`), flapping, or a soft state
(a pair with `max_attempts` fires on hard states only, and `consecutive`
then counts hard results). `repair plan` shows the hold's reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import runners
from .backends import Backend
from .backends.base import Judge, StateStore
from .clock import Clock
from .errors import BackendError
from .events import Events
from .model import (
    Catalog,
    Downtime,
    MonitorState,
    Outcome,
    Pair,
    RepairDecision,
    RepairRule,
    RepairRun,
    RepairState,
    Result,
    Verify,
)
from .monitor_record import live_ack
from .monitoring import repair_hold
from .runners.base import Job

if TYPE_CHECKING:  # imported when the first repair is queued: the CLI's commands need it not
    import futurist

LOG = logging.getLogger(__name__)

RepairCallback = Callable[[RepairRun], None]
LEASE_MARGIN = 30.0  # seconds added to a repair's (and its verify's) timeout for its lease


def judge(rule: RepairRule, audit_name: str, now: datetime) -> Judge:
    """The guardrails, in the order an operator reads them in `repair plan`."""

    def decide(own: RepairState, others: list[RepairState]) -> RepairDecision:
        if own.flagged:
            return RepairDecision(
                False,
                f"host flagged: {own.flagged_reason}; "
                f"clear with: entropy repair reset {own.host} {rule.name}",
            )
        if own.running(now):
            return RepairDecision(False, f"already running on this host ({own.running_by})")
        attempts = 0 if own.recovered else own.attempts
        if rule.max_attempts is not None and attempts >= rule.max_attempts:
            return RepairDecision(
                False,
                f"max_attempts ({rule.max_attempts}) used up; host flagged for a human",
                flag=_unfixed(rule, attempts, audit_name),
            )
        if rule.cooldown and own.last_started_at is not None:
            until = own.last_started_at + timedelta(seconds=rule.cooldown)
            if now < until:
                return RepairDecision(
                    False, f"cooldown until {until.strftime('%Y-%m-%d %H:%M:%SZ')}"
                )
        if rule.max_concurrent is not None:
            running = sorted(state.host for state in others if state.running(now))
            if len(running) >= rule.max_concurrent:
                return RepairDecision(
                    False,
                    f"max_concurrent ({rule.max_concurrent}) reached: "
                    f"running on {', '.join(running)}",
                )
        of = f" of {rule.max_attempts}" if rule.max_attempts is not None else ""
        return RepairDecision(True, f"attempt {attempts + 1}{of}", attempt=attempts + 1)

    return decide


def _ran(run: RepairRun) -> str:
    """A run, in a few words: its outcome, and its verify's."""
    verify = f", {run.verify.value.replace('_', ' ')}" if run.verify else ""
    return f"attempt {run.attempt}: {run.result.outcome.value}{verify}"


def _unfixed(rule: RepairRule, attempts: int, audit_name: str) -> str:
    """Why a host is flagged."""
    return f"{attempts} runs of {rule.name} did not fix {audit_name}"


def streak_reached(rule: RepairRule, latest: list[Outcome], soft: int = 0) -> bool:
    """Whether the pair's latest outcomes (newest first) are `consecutive` failures.

    `soft`: for a pair with monitoring, max_attempts - 1, the problems in a
    row that were soft before its state turned hard; `consecutive` then counts
    hard results only, so the streak needs those soft ones before it.
    """
    needed = rule.consecutive + soft
    return (
        len(latest) >= needed
        and all(outcome in rule.outcomes for outcome in latest[: rule.consecutive])
        and all(outcome is not Outcome.OK for outcome in latest[rule.consecutive : needed])
    )


def soft_attempts(pair: Pair | None) -> int:
    """The results in a row that are soft before a problem is hard (0 without monitoring)."""
    settings = pair.schedule.monitoring if pair is not None else None
    return settings.max_attempts - 1 if settings is not None else 0


def hold_of(
    store: StateStore,
    catalog: Catalog,
    pair: Pair,
    state: MonitorState | None,
    outcome: Outcome | None,
    now: datetime,
    downtimes: list[Downtime] | None = None,
    clear: bool = True,
) -> str | None:
    """Why the monitoring rules hold a repair of this pair now (repair_hold), or None.

    `downtimes`: the ad hoc ones, when the caller read them already (plan);
    `clear`: drop an ack found no longer holding (False for a read-only plan).
    """
    host = catalog.hosts.get(pair.host)
    if host is None:
        return None
    adhoc = store.downtimes() if downtimes is None else downtimes
    every = [*catalog.downtimes.values(), *adhoc]
    ack = live_ack(store, pair.audit_name, pair.host, outcome, now, clear)
    settings = pair.schedule.monitoring
    return repair_hold(pair.audit_name, host, now, state, settings, every, ack)


@dataclass(frozen=True, slots=True)
class PlanItem:
    """What `entropy repair plan` says of one (repair, host)."""

    repair_name: str
    host: str
    audit_name: str
    outcome: str  # the pair's latest outcome
    verdict: str  # fire | held | waiting
    reason: str


@dataclass(frozen=True, slots=True)
class Considered:
    """What one rule made of one recorded result, waited for (Repairer.consider_now)."""

    repair_name: str
    host: str
    audit_name: str
    verdict: str  # ran | held | waiting | failed (the store or the run raised)
    reason: str
    run: RepairRun | None = None

    def to_dict(self) -> dict[str, Any]:
        run = None if self.run is None else self.run.to_dict()
        return {"repair_name": self.repair_name, "host": self.host,
                "audit_name": self.audit_name, "verdict": self.verdict,
                "reason": self.reason, "run": run}  # fmt: skip


Recorded = Sequence[tuple[int | None, Pair, Result]]


class Repairer:
    """Runs the repairs recorded results call for: the engine's, and submitted ones.

    `consider()` is called by the engine's recorder thread and only filters
    in memory; the history reads, the claim, the run and the verify happen
    on the repair pool, so a slow repair never holds up recording.
    `consider_now()` takes the same rules, filter and handle() on the
    caller's thread, for a process that records a result and reports what
    followed (`result submit`, the API): the store's claim (RepairStore.start)
    is what keeps it safe beside running engines.
    """

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        engine_id: str,
        default_timeout: float,
        events: Events | None = None,
        on_repair: RepairCallback | None = None,
        workers: int = 4,
        runner: Callable[[Job], Result] | None = None,
        run_margin: float = 0.0,
    ) -> None:
        """runner: how a repair (and its verify) runs: here by default, or on a worker of the
        host's zone (the broker executor); run_margin: seconds it may wait besides the
        job's timeout (for a worker), added to the repair's lease."""
        self.runner = runner or (lambda job: runners.run_job(job, clock))
        self.run_margin = run_margin
        self.backend = backend
        self.clock = clock
        self.engine_id = engine_id
        self.default_timeout = default_timeout
        self.events = events
        self.on_repair = on_repair
        self.workers = workers
        self._executor: futurist.ThreadPoolExecutor | None = None
        self._rules_of: dict[str, list[RepairRule]] = {}
        self._indexed: tuple = ()
        self._held: dict[tuple[str, str], str] = {}  # last reason logged, to log changes only
        self._queued: set[tuple[str, str]] = set()  # (rule, host) waiting or running here
        self._queued_lock = threading.Lock()
        self._stopping = False

    # -- called by the engine ---------------------------------------------------

    def consider(self, catalog: Catalog, recorded: Recorded) -> None:
        """Queue the results some rule may act on; cheap for all the others.

        `recorded` are (row id, pair, result): the pair is what a verify runs.
        """
        for rule, row_id, pair, result in self._matching(catalog, recorded):
            with self._queued_lock:  # one at a time per (rule, host): the rest would be held
                if (rule.name, result.host) in self._queued:
                    continue
                self._queued.add((rule.name, result.host))
            if self._executor is None:
                import futurist

                self._executor = futurist.ThreadPoolExecutor(max_workers=self.workers)
            self._executor.submit(self._guarded, catalog, rule, row_id, pair, result)

    def consider_now(self, catalog: Catalog, recorded: Recorded) -> list[Considered]:
        """consider(), on this thread, each repair waited for: what each rule made of each.

        An `unreachable` result is taken too, so that the dependency holding
        its repair is said (the engine's consider() leaves those out unread).
        """
        done = []
        for rule, row_id, pair, result in self._matching(catalog, recorded, unreachable=True):
            what = (rule.name, result.host, result.audit_name)
            try:
                got = self.handle(catalog, rule, row_id, pair, result)
            except BackendError as exc:
                done.append(Considered(*what, "failed", str(exc)))
                continue
            if isinstance(got, RepairRun):
                done.append(Considered(*what, "ran", _ran(got), got))
            elif got is not None:
                done.append(Considered(*what, "held", got.reason))
            else:
                hard = " hard" if soft_attempts(pair) else ""
                needed = f"{rule.consecutive}{hard} failures in a row needed"
                done.append(Considered(*what, "waiting", needed))
        return done

    def _matching(
        self, catalog: Catalog, recorded: Recorded, unreachable: bool = False
    ) -> Iterator[tuple[RepairRule, int | None, Pair, Result]]:
        """(rule, row id, pair, result) for each rule watching a recorded failure."""
        if not catalog.repairs:
            return
        self._index(catalog)
        for row_id, pair, result in recorded:
            held = unreachable and result.outcome is Outcome.UNREACHABLE
            for rule in self._rules_of.get(result.audit_name, ()):
                if result.outcome in rule.outcomes or held:
                    yield rule, row_id, pair, result

    def drain(self) -> None:
        """Wait until every repair handed over so far is done (tests, tools); go on after."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def shutdown(self, wait: bool = True) -> None:
        """Let running repairs finish; queued ones are dropped, not started."""
        self._stopping = True
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
        try:
            released = self.backend.state.repairs.release(self.engine_id, self.clock.now())
        except BackendError as exc:
            LOG.warning("cannot release running repairs: %s", exc)
            return
        if released:
            LOG.warning("released %d repairs that were still running", released)

    def _guarded(
        self, catalog: Catalog, rule: RepairRule, row_id: int | None, pair: Pair, result: Result
    ) -> None:
        try:
            if not self._stopping:
                self.handle(catalog, rule, row_id, pair, result)
        except BackendError as exc:
            LOG.error("repair %s on %s: %s", rule.name, result.host, exc)
        except Exception:  # a bug must not take the pool down with it
            LOG.exception("repair %s on %s failed", rule.name, result.host)
        finally:
            with self._queued_lock:
                self._queued.discard((rule.name, result.host))

    # -- one result, one rule ---------------------------------------------------------

    def handle(
        self, catalog: Catalog, rule: RepairRule, row_id: int | None, pair: Pair, trigger: Result
    ) -> RepairDecision | RepairRun | None:
        """Run rule's repair for this failing result if its streak and guardrails allow.

        Returns None when the streak is too short, the decision when held,
        the run when it ran. Synchronous: the engine calls it on its pool.
        """
        state_store = self.backend.state
        store = state_store.repairs
        now = self.clock.now()
        state = None
        if pair.schedule.monitoring is not None:
            row = state_store.monitor_rows([pair.key]).get(pair.key)
            state = row.monitor if row is not None else None
        hold = hold_of(state_store, catalog, pair, state, trigger.outcome, now)
        if hold is not None:
            self._log_held(rule.name, trigger.host, hold)
            return RepairDecision(False, hold)
        soft = soft_attempts(pair)
        latest = store.latest_outcomes(trigger.audit_name, trigger.host, rule.consecutive + soft)
        if not streak_reached(rule, latest, soft):
            return None
        host, script = catalog.hosts.get(trigger.host), catalog.scripts.get(rule.run)
        if host is None or script is None:  # a refresh removed it since
            return None
        job = Job(rule.run, host, script, {}, float(script.timeout or self.default_timeout))
        try:
            verify_job = Job.for_pair(catalog, pair, self.default_timeout) if rule.verify else None
        except KeyError:  # its audit's script is gone since
            verify_job = None
        runs = (job.timeout + self.run_margin) + (
            verify_job.timeout + self.run_margin if verify_job else 0.0
        )
        lease = runs + LEASE_MARGIN
        decision = store.start(
            rule.name, host.name, trigger.audit_name, rule.outcomes,
            judge(rule, trigger.audit_name, now), self.engine_id, now,
            now + timedelta(seconds=lease),
        )  # fmt: skip
        if not decision.fire:
            self._log_held(rule.name, host.name, decision.reason)
            if decision.flag:
                LOG.warning("host %s flagged: %s", host.name, decision.flag)
            return decision
        self._held.pop((rule.name, host.name), None)
        LOG.debug("repair %s on %s: %s", rule.name, host.name, decision.reason)
        result = self._run(job, rule.run)
        run = RepairRun(rule.name, trigger.audit_name, rule.run, decision.attempt, result, trigger)
        if verify_job is not None:
            checked = run.verify_result = self._run(verify_job, trigger.audit_name, slot=True)
            try:
                self.backend.state.record_adhoc(row_id, checked)
            except BackendError as exc:  # the run is still recorded below, verify included
                LOG.error("cannot store the verify of %s on %s: %s", rule.name, host.name, exc)
            run.verify = Verify.FIXED if checked.outcome is Outcome.OK else Verify.NOT_FIXED
            if self.events:
                self.events.audit(checked)
        flag = None
        if (
            run.verify is Verify.NOT_FIXED
            and rule.max_attempts is not None
            and decision.attempt >= rule.max_attempts
        ):
            flag = _unfixed(rule, decision.attempt, trigger.audit_name)
        store.finish(run, self.engine_id, flag)
        if flag:
            LOG.warning("host %s flagged: %s", host.name, flag)
        if self.events:
            self.events.repair(run)
        if self.on_repair:
            try:
                self.on_repair(run)
            except Exception:  # a broken printer must not stop repairs
                LOG.exception("repair callback failed")
        return run

    def _log_held(self, rule_name: str, host: str, reason: str) -> None:
        """Log why a repair is held, once per change of reason."""
        if self._held.get((rule_name, host)) != reason:
            self._held[rule_name, host] = reason
            LOG.info("repair %s on %s held: %s", rule_name, host, reason)

    def _run(self, job: Job, name: str, slot: bool = False) -> Result:
        began = self.clock.now()
        result = self.runner(job)
        if result.started_at is None:  # not run (on a worker: none took it, none answered)
            result.started_at = began
        if result.finished_at is None:
            result.finished_at = self.clock.now()
        result.audit_name, result.host, result.engine_id = name, job.host.name, self.engine_id
        if slot:  # a verify run is an audit result outside the schedule
            result.slot = result.started_at
        return result

    def _index(self, catalog: Catalog) -> None:
        """Which rules watch each audit, once per catalog."""
        # By value: a refresh (or the scheduler's compaction) makes a new catalog,
        # and the id of a freed one may come back.
        # Passive audits have no script: their names come from their schedules.
        passive = {s.audit_name for s in catalog.schedules if s.monitoring and s.monitoring.passive}
        key = (tuple(catalog.repairs.values()), tuple(catalog.scripts), tuple(sorted(passive)))
        if key == self._indexed:
            return
        rules_of: dict[str, list[RepairRule]] = {}
        for name in [*catalog.scripts, *sorted(passive - set(catalog.scripts))]:
            matching = [rule for rule in catalog.repairs.values() if rule.matches(name)]
            if matching:
                rules_of[name] = matching
        self._rules_of, self._indexed = rules_of, key


def plan(backend: Backend, catalog: Catalog, now: datetime) -> list[PlanItem]:
    """What each rule would do now for the current results, without doing it.

    Hosts are taken in order and a run that would fire counts against
    max_concurrent for the next ones, as it would in the engine.
    """
    state_store = backend.state
    store = state_store.repairs
    items: list[PlanItem] = []
    rows = backend.audits()
    pairs = {p.key: p for p in catalog.pairs} if catalog.repairs else {}
    adhoc = state_store.downtimes() if catalog.repairs else []
    unreachable = Outcome.UNREACHABLE.value
    for rule in catalog.repairs.values():
        states = {state.host: state for state in store.states(repair_name=rule.name)}
        for row in rows:
            outcome = (row.result or {}).get("outcome")
            if not rule.matches(row.audit_name):
                continue
            if outcome not in rule.outcomes and outcome != unreachable:
                continue
            item = (rule.name, row.host, row.audit_name, outcome)
            if row.disabled:
                items.append(PlanItem(*item, "waiting", "audit disabled"))
                continue
            pair = pairs.get((row.audit_name, row.host))
            if pair is not None:
                hold = hold_of(state_store, catalog, pair, row.monitor, Outcome(outcome), now,
                               adhoc, clear=False)  # fmt: skip
                if hold is not None:
                    items.append(PlanItem(*item, "held", hold))
                    continue
            if outcome == unreachable:  # held above, unless its state says otherwise
                continue
            soft = soft_attempts(pair)
            latest = store.latest_outcomes(row.audit_name, row.host, rule.consecutive + soft)
            if not streak_reached(rule, latest, soft):
                count = next(
                    (i for i, o in enumerate(latest) if o not in rule.outcomes), len(latest)
                )
                hard = " hard" if soft else ""
                count = max(count - soft, 0) if soft else count
                reason = f"{count} of {rule.consecutive}{hard} failures in a row"
                items.append(PlanItem(*item, "waiting", reason))
                continue
            own = states.setdefault(row.host, RepairState(rule.name, row.host))
            if own.last_started_at is not None:
                own.recovered = store.healthy_since(
                    row.audit_name, row.host, rule.outcomes, own.last_started_at
                )
            others = [state for host, state in states.items() if host != row.host]
            decision = judge(rule, row.audit_name, now)(own, others)
            if decision.fire:  # it would be running for the hosts after it
                own.running_by, own.running_until = "(this plan)", None
            verdict = "fire" if decision.fire else "held"
            items.append(PlanItem(*item, verdict, decision.reason))
    return items
