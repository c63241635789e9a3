"""The Nagios plugin conventions every runner shares.

Exit codes to outcomes, the first line as the summary, perfdata into metrics
(https://nagios-plugins.org/doc/guidelines.html#AEN200), latency thresholds,
and output cut to a size with a visible marker.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..model import Outcome
from .template import ScriptError

EXIT_OUTCOMES = {0: Outcome.OK, 1: Outcome.WARNING, 2: Outcome.CRITICAL, 3: Outcome.UNKNOWN}

# One perfdata token: 'quoted label' ('' is a quote inside) or a bare label, `=`, the
# data up to the next blank. Anything else is one junk token, skipped.
_TOKEN = re.compile(r"\s*(?:(?:'((?:[^']|'')+)'|([^\s'=]+))=(\S*)|\S+)")
_VALUE = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)([^\d;.\s][^;\s]*)?")

Metric = dict[str, Any]


def exit_outcome(code: int) -> Outcome:
    """0-3 as Nagios means them; anything else (a signal too) is unknown."""
    return EXIT_OUTCOMES.get(code, Outcome.UNKNOWN)


def split_output(text: str) -> tuple[str, str]:
    """(summary, perfdata text) of a plugin's output.

    The first line is `summary | perfdata`; in long output, the first `|`
    on a later line starts perfdata that runs to the end of the output.
    """
    first, _, rest = text.partition("\n")
    summary, _, perfdata = first.partition("|")
    _, bar, more = rest.partition("|")
    if bar:
        perfdata = f"{perfdata} {more}"
    return summary.strip(), perfdata


def parse_perfdata(text: str) -> dict[str, Metric]:
    """`label=value[UOM];warn;crit;min;max ...` -> metrics; a bad token is skipped."""
    metrics: dict[str, Metric] = {}
    for match in _TOKEN.finditer(text):
        quoted, bare, data = match.groups()
        if data is None:
            continue
        label = quoted.replace("''", "'") if quoted is not None else bare
        metric = _parse_data(data)
        if metric is not None:
            metrics[label] = metric
    return metrics


def _parse_data(data: str) -> Metric | None:
    value, *limits = data.split(";")
    match = _VALUE.fullmatch(value.replace(",", "."))  # some locales print 1,5
    if match is None:
        return None  # includes "U", the plugin's "could not measure"
    number = float(match.group(1))
    if not math.isfinite(number):
        return None
    limits += [""] * (4 - len(limits))
    return metric(
        number,
        match.group(2) or "",
        limits[0] or None,
        limits[1] or None,
        _float(limits[2]),
        _float(limits[3]),
    )


def _float(text: str) -> float | None:
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def metric(
    value: float,
    uom: str = "",
    warn: str | None = None,
    crit: str | None = None,
    min: float | None = None,
    max: float | None = None,
) -> Metric:
    """One metric in the shape every runner reports."""
    return {"value": value, "uom": uom, "warn": warn, "crit": crit, "min": min, "max": max}


def thresholds(params: dict[str, Any]) -> tuple[float | None, float | None]:
    """(warning_ms, critical_ms) of a script, checked to be numbers."""
    found = []
    for key in ("warning_ms", "critical_ms"):
        value = params.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ScriptError(f"{key} must be a number of milliseconds, got {value!r}")
        found.append(None if value is None else float(value))
    return found[0], found[1]


def latency(ms: float, warning_ms: float | None, critical_ms: float | None) -> tuple[Outcome, str]:
    """The outcome a response time earns, and why when it is not ok."""
    if critical_ms is not None and ms > critical_ms:
        return Outcome.CRITICAL, f"{ms:.1f} ms is over critical {critical_ms:g} ms"
    if warning_ms is not None and ms > warning_ms:
        return Outcome.WARNING, f"{ms:.1f} ms is over warning {warning_ms:g} ms"
    return Outcome.OK, ""


def time_metric(ms: float, warning_ms: float | None, critical_ms: float | None) -> Metric:
    """The `time` metric of http and tcp checks, in milliseconds."""
    return metric(
        round(ms, 3),
        "ms",
        None if warning_ms is None else f"{warning_ms:g}",
        None if critical_ms is None else f"{critical_ms:g}",
        0.0,
    )


SUMMARY_LIMIT = 1024  # bytes (UTF-8) of a result's summary, the marker included


def cap_summary(summary: str, limit: int = SUMMARY_LIMIT) -> str:
    """summary cut to `limit` UTF-8 bytes, marked where it was cut; short ones as they are.

    A plugin printing 300 KB on one line made a 64 KiB summary, stored in
    every row and printed whole; the output keeps the rest (output_limit).
    """
    if len(summary) <= limit // 4:  # the common case: no encoding needed to know it fits
        return summary
    data = summary.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return summary
    marker = f" [... summary cut at {limit} of {len(data)} bytes]"
    keep = limit - len(marker.encode())
    return data[:keep].decode("utf-8", "ignore") + marker


def cut(data: bytes, limit: int, total: int | None = None) -> str:
    """data as text, cut at limit bytes with a marker saying where (and of how much)."""
    total = len(data) if total is None else total
    if total <= limit:
        return data.decode("utf-8", "replace")
    text = data[:limit].decode("utf-8", "replace")
    return f"{text}\n[... output cut at {limit} of {total} bytes ...]"
