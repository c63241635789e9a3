"""`entropy api serve`: the app under uvicorn, at HOST:PORT."""

from __future__ import annotations

import uvicorn

from ..service import logs
from ..service.addresses import parse_bind
from ..service.runtime import Runtime
from .app import create_app
from .auth import ACTS


def serve(
    rt: Runtime,
    bind: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Serve the API until SIGINT or SIGTERM (uvicorn's graceful shutdown)."""
    host, port = parse_bind(bind or str(rt.option("bind", "api")), "--bind")
    _ = rt.backend  # opened now: a store that is not there is an error before listening
    app = create_app(rt)
    logs.at_least_info(ACTS)  # every act is logged, whatever -v says
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
    )  # fmt: skip
