"""/v1: read the fleet's state and act on it, through the service functions the CLI calls.

Listings answer {"items": [...], "offset": N, "next_offset": M or null};
the filters are the CLI's (`entropy status --host`, `results --outcome`, ...).
Reading needs any token; acting needs an operator's, and is logged with its name.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from ..model import Outcome, Status
from ..service import adhoc, engines, fleet, monitoring, reads, repairs, results
from ..service.errors import BadRequest
from ..service.reads import Page
from ..service.tokens import Token
from ..timing import parse_duration
from .auth import log_act, operator, reader
from .common import using

router = APIRouter(prefix="/v1", tags=["v1"])

Reader = Annotated[Token | None, Depends(reader)]
Operator = Annotated[Token, Depends(operator)]
Limit = Annotated[int, Query(ge=1, le=10000, description="At most this many items.")]
Offset = Annotated[int, Query(ge=0, description="Skip this many items (next_offset).")]
HostQ = Annotated[str | None, Query(description="Only this host.")]
AuditQ = Annotated[str | None, Query(description="Only this audit.")]
OutcomeQ = Annotated[Outcome | None, Query(description="Only this outcome (the latest result's).")]


def page(found: Page[Any], item: Any) -> dict[str, Any]:
    return {"items": [item(x) for x in found.items], "offset": found.offset,
            "next_offset": found.next_offset}  # fmt: skip


def host_dict(h: Any) -> dict[str, Any]:
    return {"name": h.name, "ip_address": h.ip_address, "host_type": h.host_type,
            "groups": list(h.groups), "vars": h.vars, "zone": h.zone}  # fmt: skip


# -- reading ---------------------------------------------------------------------------


@router.get("/hosts", summary="The hosts of the definitions, by name")
def get_hosts(
    request: Request, _: Reader, limit: Limit = 100, offset: Offset = 0,
    group: Annotated[str | None, Query(description="Only the hosts of this group.")] = None,
) -> Any:  # fmt: skip
    with using(request) as rt:
        return page(reads.hosts(rt, group, limit, offset), host_dict)


@router.get("/audits", summary="The audit rows (as `entropy status --json`), by host then audit")
def get_audits(
    request: Request, _: Reader, host: HostQ = None, audit: AuditQ = None,
    status: Annotated[Status | None, Query(description="Only rows in this status.")] = None,
    outcome: OutcomeQ = None,
    disabled: Annotated[bool | None, Query(description="Only disabled (or enabled) rows.")] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> Any:  # fmt: skip
    with using(request) as rt:
        found = reads.audits(rt, host, audit, status, outcome, disabled, limit, offset)
        return page(found, lambda row: row.public())


@router.get("/results", summary="Audit results, newest first (as `entropy results --json`)")
def get_results(
    request: Request, _: Reader, host: HostQ = None, audit: AuditQ = None,
    outcome: OutcomeQ = None, limit: Limit = 50, offset: Offset = 0,
) -> Any:  # fmt: skip
    with using(request) as rt:
        return page(reads.results(rt, host, audit, outcome, limit, offset), lambda r: r.to_dict())


@router.get("/repairs", summary="Repair runs, newest first (`entropy results --kind repair`)")
def get_repairs(
    request: Request, _: Reader, host: HostQ = None,
    repair: Annotated[str | None, Query(description="Only this repair.")] = None,
    audit: Annotated[str | None, Query(description="Only runs this audit triggered.")] = None,
    outcome: OutcomeQ = None, limit: Limit = 50, offset: Offset = 0,
) -> Any:  # fmt: skip
    with using(request) as rt:
        found = reads.repair_results(rt, host, repair, audit, outcome, limit, offset)
        return page(found, lambda r: {"kind": "repair", **r.to_dict()})


@router.get("/repairs/states", summary="Per (repair, host): attempts, last run, flag")
def get_repair_states(request: Request, _: Reader, host: HostQ = None) -> Any:
    with using(request) as rt:
        return {"items": repairs.states(rt, host)}


@router.get("/repairs/plan", summary="Which repairs the current results would fire, and why not")
def get_repair_plan(request: Request, _: Reader) -> Any:
    with using(request) as rt:
        return {"items": [asdict(item) for item in repairs.plan(rt)]}


@router.get("/engines", summary="Every engine on this state store: running, stopped or dead")
def get_engines(request: Request, _: Reader) -> Any:
    with using(request) as rt:
        found = engines.engines(rt)
        return {"now": found.now, "dead_after": found.dead_after, "items": found.to_dicts()}


@router.get("/plan", summary="Every run due within a window, in time order (`entropy plan`)")
def get_plan(
    request: Request, _: Reader,
    within: Annotated[str, Query(description="How far ahead: 30m, 1h, 1d.")] = "1h",
    host: HostQ = None, audit: AuditQ = None,
) -> Any:  # fmt: skip
    window = float(parse_duration(within))
    with using(request) as rt:
        ahead = reads.plan(rt, window, host, audit)
        return {"now": ahead.now, "items": [run.to_dict() for run in ahead.runs]}


# -- acting ----------------------------------------------------------------------------


class Where(BaseModel):
    """Where to act: everywhere (neither), one host, or the hosts of a group."""

    host: str | None = None
    group: str | None = None

    def check(self) -> None:
        if self.host and self.group:
            raise BadRequest("give host or group, not both", "group")


class Disable(Where):
    reason: str = Field(min_length=1, description="Why; shown by `entropy status`.")


class Reset(BaseModel):
    host: str = Field(description="The flagged host.")


@router.post("/audits/{audit}/disable", summary="Stop running AUDIT, with a reason")
def disable(request: Request, audit: str, body: Disable, token: Operator) -> Any:
    body.check()
    with using(request) as rt:
        done = fleet.set_disabled(rt, audit, True, body.reason, body.host, body.group)
    log_act(token, "disable", audit=audit, host=body.host, group=body.group, reason=body.reason)
    return done.to_dict()


@router.post("/audits/{audit}/enable", summary="Run AUDIT again where it was disabled")
def enable(request: Request, audit: str, body: Where, token: Operator) -> Any:
    body.check()
    with using(request) as rt:
        done = fleet.set_disabled(rt, audit, False, None, body.host, body.group)
    log_act(token, "enable", audit=audit, host=body.host, group=body.group)
    return done.to_dict()


@router.post("/audits/{audit}/run", summary="Run AUDIT now, outside the schedule; its results")
def run(request: Request, audit: str, body: Where, token: Operator) -> Any:
    body.check()
    with using(request) as rt:
        done = adhoc.run_audit(rt, audit, body.host, body.group)
    log_act(token, "run", audit=audit, host=body.host, group=body.group)
    return {"items": [r.to_dict() for r in done]}


class Submit(BaseModel):
    """A result from outside (a cron job, a backup script): as `entropy result submit`."""

    audit: str
    host: str
    outcome: str = Field(description="ok, warning, critical, unknown, error or timeout.")
    summary: str = ""
    output: str = ""
    metrics: dict[str, Any] | None = Field(
        None, description='name -> number, or name -> {"value", "uom", "warn", "crit", ...}'
    )


@router.post("/results", summary="Record a result from outside (a passive result); it is stored")
def submit(request: Request, body: Submit, token: Operator) -> Any:
    with using(request) as rt:
        done = results.submit_result(
            rt,
            body.audit,
            body.host,
            body.outcome,
            body.summary,
            body.metrics,
            body.output,
            source=f"api token {token.name}",
        )
    log_act(token, "submit", audit=body.audit, host=body.host, outcome=body.outcome)
    return done.to_dict()


@router.post("/repairs/{repair}/reset", summary="Clear a host's flag and attempts for REPAIR")
def reset(request: Request, repair: str, body: Reset, token: Operator) -> Any:
    with using(request) as rt:
        changed = repairs.reset(rt, body.host, repair)
    log_act(token, "reset", repair=repair, host=body.host)
    return {"host": body.host, "repair_name": repair, "reset": changed}


# -- downtimes and acknowledgements (as `entropy downtime`, `ack`, `unack`) ----------------


@router.get("/downtimes", summary="Downtimes not yet ended: the definitions', then ad hoc ones")
def get_downtimes(request: Request, _: Reader) -> Any:
    with using(request) as rt:
        return {"items": [view.to_dict() for view in monitoring.downtimes(rt)]}


class NewDowntime(BaseModel):
    """An ad hoc downtime from now: on one host or a group, for a while or until a time."""

    reason: str = Field(min_length=1, description="Why; shown beside the held repairs.")
    host: str | None = None
    group: str | None = None
    audit: str | None = Field(None, description="Only this audit (every audit if left out).")
    for_: str | None = Field(None, alias="for", description="How long: 30m, 2h, 1d.")
    until: str | None = Field(None, description="Or when it ends: 2026-03-01T22:00:00Z.")
    skip_checks: bool = Field(False, description="Do not even run the covered audits.")


@router.post("/downtimes", summary="Start an ad hoc downtime; it answers with its id")
def add_downtime(request: Request, body: NewDowntime, token: Operator) -> Any:
    seconds = None if body.for_ is None else float(parse_duration(body.for_))
    with using(request) as rt:
        made = monitoring.add_downtime(rt, body.reason, body.host, body.group, body.audit,
                                       seconds, body.until, body.skip_checks,
                                       created_by=f"api token {token.name}")  # fmt: skip
    log_act(token, "downtime", downtime=made.name, host=body.host, group=body.group,
            audit=body.audit, reason=body.reason)  # fmt: skip
    return made.to_dict()


@router.delete("/downtimes/{name}", summary="End an ad hoc downtime now")
def remove_downtime(request: Request, name: str, token: Operator) -> Any:
    with using(request) as rt:
        monitoring.remove_downtime(rt, name)
    log_act(token, "downtime remove", downtime=name)
    return {"removed": name}


@router.get("/acks", summary="Acknowledgements in force, by host then audit")
def get_acks(request: Request, _: Reader, host: HostQ = None, audit: AuditQ = None) -> Any:
    with using(request) as rt:
        return {"items": [a.to_dict() for a in monitoring.acks(rt, host, audit)]}


class NewAck(Where):
    reason: str = Field(min_length=1, description="Why; shown where the problem is.")
    expire: str | None = Field(None, description="Lifted after this long: 4h, 1d.")
    sticky: bool = Field(False, description="Kept through changes between problem states.")


@router.post("/audits/{audit}/ack", summary="Acknowledge AUDIT's problem on a host or a group")
def ack(request: Request, audit: str, body: NewAck, token: Operator) -> Any:
    body.check()
    expire = None if body.expire is None else float(parse_duration(body.expire))
    with using(request) as rt:
        done = monitoring.ack(rt, audit, body.reason, body.host, body.group, expire,
                              body.sticky, created_by=f"api token {token.name}")  # fmt: skip
    log_act(token, "ack", audit=audit, host=body.host, group=body.group, reason=body.reason)
    return done.to_dict()


@router.post("/audits/{audit}/unack", summary="Lift AUDIT's acknowledgements on a host or group")
def unack(request: Request, audit: str, body: Where, token: Operator) -> Any:
    body.check()
    with using(request) as rt:
        lifted = monitoring.unack(rt, audit, body.host, body.group)
    log_act(token, "unack", audit=audit, host=body.host, group=body.group)
    return {"unacknowledged": lifted}
