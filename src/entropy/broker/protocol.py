"""The job and result messages: JSON objects, versioned, self-contained.

A job message carries everything a worker needs to run one script against
one host without the state store: the script (kind, params, timeout), the
host (name, address, vars, ssh settings, zone), the schedule's params, the
timeout and the output limit; plus the job's identity, which the worker
echoes back untouched in its result: the (audit, host) pair, the state
row and slot, the claim (engine id + epoch: the fencing token with which
the engine recognises, and fences out, a late result) and a context that
only the engine reads.

    {"type": "job", "v": 1, "job_id": "…", "audit": "check_disk", "row_id": 42,
     "slot": "2026-03-01T12:00:00+00:00", "claim": {"engine_id": "e1", "epoch": 3},
     "context": {}, "timeout": 60.0, "output_limit": 65536, "params": {},
     "script": {"name": "check_disk", "kind": "command", "params": {"command": […]},
                "timeout": 10, "where": "/etc/entropy/fleet/scripts.yaml"},
     "host": {"name": "db-1.example.com", "ip_address": "10.0.0.5", "host_type": "db",
              "groups": [], "vars": {}, "ssh": null, "zone": "dc-2"}}

    {"type": "result", "v": 1, "job_id": "…", "audit": "check_disk",
     "host": "db-1.example.com", "row_id": 42, "slot": "…", "claim": {…}, "context": {},
     "outcome": "critical", "summary": "…", "output": "…", "metrics": {},
     "started_at": "…", "finished_at": "…", "worker_id": "w1", "zone": "dc-2",
     "redelivered": false, "delivery_count": 0}

A worker may send the results it has ready together, for the same engine,
as one message whose body is a JSON array of result objects (at most
RESULTS_PER_MESSAGE): RabbitMQ's cost is per message, not per result.
Engines read both forms (read_results); an engine older than bundles drops
an array as unreadable, so engines are upgraded before their workers.

Times are ISO 8601 with their UTC offset. A reader refuses a message of
another type or of a newer version (`v`), naming what it got; fields it
does not know are ignored, so a later version may add some.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import EntropyError, Location
from ..model import DEFAULT_ZONE, Host, HostSsh, Outcome, Result, Script
from ..runners.base import Job
from ..runners.command import DEFAULT_OUTPUT_LIMIT
from ..runners.nagios import cut
from ..values import host_name_problem, ip_address_problem, zone_problem

VERSION = 1
CONTENT_TYPE = "application/json"
# One encoder each, made once: json.dumps with arguments makes a new one every call.
_compact = json.JSONEncoder(separators=(",", ":")).encode
_compact_any = json.JSONEncoder(separators=(",", ":"), default=str).encode  # odd metrics
RESULTS_PER_MESSAGE = 64  # results a worker sends in one message, at most
RESULTS_BYTES = 256 * 1024  # and no more bytes of them (one result is never cut)


class ProtocolError(EntropyError):
    """A message that is not a job (or a result) this version can read; says why."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The fencing token: who claimed the row, and which claim of it this is."""

    engine_id: str
    epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"engine_id": self.engine_id, "epoch": self.epoch}


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One job on the wire: the runners Job plus its identity."""

    job_id: str
    job: Job
    claim: Claim
    row_id: int | None = None  # None: a run outside the schedule (a repair, a verify)
    slot: datetime | None = None
    output_limit: int = DEFAULT_OUTPUT_LIMIT  # bytes of output its result carries at most
    context: dict[str, Any] = field(default_factory=dict)  # the engine's own, echoed back

    @property
    def zone(self) -> str:
        return self.job.host.zone

    def to_dict(self) -> dict[str, Any]:
        job = self.job
        return {
            "type": "job",
            "v": VERSION,
            "job_id": self.job_id,
            "audit": job.audit_name,
            "row_id": self.row_id,
            "slot": _iso(self.slot),
            "claim": self.claim.to_dict(),
            "context": self.context,
            "timeout": job.timeout,
            "output_limit": self.output_limit,
            "params": job.params,
            "script": _script_dict(job.script),
            "host": _host_dict(job.host),
        }

    def encode(self) -> bytes:
        return _compact(self.to_dict()).encode()


@dataclass(slots=True)
class ResultMessage:
    """One result on the wire: what the run found, who ran it, and the job it answers."""

    job_id: str
    audit: str
    host: str
    claim: Claim
    result: Result  # outcome, summary, output, metrics, started_at, finished_at
    worker_id: str
    zone: str
    row_id: int | None = None
    slot: datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False  # the broker had given this job to a worker before
    delivery_count: int | None = None  # how many times before (quorum queues count)

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "type": "result",
            "v": VERSION,
            "job_id": self.job_id,
            "audit": self.audit,
            "host": self.host,
            "row_id": self.row_id,
            "slot": _iso(self.slot),
            "claim": self.claim.to_dict(),
            "context": self.context,
            "outcome": r.outcome.value,
            "summary": r.summary,
            "output": r.output,
            "metrics": r.metrics,
            "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at),
            "worker_id": self.worker_id,
            "zone": self.zone,
            "redelivered": self.redelivered,
            "delivery_count": self.delivery_count,
        }

    def encode(self) -> bytes:
        # An odd metric value (not JSON) goes as its text, as the stores keep it.
        return _compact_any(self.to_dict()).encode()

    def to_result(self) -> Result:
        """The model Result the engine records: the run's, stamped with its slot and claim."""
        r = self.result
        return Result(
            r.outcome, r.summary, r.output, r.metrics, r.started_at, r.finished_at,
            slot=self.slot, engine_id=self.claim.engine_id, audit_name=self.audit,
            host=self.host,
        )  # fmt: skip


