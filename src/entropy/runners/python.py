"""kind: python - call a function in this process: function(host, params).

`function` is "module:function" or a name registered under the entry point
group `entropy.audits`. Resolved functions are cached: no-op audits run by
the thousand per second, so a call costs a dict lookup and little else.

A python audit runs in the engine's worker thread and can't be killed: one
that hangs holds its worker until it returns. A run that overran job.timeout
is reported as `timeout` once it does return; audits that wait on I/O should
set their own timeouts.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..model import Outcome, Result
from .base import Job
from .nagios import metric
from .template import ScriptError

GROUP = "entropy.audits"

AuditFunction = Callable[[Any, dict[str, Any]], Any]

_functions: dict[str, AuditFunction] = {}  # resolved names; failures are not kept


def run(job: Job) -> Result:
    name: Any = job.script.params.get("function")  # as written in YAML; resolve() checks it
    try:
        function = _functions[name]
    except (KeyError, TypeError):  # not resolved yet (or not even a name)
        try:
            function = _functions[name] = resolve(name)
        except ScriptError as exc:
            return Result(Outcome.ERROR, str(exc))
    started = time.perf_counter()
    try:
        value = function(job.host, job.params)
    except Exception as exc:
        verdict = Result(Outcome.ERROR, f"{type(exc).__name__}: {exc}")
    else:
        verdict = Result(Outcome.OK, "ok") if value is None or value is True else _verdict(value)
    elapsed = time.perf_counter() - started
    if elapsed > job.timeout > 0:
        return Result(
            Outcome.TIMEOUT,
            f"took {elapsed:.1f}s, over the {job.timeout:g}s timeout",
            f"it returned {verdict.outcome.value}: {verdict.summary}\n{verdict.output}".rstrip(),
            verdict.metrics,
        )
    return verdict


def resolve(name: Any) -> AuditFunction:
    """The callable a `function` names; ScriptError naming it when there is none."""
    if not isinstance(name, str) or not name:
        raise ScriptError(
            f"function must be 'module:function' or an entry point name, got {name!r}"
        )
    if ":" not in name:
        found = entry_points(group=GROUP, name=name)
        if not found:
            raise ScriptError(
                f"function {name!r}: no entry point of that name in group {GROUP!r} "
                "(or write it as 'module:function')"
            )
        try:
            target: Any = next(iter(found)).load()
        except Exception as exc:
            raise ScriptError(
                f"function {name!r}: cannot load: {type(exc).__name__}: {exc}"
            ) from None
    else:
        module_name, _, path = name.partition(":")
        try:
            target = importlib.import_module(module_name)
        except Exception as exc:  # ImportError, or the module's own crash on import
            raise ScriptError(
                f"function {name!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from None
        for attribute in path.split("."):
            try:
                target = getattr(target, attribute)
            except AttributeError:
                raise ScriptError(f"function {name!r}: {module_name!r} has no {path!r}") from None
    if not callable(target):
        raise ScriptError(f"function {name!r} is not callable")
    return target


def _verdict(value: Any) -> Result:
    """Whatever an audit returned, as a Result (None and True are handled by run)."""
    try:
        verdict = _convert(value)
    except _Unusable as exc:
        return Result(Outcome.ERROR, f"the audit returned {exc}, not a result")
    if verdict.outcome is Outcome.UNREACHABLE:  # Entropy's verdict on a dependency, not an audit's
        return Result(Outcome.ERROR, "the audit returned unreachable: only Entropy says that, "
                      "when a dependency (depends_on) is down", verdict.output)  # fmt: skip
    return verdict


class _Unusable(Exception):
    """What an audit returned can't be read as a result."""


def _convert(value: Any) -> Result:
    if isinstance(value, Result):
        return value
    if value is False:
        return Result(Outcome.CRITICAL, "failed")
    if isinstance(value, str):  # Outcome is a str too
        outcome = _outcome(value)
        return Result(outcome, outcome.value)
    if isinstance(value, tuple) and len(value) == 2:
        return Result(_outcome(value[0]), str(value[1]))
    if isinstance(value, dict):
        unknown = set(value) - {"outcome", "summary", "output", "metrics"}
        if unknown:
            raise _Unusable(f"a dict with unknown keys {sorted(map(str, unknown))}")
        outcome = _outcome(value.get("outcome", Outcome.OK))
        return Result(
            outcome,
            str(value.get("summary") or outcome.value),
            str(value.get("output") or ""),
            _metrics(value.get("metrics") or {}),
        )
    raise _Unusable(f"a {type(value).__name__}")


def _outcome(value: Any) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        choices = ", ".join(outcome.value for outcome in Outcome)
        raise _Unusable(f"outcome {value!r} (expected one of {choices})") from None


def _metrics(value: Any) -> dict[str, dict[str, Any]]:
    """Metrics as given; a bare number becomes {"value": number, ...}."""
    if not isinstance(value, dict):
        raise _Unusable(f"metrics as a {type(value).__name__} (expected a dict)")
    return {
        str(label): metric(float(data))
        if isinstance(data, int | float) and not isinstance(data, bool)
        else data
        for label, data in value.items()
    }
