"""The dashboard at /: server-rendered pages (Jinja2), problems first, no build step.

Pages read through the service functions the API and the CLI use. A browser
signs in once at /login with a token (kept in an HttpOnly, SameSite=Strict
cookie); the pages only read, so a reader's token is enough.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from ..clock import from_micros
from ..model import Outcome
from ..service import reads, repairs
from ..service.health import health
from ..service.tokens import Token
from ..timing import format_duration
from .auth import COOKIE, caller
from .common import using

router = APIRouter(include_in_schema=False)

# Worst first: the order problems are listed in.
SEVERITY = ["critical", "error", "timeout", "unknown", "warning", "unreachable", "ok", "none"]
RANK = {name: n for n, name in enumerate(SEVERITY)}
LISTED = 200  # rows a section shows at most; the rest are counted, and the API has them all


class _Failing(NamedTuple):
    """A listed failing pair: health's plain (audit_name, host, outcome, finished_us), named."""

    audit_name: str
    host: str
    outcome: str | None  # never None here: failing rows have a result
    finished_us: int | None  # clock.to_micros

    @property
    def finished(self) -> datetime | None:
        return None if self.finished_us is None else from_micros(self.finished_us)


def _ago(then: datetime | str | None, now: datetime) -> str:
    if then is None:
        return "-"
    if isinstance(then, str):
        then = datetime.fromisoformat(then)
    seconds = (now - then).total_seconds()
    return f"{format_duration(abs(seconds))} {'ago' if seconds >= 0 else 'from now'}"


def _stamp(t: datetime | str | None) -> str:
    if t is None:
        return "-"
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


_env = Environment(loader=PackageLoader("entropy.api", "templates"),
                   autoescape=select_autoescape(["html"]))  # fmt: skip
_env.filters.update(stamp=_stamp)
_env.globals.update(SEVERITY=SEVERITY)


def _page(name: str, request: Request, now: datetime, **values: Any) -> HTMLResponse:
    html = _env.get_template(name).render(
        request=request, now=now, ago=lambda t: _ago(t, now), **values
    )
    return HTMLResponse(html)


def viewer(request: Request) -> Token:
    """A signed-in browser (or a bearer token); others go to /login."""
    try:
        return caller(request)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        raise HTTPException(303, "sign in at /login", headers={"Location": "/login"}) from None


Viewer = Annotated[Token, Depends(viewer)]


def _worst_first(items: list[Any], outcome: Any = lambda x: x.outcome) -> list[Any]:
    return sorted(items, key=lambda x: RANK.get(outcome(x) or "none", len(SEVERITY)))


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, token: Viewer) -> HTMLResponse:
    with using(request) as rt:
        seen = health(rt)
        latest = reads.repair_results(rt, limit=10).items
    failing = [p for p in seen.pairs if p[2] not in (None, Outcome.OK.value)]
    failing.sort(key=lambda p: (RANK.get(p[2] or "none", 0), p[1], p[0]))
    listed = [_Failing(*p) for p in failing[:LISTED]]
    overdue = sorted(seen.overdue, key=lambda p: (p.next_run, p.host))
    engines = seen.engines.to_dicts()
    return _page(
        "overview.html", request, seen.now, token=token, counts=seen.outcomes,
        total=len(seen.pairs), failing=listed, failing_count=len(failing),
        overdue=overdue[:LISTED], overdue_count=len(overdue), flagged=seen.flagged,
        dead=[e for e in engines if e["state"] == "dead"],
        engines=sorted(engines, key=lambda e: (e["state"] != "dead", e["engine_id"])),
        repairs=latest,
    )  # fmt: skip


@router.get("/hosts/{host}", response_class=HTMLResponse)
def host_page(request: Request, host: str, token: Viewer) -> HTMLResponse:
    with using(request) as rt:
        now = rt.clock.now()
        rows = reads.audits(rt, host=host).items
        if not rows:
            raise HTTPException(404, f"no audit rows for host {host!r}")
        history = reads.results(rt, host=host, limit=50).items
        runs = reads.repair_results(rt, host=host, limit=20).items
        states = repairs.states(rt, host)
    rows = _worst_first(rows, lambda r: (r.result or {}).get("outcome"))
    return _page("host.html", request, now, token=token, host=host, rows=rows, history=history,
                 runs=runs, states=states)  # fmt: skip


@router.get("/audits/{audit}", response_class=HTMLResponse)
def audit_page(request: Request, audit: str, token: Viewer) -> HTMLResponse:
    with using(request) as rt:
        now = rt.clock.now()
        schedules = reads.audit_schedules(rt, audit)
        rows = reads.audits(rt, audit_name=audit).items
        history = reads.results(rt, audit_name=audit, limit=20).items
    rows = _worst_first(rows, lambda r: (r.result or {}).get("outcome"))
    counts: dict[str, int] = {}
    for r in rows:
        name = (r.result or {}).get("outcome") or "none"
        counts[name] = counts.get(name, 0) + 1
    return _page("audit.html", request, now, token=token, audit=audit, schedules=schedules,
                 rows=rows[:LISTED], total=len(rows), counts=counts, history=history)  # fmt: skip


@router.get("/repairs", response_class=HTMLResponse)
def repairs_page(request: Request, token: Viewer) -> HTMLResponse:
    with using(request) as rt:
        now = rt.clock.now()
        states = repairs.states(rt)
        plan = repairs.plan(rt)
        runs = reads.repair_results(rt, limit=100).items
    states = sorted(states, key=lambda s: (not s["flagged"], not s["running"], s["host"]))
    return _page("repairs.html", request, now, token=token, states=states, plan=plan, runs=runs)


# -- signing in -------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _page("login.html", request, datetime.now(UTC), token=None, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    secret = (form.get("token") or [""])[0].strip()
    found = request.app.state.tokens.check(secret) if secret else None
    if found is None:
        page = _page("login.html", request, datetime.now(UTC), token=None,
                     error="That token is not known.")  # fmt: skip
        page.status_code = 401
        return page
    done = RedirectResponse("/", status_code=303)
    secure = request.url.scheme == "https"
    done.set_cookie(COOKIE, secret, httponly=True, samesite="strict", secure=secure)
    return done


@router.get("/logout")
def logout() -> Response:
    done = RedirectResponse("/login", status_code=303)
    done.delete_cookie(COOKIE)
    return done