def reply(
    message: JobMessage,
    result: Result,
    worker_id: str,
    redelivered: bool = False,
    delivery_count: int | None = None,
) -> ResultMessage:
    """The result message answering a job, its output cut to the job's output_limit."""
    data = result.output.encode("utf-8", "replace")
    if len(data) > message.output_limit:
        result.output = cut(data, message.output_limit)
    return ResultMessage(
        message.job_id, message.job.audit_name, message.job.host.name, message.claim, result,
        worker_id, message.zone, message.row_id, message.slot, message.context, redelivered,
        delivery_count,
    )  # fmt: skip


# -- reading ---------------------------------------------------------------------------


def decode_job(body: bytes | str) -> JobMessage:
    """A job message read back; ProtocolError saying what is wrong with it."""
    doc = _document(body, "job")
    quick = _quick_job(doc)  # a worker reads thousands a second: most are well formed
    if quick is not None:
        return quick
    read = _Reader(doc, "job")
    script = _Reader(read.get("script", dict), "job: script")
    host = _Reader(read.get("host", dict), "job: host")
    job = Job(
        read.get("audit", str),
        _host(host),
        Script(
            script.get("name", str),
            script.get("kind", str),
            script.get("params", dict),
            script.get("timeout", int, None),
            Location(script.get("where", str, None) or "<job message>"),
        ),
        read.get("params", dict),
        float(read.number("timeout")),
    )
    limit = read.get("output_limit", int)
    if limit <= 0:
        raise ProtocolError(f"job: output_limit must be a positive number, got {limit}")
    return JobMessage(
        read.get("job_id", str),
        job,
        _claim(read),
        read.get("row_id", int, None),
        read.time("slot"),
        limit,
        read.get("context", dict, {}),
    )


def bundle_results(bodies: list[bytes]) -> bytes:
    """Encoded results (ResultMessage.encode) as one message's body: an array of them."""
    return bodies[0] if len(bodies) == 1 else b"[" + b",".join(bodies) + b"]"


def read_results(body: bytes | str) -> list[ResultMessage]:
    """A message of one result or of several (bundle_results), read back; ProtocolError
    saying what is wrong with it (and which of them)."""
    doc = _parsed(body, "result")
    if not isinstance(doc, list):
        return [_result(_checked(doc, "result"))]
    if not doc or len(doc) > RESULTS_PER_MESSAGE:
        raise ProtocolError(f"not a result message: an array of {len(doc)} (1 to "
                            f"{RESULTS_PER_MESSAGE} results)")  # fmt: skip
    results = []
    for n, item in enumerate(doc, 1):
        try:
            results.append(_result(_checked(item, "result")))
        except ProtocolError as exc:
            raise ProtocolError(f"result {n} of {len(doc)}: {exc}") from None
    return results


def decode_result(body: bytes | str) -> ResultMessage:
    """A result message read back; ProtocolError saying what is wrong with it."""
    return _result(_document(body, "result"))


