"""The job and result messages: what goes on the wire, and what a reader refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from entropy.broker.protocol import (
    RESULTS_PER_MESSAGE,
    Claim,
    JobMessage,
    ProtocolError,
    bundle_results,
    decode_job,
    decode_result,
    read_results,
    reply,
)
from entropy.errors import Location
from entropy.model import Host, HostSsh, Outcome, Result, Script
from entropy.runners.base import Job

T = TypeVar("T")
SLOT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOST = Host(
    "db-1.example.com", "10.0.0.5", "db", ("mysql",), {"rack": "r1", "disks": [1, 2]},
    Location("/fleet/hosts.yaml", 3, 1), ssh=HostSsh(port=2222, user="ops"), zone="dc-2",
)  # fmt: skip
SCRIPT = Script("check_disk", "command", {"command": ["check_disk", "-w", "{params.warn}"]}, 10,
                Location("/fleet/scripts.yaml", 7, 1))  # fmt: skip


def a_job(**changes: object) -> JobMessage:
    fields = {
        "job_id": "j-1", "job": Job("check_disk", HOST, SCRIPT, {"warn": "10%"}, 10.0),
        "claim": Claim("engine-a", 4), "row_id": 42, "slot": SLOT, "output_limit": 100,
        "context": {"kind": "audit"},
    }  # fmt: skip
    return JobMessage(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_job_message_carries_everything_a_worker_needs_and_reads_back_the_same() -> None:
    message = a_job()
    wire = json.loads(message.encode())
    assert wire["type"] == "job" and wire["v"] == 1
    assert wire["host"] == {"name": "db-1.example.com", "ip_address": "10.0.0.5",
                            "host_type": "db", "groups": ["mysql"],
                            "vars": {"rack": "r1", "disks": [1, 2]},
                            "ssh": {"port": 2222, "user": "ops"}, "zone": "dc-2"}  # fmt: skip
    assert wire["script"]["where"] == "/fleet/scripts.yaml"
    assert wire["slot"] == "2026-03-01T12:00:00+00:00"
    back = decode_job(message.encode())
    assert back == message  # Host and Script compare without their Location
    assert back.zone == "dc-2"
    assert back.job.script.where.path == "/fleet/scripts.yaml"  # a relative upload: is found there


def test_a_result_message_echoes_the_jobs_identity() -> None:
    started = datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    result = Result(Outcome.CRITICAL, "DISK CRITICAL", "x" * 300, {"used": {"value": 91.0}},
                    started, started)  # fmt: skip
    answer = reply(a_job(), result, "worker-7", redelivered=True, delivery_count=1)
    assert answer.result.output.startswith("x" * 100)
    assert "[... output cut at 100 of 300 bytes ...]" in answer.result.output  # output_limit
    back = decode_result(answer.encode())
    assert back == answer
    recorded = back.to_result()
    assert (recorded.audit_name, recorded.host, recorded.slot, recorded.engine_id) == (
        "check_disk",
        "db-1.example.com",
        SLOT,
        "engine-a",
    )
    assert (back.claim, back.row_id, back.context, back.zone) == (
        Claim("engine-a", 4),
        42,
        {"kind": "audit"},
        "dc-2",
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"v": 2}, "protocol version 2; this Entropy reads version 1: upgrade it"),
        ({"type": "result"}, "not a job message: its type is 'result'"),
        ({"timeout": "10"}, "job: timeout must be a number"),
        ({"claim": {"epoch": 1}}, "job: claim: engine_id is missing"),
        ({"row_id": True}, "job: row_id must be an integer, got bool"),
        ({"slot": "yesterday"}, "job: slot is not an ISO 8601 time"),
        ({"slot": "2026-03-01T12:00:00"}, "job: slot has no UTC offset"),
        ({"output_limit": 0}, "output_limit must be a positive number"),
    ],
)
def test_a_job_message_that_is_not_right_is_refused_saying_why(
    change: dict[str, object], words: str
) -> None:
    wire = {**json.loads(a_job().encode()), **change}
    with pytest.raises(ProtocolError) as info:
        decode_job(json.dumps(wire))
    assert words in str(info.value)


@pytest.mark.parametrize("name", ["$(touch /tmp/x)", "-oProxyCommand=x", "a;b"])
def test_a_hostile_host_name_in_a_job_is_refused(name: str) -> None:
    wire = json.loads(a_job().encode())
    wire["host"]["name"] = name
    with pytest.raises(ProtocolError, match=r"job: host: host name .* must be a DNS name"):
        decode_job(json.dumps(wire))


def test_not_json_and_not_an_object_are_refused() -> None:
    with pytest.raises(ProtocolError, match="not a job message: not JSON"):
        decode_job(b"\xff\x00")
    with pytest.raises(ProtocolError, match="a JSON list, not an object"):
        decode_job(b"[]")
    with pytest.raises(ProtocolError, match="result: outcome 'fine' is not an outcome"):
        wire = json.loads(reply(a_job(), Result(Outcome.OK, "ok"), "w").encode())
        decode_result(json.dumps({**wire, "outcome": "fine"}))


def _read_or_refused(
    decode: Callable[[str], T], wire: dict[str, Any], words: str | None
) -> T | None:
    """The message read back; with words, None once the ProtocolError saying them is raised."""
    if words is None:
        return decode(json.dumps(wire))
    with pytest.raises(ProtocolError) as info:
        decode(json.dumps(wire))
    assert words in str(info.value)
    return None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"output": None, "metrics": None, "context": None, "redelivered": None}, None),
        ({"claim": {"engine_id": "engine-a", "epoch": None}}, None),
        ({"slot": None, "row_id": None, "started_at": None}, None),
        ({"row_id": True}, "result: row_id must be an integer, got bool"),
        ({"claim": {"engine_id": 3}}, "result: claim: engine_id must be text"),
        ({"finished_at": "2026-03-01T12:00:00"}, "result: finished_at has no UTC offset"),
        ({"started_at": 5}, "result: started_at must be text, got int"),
        ({"outcome": ["ok"]}, "result: outcome must be text, got list"),
        ({"delivery_count": 1.5}, "result: delivery_count must be an integer, got float"),
        ({"summary": None}, "result: summary must be text, got NoneType"),
    ],
)
def test_a_result_reads_the_same_on_the_quick_path_as_field_by_field(
    change: dict[str, object], words: str | None
) -> None:
    """decode_result reads well-formed results without a _Reader (protocol._quick_result): what
    it accepts, and how, is still _Reader's (nulls for defaults, the same refusals)."""
    started = datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    answer = reply(a_job(), Result(Outcome.WARNING, "w", "out", {"m": 1}, started, started), "w")
    wire = {**json.loads(answer.encode()), **change}
    back = _read_or_refused(decode_result, wire, words)
    if back is None:
        return
    assert (back.result.output, back.result.metrics, back.context, back.redelivered) == (
        "" if "output" in change else "out", {} if "metrics" in change else {"m": 1},
        {} if "context" in change else {"kind": "audit"}, False,
    )  # fmt: skip
    assert back.claim == Claim("engine-a", 0 if "claim" in change else 4)
    assert (back.slot, back.row_id, back.result.started_at) == (
        (None, None, None) if "slot" in change else (SLOT, 42, started)
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({}, None),
        ({"host": {"zone": None, "groups": None, "vars": None, "ssh": None}}, None),
        ({"script": {"timeout": None, "where": None}, "context": None, "slot": None}, None),
        ({"claim": {"engine_id": "engine-a", "epoch": None}, "row_id": None}, None),
        ({"timeout": True}, "job: timeout must be a number"),
        ({"script": {"timeout": True}}, "job: script: timeout must be an integer, got bool"),
        ({"host": {"groups": "mysql"}}, "job: host: groups must be a list, got str"),
        ({"host": {"name": "a;b"}}, "job: host: host name"),
        ({"output_limit": -1}, "output_limit must be a positive number"),
    ],
)
def test_a_job_reads_the_same_on_the_quick_path_as_field_by_field(
    change: dict[str, dict[str, object] | object], words: str | None
) -> None:
    """decode_job reads well-formed jobs of hosts without ssh settings without a _Reader
    (protocol._quick_job): the same values, nulls for defaults, the same refusals."""
    message = a_job(job=Job("check_disk", replace(HOST, ssh=None), SCRIPT, {"warn": "10%"}, 10.0))
    wire = json.loads(message.encode())
    for key, value in change.items():
        wire[key] = {**wire[key], **value} if isinstance(value, dict) else value
    back = _read_or_refused(decode_job, wire, words)
    if back is None:
        return
    host, script = change.get("host", {}), change.get("script", {})
    assert back.job.host.zone == ("default" if host else "dc-2")
    assert (back.job.host.groups, back.job.host.vars) == (
        ((), {}) if host else (("mysql",), {"rack": "r1", "disks": [1, 2]})
    )
    assert (back.job.script.timeout, back.job.script.where.path) == (
        (None, "<job message>") if script else (10, "/fleet/scripts.yaml")
    )
    assert (back.context, back.slot) == (({}, None) if script else ({"kind": "audit"}, SLOT))
    assert (back.claim.epoch, back.row_id) == ((0, None) if "claim" in change else (4, 42))
    if not change:
        assert back == message


