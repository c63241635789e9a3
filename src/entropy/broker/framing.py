"""Publishing many messages with one write: their AMQP frames built here, not per message.

py-amqp's basic_publish builds a Message, serialises its properties field
by field, and writes each message's frames with a system call of its own.
The broker's publishers (JobClient: jobs; the worker: results) send many
messages of one shape at once: a Batch takes each message's properties
already encoded (properties(): only the ids vary from one to the next; the
rest the caller encodes once) and writes the frames of all of them with one
sendall. The bytes are those basic_publish sends (tests/unit/test_broker_
framing.py reads them back with py-amqp).

Only on the connection's own thread (as everything else on it: see connection.py).
"""

from __future__ import annotations

import struct
from typing import Any

import amqp
from amqp.serialization import dumps

_METHOD, _HEADER, _BODY = 1, 2, 3  # frame types
_FRAME = struct.Struct(">BHI")  # type, channel, payload size
_END = b"\xce"
_BASIC = 60
_PUBLISH = struct.pack(">HH", _BASIC, 40)  # Basic.Publish
_CONTENT = struct.Struct(">HHQ")  # class, weight (0), body size
_WRITE_AT = 128 * 1024  # bytes gathered before a write, so a long batch is not held in memory

# Basic properties: (name, flag bit), in the order of the AMQP 0-9-1 content header.
_CONTENT_TYPE, _HEADERS, _DELIVERY_MODE = 1 << 15, 1 << 13, 1 << 12
_CORRELATION_ID, _REPLY_TO, _EXPIRATION, _MESSAGE_ID = 1 << 10, 1 << 9, 1 << 8, 1 << 7


def shortstr(text: str) -> bytes:
    data = text.encode()
    if len(data) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {text[:40]!r}...")
    return bytes((len(data),)) + data


def table(headers: dict[str, Any]) -> bytes:
    """application_headers, encoded (py-amqp's table encoding): encode once, pass to
    properties() for each message."""
    return dumps("F", (headers,))


def properties(
    *,
    content_type: str | None = None,
    headers: bytes | None = None,  # table()
    delivery_mode: int | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    expiration: str | None = None,
    message_id: str | None = None,
) -> bytes:
    """A content header's property flags and list (those Entropy's messages use)."""
    flags, parts = 0, []
    if content_type is not None:
        flags |= _CONTENT_TYPE
        parts.append(shortstr(content_type))
    if headers is not None:
        flags |= _HEADERS
        parts.append(headers)
    if delivery_mode is not None:
        flags |= _DELIVERY_MODE
        parts.append(bytes((delivery_mode,)))
    if correlation_id is not None:
        flags |= _CORRELATION_ID
        parts.append(shortstr(correlation_id))
    if reply_to is not None:
        flags |= _REPLY_TO
        parts.append(shortstr(reply_to))
    if expiration is not None:
        flags |= _EXPIRATION
        parts.append(shortstr(expiration))
    if message_id is not None:
        flags |= _MESSAGE_ID
        parts.append(shortstr(message_id))
    return struct.pack(">H", flags) + b"".join(parts)


class JobProperties:
    """properties() of messages alike but for their id, which is both their correlation_id
    and message_id (JobClient's jobs): all but the id encoded once."""

    def __init__(self, *, content_type: str, headers: bytes, delivery_mode: int, reply_to: str,
                 expiration: str | None) -> None:  # fmt: skip
        flags = _CONTENT_TYPE | _HEADERS | _DELIVERY_MODE | _CORRELATION_ID | _REPLY_TO
        flags |= _MESSAGE_ID | (_EXPIRATION if expiration is not None else 0)
        self._head = (struct.pack(">H", flags) + shortstr(content_type) + headers
                      + bytes((delivery_mode,)))  # fmt: skip
        self._middle = shortstr(reply_to) + (b"" if expiration is None else shortstr(expiration))

    def __call__(self, message_id: str) -> bytes:
        """The properties of the message with this id (properties() with it twice)."""
        data = message_id.encode()
        if len(data) > 255:
            raise ValueError(f"AMQP short string longer than 255 bytes: {message_id[:40]!r}...")
        ident = bytes((len(data),)) + data
        return self._head + ident + self._middle + ident


class Batch:
    """Basic.Publish frames for one channel, written together by flush()."""

    def __init__(self, channel: amqp.Channel) -> None:
        connection = channel.connection
        if connection is None:
            raise amqp.exceptions.RecoverableConnectionError("publish: the channel is closed")
        self.channel_id = channel.channel_id
        self.connection, self.transport = connection, connection.transport
        self.body_max = connection.frame_max - 8  # a frame's payload, its header and end out
        self.count = 0  # messages added since the last flush
        self._frames: list[bytes] = []
        self._size = 0
        self._args: dict[tuple[str, str], bytes] = {}

    @property
    def full(self) -> bool:
        """Enough gathered to be written now."""
        return self._size >= _WRITE_AT

    def add(self, exchange: str, routing_key: str, props: bytes, body: bytes) -> None:
        """One message: props from properties()."""
        args = self._args.get((exchange, routing_key))
        if args is None:  # ticket 0, exchange, routing key, not mandatory, not immediate
            args = self._args[exchange, routing_key] = dumps(
                "Bssbb", (0, exchange, routing_key, False, False)
            )
        channel, frame, frames = self.channel_id, _FRAME.pack, self._frames
        method = _PUBLISH + args
        header = _CONTENT.pack(_BASIC, 0, len(body)) + props
        frames += (frame(_METHOD, channel, len(method)), method, _END,
                   frame(_HEADER, channel, len(header)), header, _END)  # fmt: skip
        for start in range(0, len(body), self.body_max):
            chunk = body[start : start + self.body_max]
            frames += (frame(_BODY, channel, len(chunk)), chunk, _END)
        self._size += len(method) + len(header) + len(body) + 24
        self.count += 1

    def flush(self) -> int:
        """Write what was added; how many messages that was. Raises what the socket raises."""
        count = self.count
        if self._frames:
            data = b"".join(self._frames)
            self._frames.clear()
            self._size = self.count = 0
            self.transport.write(data)
            self.connection.bytes_sent += 1  # as py-amqp counts: no heartbeat needed now
        return count