def _result(doc: dict[str, Any]) -> ResultMessage:
    quick = _quick_result(doc)  # an engine reads thousands a second: most are well formed
    if quick is not None:
        return quick
    read = _Reader(doc, "result")
    outcome = read.get("outcome", str)
    try:
        verdict = Outcome(outcome)
    except ValueError:
        raise ProtocolError(f"result: outcome {outcome!r} is not an outcome") from None
    result = Result(
        verdict,
        read.get("summary", str),
        read.get("output", str, ""),
        read.get("metrics", dict, {}),
        read.time("started_at"),
        read.time("finished_at"),
    )
    return ResultMessage(
        read.get("job_id", str),
        read.get("audit", str),
        read.get("host", str),
        _claim(read),
        result,
        read.get("worker_id", str),
        read.get("zone", str),
        read.get("row_id", int, None),
        read.time("slot"),
        read.get("context", dict, {}),
        read.get("redelivered", bool, False),
        read.get("delivery_count", int, None),
    )


def _quick_job(doc: dict[str, Any]) -> JobMessage | None:
    """decode_job's reading of a well-formed job whose host has no ssh settings, without a
    _Reader call per field; None if anything is off, for the slow reading to name it. Every
    check is _Reader's (and _host's): this reads the same messages the same way."""
    get = doc.get
    job_id, audit, script, host = get("job_id"), get("audit"), get("script"), get("host")
    params, timeout, limit, claim = get("params"), get("timeout"), get("output_limit"), get("claim")
    row_id, context = get("row_id"), get("context", {})
    if not (type(job_id) is str and type(audit) is str and type(script) is dict
            and type(host) is dict and type(params) is dict and type(claim) is dict
            and type(timeout) in (int, float) and type(limit) is int and limit > 0
            and (row_id is None or type(row_id) is int) and type(context) is dict):  # fmt: skip
        return None
    engine_id, epoch = claim.get("engine_id"), claim.get("epoch", 0)
    name, kind, script_params = script.get("name"), script.get("kind"), script.get("params")
    script_timeout, where = script.get("timeout"), script.get("where")
    host_name, ip, zone = host.get("name"), host.get("ip_address"), host.get("zone", DEFAULT_ZONE)
    host_type, groups = host.get("host_type"), host.get("groups", [])
    host_vars = host.get("vars", {})
    if not (type(engine_id) is str and type(epoch) is int and type(name) is str
            and type(kind) is str and type(script_params) is dict
            and (script_timeout is None or type(script_timeout) is int)
            and (where is None or type(where) is str) and type(host_name) is str
            and type(ip) is str and type(zone) is str and type(host_type) is str
            and type(groups) is list and type(host_vars) is dict and host.get("ssh") is None
            and _address_problem(host_name, ip, zone) is None):  # fmt: skip
        return None
    try:
        slot = _quick_time(get("slot"))
    except (TypeError, ValueError):
        return None
    job = Job(
        audit,
        Host(host_name, ip, host_type, tuple(str(g) for g in groups), host_vars, zone=zone),
        Script(name, kind, script_params, script_timeout, Location(where or "<job message>")),
        params,
        float(doc["timeout"]),  # a number: checked above
    )
    return JobMessage(job_id, job, Claim(engine_id, epoch), row_id, slot, limit, context)


def _quick_result(doc: dict[str, Any]) -> ResultMessage | None:
    """decode_result's reading of a well-formed result, without a _Reader call per field;
    None if anything is off (missing, of another type, a bad time), for the slow reading
    to name it. Every check is _Reader's: this reads the same messages the same way."""
    get = doc.get
    job_id, audit, host, summary = get("job_id"), get("audit"), get("host"), get("summary")
    worker_id, zone, claim = get("worker_id"), get("zone"), get("claim")
    if not (type(job_id) is str and type(audit) is str and type(host) is str
            and type(summary) is str and type(worker_id) is str and type(zone) is str
            and type(claim) is dict):  # fmt: skip
        return None
    engine_id, epoch = claim.get("engine_id"), claim.get("epoch", 0)
    output, metrics, context = get("output", ""), get("metrics", {}), get("context", {})
    row_id, redelivered, count = get("row_id"), get("redelivered", False), get("delivery_count")
    if not (type(engine_id) is str and type(epoch) is int and type(output) is str
            and type(metrics) is dict and type(context) is dict
            and (row_id is None or type(row_id) is int) and type(redelivered) is bool
            and (count is None or type(count) is int)):  # fmt: skip
        return None
    try:
        outcome = _OUTCOMES[doc["outcome"]]
        started, finished, slot = _quick_time(get("started_at")), _quick_time(
            get("finished_at")), _quick_time(get("slot"))  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None
    result = Result(outcome, summary, output, metrics, started, finished)
    return ResultMessage(job_id, audit, host, Claim(engine_id, epoch), result, worker_id, zone,
                         row_id, slot, context, redelivered, count)  # fmt: skip


