"""Jobs lost on the broker: out longer than they can be, answered `error` for their slot.

A job can vanish with nothing coming back for it: its zone queue deleted
with it inside, its result sent to a result queue that is gone, a worker
that holds it and never answers. Out longer than a lease (waiting in its
queue: then it dies and comes back), its timeout and WORKER_MARGIN, it is
lost; the broker executor's sweep answers it, so its pair runs again at its
next slot (a result that still comes is fenced out).
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..model import Outcome, Result
from ..runners.base import Job

LOG = logging.getLogger(__name__)

WORKER_MARGIN = 5.0  # seconds past a job's timeout that a worker may take to answer
_LOST = ("no result within {wait:g}s of its publishing (a lease waiting for a worker of zone "
         "{zone}, its {timeout:g}s timeout, {margin:g}s more): the job or its result was lost "
         "on the broker (a queue deleted?); its next slot runs as usual")  # fmt: skip


def longest(job: Job, lease: float) -> float:
    """Seconds a job can be out before it counts as lost."""
    return lease + job.timeout + WORKER_MARGIN


def lost_result(job: Job, job_id: str, lease: float, slot: datetime, engine_id: str) -> Result:
    """The `error` result a lost job is answered with; logged."""
    summary = _LOST.format(wait=longest(job, lease), zone=job.host.zone, timeout=job.timeout,
                           margin=WORKER_MARGIN)  # fmt: skip
    LOG.error("%s on %s: job %s: %s", job.audit_name, job.host.name, job_id, summary)
    return Result(Outcome.ERROR, summary, slot=slot, engine_id=engine_id,
                  audit_name=job.audit_name, host=job.host.name)  # fmt: skip
