"""framing.Batch writes the bytes py-amqp's basic_publish would, for many messages at once."""

from __future__ import annotations

from types import SimpleNamespace

import amqp
from amqp.method_framing import frame_writer

from entropy.broker.framing import Batch, JobProperties, properties, table


class _Socket:
    """Where the frames go: what each write() got."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.writes.append(bytes(data))


def _channel(frame_max: int = 131072) -> tuple[amqp.Channel, _Socket]:
    socket = _Socket()
    connection = SimpleNamespace(frame_max=frame_max, transport=socket, bytes_sent=0)
    return SimpleNamespace(connection=connection, channel_id=3), socket  # type: ignore[return-value]


def _by_py_amqp(frame_max: int, messages: list[tuple[str, str, amqp.Message]]) -> bytes:
    socket = _Socket()
    write = frame_writer(SimpleNamespace(frame_max=frame_max, bytes_sent=0), socket)
    for exchange, key, message in messages:
        args = amqp.serialization.dumps("Bssbb", (0, exchange, key, False, False))
        write(1, 3, amqp.spec.Basic.Publish, args, message)
    return b"".join(socket.writes)


def test_a_batch_is_what_basic_publish_sends_message_by_message_in_one_write() -> None:
    headers = {"entropy-engine": "e1"}
    sent = []
    channel, socket = _channel()
    batch = Batch(channel)
    for n, ttl in ((1, "30000"), (2, None)):
        body = b'{"n": %d}' % n
        batch.add("entropy.jobs", "dc-2", properties(
            content_type="application/json", headers=table(headers), delivery_mode=2,
            correlation_id=f"job-{n}", reply_to="entropy.results.e1", expiration=ttl,
            message_id=f"job-{n}"), body)  # fmt: skip
        fields = {"content_type": "application/json", "application_headers": headers,
                  "delivery_mode": 2, "correlation_id": f"job-{n}",
                  "reply_to": "entropy.results.e1", "message_id": f"job-{n}"}  # fmt: skip
        if ttl:
            fields["expiration"] = ttl
        sent.append(("entropy.jobs", "dc-2", amqp.Message(body, **fields)))
    batch.add("", "entropy.results.e1", properties(content_type="application/json",
              delivery_mode=2, correlation_id="job-1"), b"{}")  # fmt: skip
    result = amqp.Message(b"{}", content_type="application/json", delivery_mode=2,
                          correlation_id="job-1")  # fmt: skip
    sent.append(("", "entropy.results.e1", result))
    assert socket.writes == []  # nothing before flush
    assert batch.flush() == 3
    assert socket.writes == [_by_py_amqp(131072, sent)]
    assert batch.flush() == 0 and len(socket.writes) == 1


def test_a_body_longer_than_a_frame_goes_in_several_body_frames_as_py_amqp_cuts_it() -> None:
    channel, socket = _channel(frame_max=4096)
    body = bytes(range(256)) * 40  # 10,240 bytes: three body frames
    batch = Batch(channel)
    batch.add("", "q", properties(delivery_mode=2, correlation_id="big"), body)
    batch.flush()
    message = amqp.Message(body, delivery_mode=2, correlation_id="big")
    assert socket.writes == [_by_py_amqp(4096, [("", "q", message)])]


def test_a_batch_says_when_it_is_worth_writing() -> None:
    channel, _ = _channel()
    batch = Batch(channel)
    while not batch.full:
        batch.add("", "q", properties(delivery_mode=2), b"x" * 1000)
    assert 100 <= batch.count <= 140  # about 128 KB


def test_job_properties_are_properties_with_the_id_twice() -> None:
    """JobClient encodes a job's properties from a template: the same bytes as properties()."""
    headers = table({"entropy-engine": "e1"})
    for ttl in ("30000", None):
        template = JobProperties(
            content_type="application/json", headers=headers, delivery_mode=2,
            reply_to="entropy.results.e1", expiration=ttl,
        )  # fmt: skip
        for job_id in ("j", "a" * 64, "é-1"):
            assert template(job_id) == properties(
                content_type="application/json", headers=headers, delivery_mode=2,
                correlation_id=job_id, reply_to="entropy.results.e1", expiration=ttl,
                message_id=job_id,
            )  # fmt: skip