_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


def _quick_time(text: Any) -> datetime | None:
    """_Reader.time's reading of a valid time (or None); ValueError/TypeError otherwise."""
    if text is None:
        return None
    if type(text) is not str:
        raise TypeError(text)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(text)
    return value


_MISSING = object()


class _Reader:
    """Typed fields of one JSON object, each error naming the field."""

    def __init__(self, doc: dict[str, Any], what: str) -> None:
        self.doc, self.what = doc, what

    def get(self, name: str, kind: type, default: Any = _MISSING) -> Any:
        value = self.doc.get(name, _MISSING)
        if type(value) is kind:  # what JSON gives: no subclass (a bool is not an int here)
            return value
        if value is _MISSING or (value is None and default is not _MISSING):
            if default is _MISSING:
                raise ProtocolError(f"{self.what}: {name} is missing")
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError(
                f"{self.what}: {name} must be {_KINDS[kind]}, got {type(value).__name__}"
            )
        return value

    def number(self, name: str) -> float:
        value = self.doc.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{self.what}: {name} must be a number, got {value!r}")
        return value

    def time(self, name: str) -> datetime | None:
        text = self.get(name, str, None)
        if text is None:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ProtocolError(f"{self.what}: {name} is not an ISO 8601 time: {text!r}") from None
        if value.tzinfo is None:
            raise ProtocolError(f"{self.what}: {name} has no UTC offset: {text!r}")
        return value


_KINDS = {str: "text", int: "an integer", dict: "an object", list: "a list", bool: "true/false"}


def _document(body: bytes | str, kind: str) -> dict[str, Any]:
    return _checked(_parsed(body, kind), kind)


def _parsed(body: bytes | str, kind: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a {kind} message: not JSON ({exc})") from None


def _checked(doc: Any, kind: str) -> dict[str, Any]:
    """A message's object: of this kind and a version this Entropy reads."""
    if not isinstance(doc, dict):
        raise ProtocolError(f"not a {kind} message: a JSON {type(doc).__name__}, not an object")
    if doc.get("type") != kind:
        raise ProtocolError(f"not a {kind} message: its type is {doc.get('type')!r}")
    version = doc.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError(f"{kind} message without a version (v)")
    if version > VERSION:
        raise ProtocolError(
            f"{kind} message of protocol version {version}; this Entropy reads version "
            f"{VERSION}: upgrade it"
        )
    return doc


def _claim(read: _Reader) -> Claim:
    claim = _Reader(read.get("claim", dict), f"{read.what}: claim")
    return Claim(claim.get("engine_id", str), claim.get("epoch", int, 0))


def _host(read: _Reader) -> Host:
    name, ip = read.get("name", str), read.get("ip_address", str)
    zone = read.get("zone", str, DEFAULT_ZONE)
    # The engine sent what the definitions validated; a name still reaches argv here.
    problem = _address_problem(name, ip, zone)
    if problem:
        raise ProtocolError(f"{read.what}: {problem}")
    ssh = read.get("ssh", dict, None)
    groups = read.get("groups", list, [])
    return Host(
        name,
        ip,
        read.get("host_type", str),
        tuple(str(g) for g in groups),
        read.get("vars", dict, {}),
        ssh=None if ssh is None else _ssh(_Reader(ssh, f"{read.what}: ssh")),
        zone=zone,
    )


@functools.lru_cache(maxsize=4096)
def _address_problem(name: str, ip: str, zone: str) -> str | None:
    """A host's name, address and zone checked (a worker meets the same hosts slot after
    slot: checked once each)."""
    return host_name_problem(name) or ip_address_problem(ip) or zone_problem(zone)


def _ssh(read: _Reader) -> HostSsh:
    return HostSsh(
        read.get("address", str, None),
        read.get("port", int, None),
        read.get("user", str, None),
        read.get("jump", str, None),
    )


def _host_dict(host: Host) -> dict[str, Any]:
    return {
        "name": host.name,
        "ip_address": host.ip_address,
        "host_type": host.host_type,
        "groups": list(host.groups),
        "vars": host.vars,
        "ssh": None if host.ssh is None else host.ssh.to_dict(),
        "zone": host.zone,
    }


def _script_dict(script: Script) -> dict[str, Any]:
    # `where` only for its path: a relative `upload:` is found beside the scripts file.
    where = script.where.path if script.where.path != "<definitions>" else None
    return {
        "name": script.name,
        "kind": script.kind,
        "params": script.params,
        "timeout": script.timeout,
        "where": where,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
