"""/v1/events: the [notifications] bus as server-sent events, one broker queue per client.

Each client gets its own auto-deleted queue on the events exchange (as
`entropy events tail` does), read on a thread of its own; the thread stops
within a second of the client going away.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ..jsonout import to_json
from ..service import repairs
from ..service.tokens import Token
from .auth import reader
from .common import using

router = APIRouter(prefix="/v1", tags=["v1"])
KEEPALIVE = 15.0  # seconds between comments on a quiet stream, so proxies keep it open


def _frames(url: str, pattern: str) -> Iterator[str]:
    found: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(maxsize=1000)
    stop = threading.Event()

    def show(key: str, body: dict[str, Any]) -> None:
        # A client that reads too slowly misses events; it never holds up the broker.
        with contextlib.suppress(queue.Full):
            found.put_nowait((key, body))

    reading = threading.Thread(
        target=repairs.tail_events, args=(url, show, pattern),
        kwargs={"stop": stop, "on_problem": lambda _text: None}, daemon=True,
        name="entropy-api-events",
    )  # fmt: skip
    reading.start()
    try:
        yield ": connected\n\n"
        while True:
            try:
                key, body = found.get(timeout=KEEPALIVE)
            except queue.Empty:
                yield ": keepalive\n\n"
                continue
            kind = str(body.get("kind") or key.split(".", 1)[0] or "message")
            data = to_json({"key": key, **body}, indent=None, lenient=True)  # one line
            yield f"event: {kind}\ndata: {data}\n\n"
    finally:
        stop.set()


@router.get("/events", summary="Server-sent events from the [notifications] bus",
            response_class=StreamingResponse)  # fmt: skip
def events(
    request: Request, _: Annotated[Token | None, Depends(reader)],
    key: Annotated[str, Query(description="Routing key pattern, e.g. audit.# or repair.*")] = "#",
) -> StreamingResponse:  # fmt: skip
    with using(request) as rt:
        url = repairs.events_url(rt)  # an error (400) when no broker is configured
    return StreamingResponse(_frames(url, key), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})  # fmt: skip
