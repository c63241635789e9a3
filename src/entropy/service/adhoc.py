"""`audit run`: run an audit now on its hosts, outside the schedule, and keep the results."""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures

from ..config import engine_id
from ..model import Pair, Result
from ..runners import Job, run_job
from .runtime import Runtime


def run_audit(
    rt: Runtime,
    audit_name: str,
    host: str | None = None,
    group: str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run AUDIT now on its hosts (or one host, or a group's) and store each result.

    Results go to the history and become each row's latest result; next_run
    is not touched. on_result sees each one as it is stored, in host order.
    """
    backend = rt.backend
    catalog = backend.load()
    pairs = catalog.select(audit_name, host, group)
    rows = {(r.audit_name, r.host): r.id for r in backend.audits(audit_name=audit_name)}
    timeout = rt.option("default_timeout")
    by_hand = f"{engine_id(rt.conf)} (by hand)"

    def run_pair(pair: Pair) -> Result:
        result = run_job(Job.for_pair(catalog, pair, timeout), rt.clock)
        result.audit_name, result.host, result.engine_id = pair.audit_name, pair.host, by_hand
        result.slot = result.started_at
        return result

    done = []
    workers = min(len(pairs), rt.option("max_workers"))
    with futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(run_pair, pairs):
            backend.state.record_adhoc(rows.get((result.audit_name, result.host)), result)
            done.append(result)
            if on_result is not None:
                on_result(result)
    return done
