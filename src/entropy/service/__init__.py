"""The operations the CLI and the HTTP API share, and the composition root.

Plain functions over a Runtime (the config, the backend, the clock) that
return plain data and never print; the front ends parse, call and show.

- runtime: Runtime, what every operation works on, opened lazily
- fleet: validate, sync, status, audits, plan, results, disable/enable
- adhoc: `audit run`, outside the schedule
- repairs: repair plan/list/reset, rules add/remove, events tail
- definitions: hosts, schedules and scripts kept in a database
- engines: the engine registry, engine stop
- schema: db current/upgrade
- transfer: import/export between backends, Ansible inventories
- ssh: ssh check
- compose: builds an engine from the config and runs it (GC knobs, exit)
- signals, logs: process-wide signal handling and logging set-up

Signals, gc.* and os._exit live here (compose, signals) and nowhere below.
"""
