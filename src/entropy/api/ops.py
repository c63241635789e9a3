"""/healthz: the process answers and its state store does (a load balancer's probe)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ..service import engines
from ..service.tokens import Token
from .auth import reader
from .common import using

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="ok when the state store answers (503 when it does not)")
def healthz(request: Request, _: Annotated[Token | None, Depends(reader)]) -> Any:
    with using(request) as rt:
        found = engines.engines(rt)  # one cheap query: the store is there and answers
    running = sum(1 for e in found.to_dicts() if e.get("state") == "running")
    return {"status": "ok", "engines_running": running}
