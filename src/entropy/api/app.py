"""The FastAPI application: its routes and options, the errors as HTTP statuses."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..errors import EntropyError
from ..service.runtime import Runtime
from ..service.tokens import token_file
from . import dashboard, events, metrics, ops, v1
from .auth import OPEN_PATHS
from .common import JSON, error_response


def create_app(rt: Runtime) -> FastAPI:
    """The API over `rt`'s backend, with the tokens and options of its [api] section."""
    app = FastAPI(
        title="Entropy",
        version=__version__,
        description="Audit a fleet of hosts on schedule and repair what the audits find. "
        "Every route but /openapi.json and /docs needs `Authorization: Bearer TOKEN` "
        "(`entropy api token add`); acting needs an operator's token.",
        default_response_class=JSON,
    )
    app.state.runtime = rt
    app.state.tokens = token_file(rt)
    app.state.open_paths = {opt: bool(rt.option(opt, "api")) for opt in OPEN_PATHS.values()}
    app.add_exception_handler(EntropyError, error_response)
    app.include_router(v1.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    return app
