"""The HTTP API, Prometheus /metrics and the dashboard: `entropy api serve`.

A front end beside the CLI: it parses a request, calls the same service
functions the CLI calls, and answers JSON (or HTML, or Prometheus text). No
SQL and no backend here; it keeps nothing between requests but the open
backend, so any number of them can run beside the engines.

- app: the FastAPI application, errors to HTTP statuses, the JSON encoding
- auth: bearer tokens and roles (service.tokens keeps the file)
- v1: the /v1 routes, reading and acting
- metrics: the Prometheus collector
- dashboard: the server-rendered pages at /
- serve: uvicorn, bound where --bind says
"""
