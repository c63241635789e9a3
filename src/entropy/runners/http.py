"""kind: http - one request; its status, body and response time decide the outcome.

Redirects are not followed: a 3xx is the answer, so `expect_status: [200, 300]`
means what it says. Proxies from the environment are not used either: the
check measures the target, not a proxy in front of it. TLS is verified unless
the script says `verify_tls: false`.
"""

from __future__ import annotations

import functools
import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ..model import Outcome, Result
from .base import Job
from .nagios import cut, latency, metric, thresholds, time_metric
from .template import ScriptError, as_text, render

BODY_LIMIT = 1024 * 1024  # bytes read, enough for body_regex without unbounded memory
OUTPUT_LIMIT = 4096  # bytes of the body kept in the result


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx, which we report


@functools.cache
def _opener(verify_tls: bool) -> urllib.request.OpenerDirector:
    """One opener per TLS mode, built once: openers hold no per-request state."""
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _NoRedirect(),
        urllib.request.HTTPSHandler(context=context),
    )


def run(job: Job) -> Result:
    try:
        request, verify_tls = _request(job)
        expect = _expect_status(job.script.params.get("expect_status", [200]))
        pattern = _body_regex(job.script.params.get("body_regex"))
        warning_ms, critical_ms = thresholds(job.script.params)
    except ScriptError as exc:
        return Result(Outcome.ERROR, str(exc))

    url = request.full_url
    started = time.perf_counter()
    try:
        try:
            response: Any = _opener(verify_tls).open(request, timeout=job.timeout)
        except urllib.error.HTTPError as exc:
            response = exc  # a status like any other: expect_status decides
        with response:
            body = response.read(BODY_LIMIT + 1)
    except urllib.error.URLError as exc:
        return Result(Outcome.CRITICAL, f"{url}: {_reason(exc.reason, job.timeout)}")
    except (OSError, http.client.HTTPException) as exc:
        return Result(Outcome.CRITICAL, f"{url}: {_reason(exc, job.timeout)}")
    ms = (time.perf_counter() - started) * 1000

    status = response.status
    size = f"{BODY_LIMIT}+" if len(body) > BODY_LIMIT else str(len(body))
    info = f"HTTP {status} {response.reason} - {size} bytes in {ms:.1f} ms"
    outcome, problem = latency(ms, warning_ms, critical_ms)
    if status not in expect:
        outcome, problem = Outcome.CRITICAL, f"expected status {', '.join(map(str, expect))}"
    elif pattern is not None and not pattern.search(_text(body, response)):
        outcome, problem = Outcome.CRITICAL, f"body does not match {pattern.pattern!r}"
    output = f"HTTP {status} {response.reason}\n{response.headers}\n" + cut(
        body[:OUTPUT_LIMIT], OUTPUT_LIMIT, len(body)
    )
    metrics = {
        "time": time_metric(ms, warning_ms, critical_ms),
        "status": metric(float(status)),
        "size": metric(float(min(len(body), BODY_LIMIT)), "B", min=0.0),
    }
    return Result(outcome, f"{info}: {problem}" if problem else info, output, metrics)


def _request(job: Job) -> tuple[urllib.request.Request, bool]:
    params = job.script.params
    url = render(as_text(params.get("url")), job)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ScriptError(f"url must be an http:// or https:// URL, got {url!r}")
    headers = params.get("headers") or {}
    if not isinstance(headers, dict):
        raise ScriptError(f"headers must be a mapping, got {headers!r}")
    headers = {str(name): render(as_text(value), job) for name, value in headers.items()}
    body = params.get("body")
    data: bytes | None = None
    if isinstance(body, dict | list):  # structured: send it as JSON
        data = json.dumps(body).encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    elif body is not None:
        data = render(as_text(body), job).encode()
    verify_tls = params.get("verify_tls", True)
    if not isinstance(verify_tls, bool):
        raise ScriptError(f"verify_tls must be true or false, got {verify_tls!r}")
    method = str(params.get("method") or "GET").upper()
    return urllib.request.Request(url, data=data, headers=headers, method=method), verify_tls


def _expect_status(value: Any) -> frozenset[int]:
    codes = value if isinstance(value, list | tuple) else [value]
    try:
        found = frozenset(int(code) for code in codes if not isinstance(code, bool))
    except (TypeError, ValueError):
        found = frozenset()
    if not found or len(found) != len(codes):
        raise ScriptError(f"expect_status must be a status code or a list of them, got {value!r}")
    return found


def _body_regex(value: Any) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(str(value))  # re keeps its own cache of compiled patterns
    except re.error as exc:
        raise ScriptError(f"body_regex {value!r} is not a valid regex: {exc}") from None


def _text(body: bytes, response: Any) -> str:
    charset = response.headers.get_content_charset() or "utf-8"
    try:
        return body.decode(charset, "replace")
    except LookupError:  # a charset Python doesn't know
        return body.decode("utf-8", "replace")


def _reason(exc: BaseException | str, timeout: float) -> str:
    """Why a request failed, in the words an operator would use."""
    if isinstance(exc, str):
        return exc
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