def test_results_sent_together_read_back_in_order_and_one_alone_as_before() -> None:
    answers = [reply(a_job(job_id=f"j-{n}", row_id=n), Result(Outcome.OK, f"fine {n}"), "w-1")
               for n in range(3)]  # fmt: skip
    bodies = [answer.encode() for answer in answers]
    assert read_results(bundle_results(bodies)) == answers
    assert bundle_results(bodies[:1]) == bodies[0]  # one result: the message it always was
    assert read_results(bodies[0]) == [decode_result(bodies[0])] == answers[:1]


def test_a_bundle_with_a_bad_result_is_refused_naming_which() -> None:
    good = reply(a_job(), Result(Outcome.OK, "fine"), "w-1").encode()
    bad = json.dumps({**json.loads(good), "outcome": "fine"}).encode()
    with pytest.raises(ProtocolError, match=r"result 2 of 2: .*outcome 'fine'"):
        read_results(bundle_results([good, bad]))
    with pytest.raises(ProtocolError, match="an array of 0"):
        read_results(b"[]")
    with pytest.raises(ProtocolError, match=f"an array of {RESULTS_PER_MESSAGE + 1}"):
        read_results(bundle_results([good] * (RESULTS_PER_MESSAGE + 1)))
    with pytest.raises(ProtocolError, match="result 1 of 1: not a result message: a JSON list"):
        read_results(b"[[1]]")
