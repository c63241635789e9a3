"""@read_only: marks a CLI command that only reads (shared by the cli modules).

Its state store is opened read-only: a SQLite file is never created, locked
or upgraded by it, and one that is not there yet is a clear error. Put it
under the decorator that passes the session (pass_session, click.pass_obj).
"""

from __future__ import annotations

import functools
from typing import Any


def read_only(command: Any) -> Any:
    @functools.wraps(command)
    def only_reads(session: Any, *args: Any, **kwargs: Any) -> Any:
        session.read_only = True
        return command(session, *args, **kwargs)

    return only_reads
