"""Reaching RabbitMQ, and one thread's event loop over the connection.

py-amqp connections are not thread-safe, so each peer does all its AMQP
work on one thread; other threads hand it work and wake it through a
pipe. The thread waits in select() on the connection's socket and that
pipe, then handles every frame already there, without blocking: a finished
job is published the moment it is handed over, not at the next poll.
"""

from __future__ import annotations

import contextlib
import os
import select
import ssl
import struct
import threading
import time
from typing import Any

import amqp
import amqp.transport
import kombu
import kombu.exceptions

from ..errors import EntropyError

RETRY = (0.5, 5.0)  # first and longest pause between tries to reach the broker
AMQP_HEARTBEAT = 20  # seconds: a silent broker (or network) is noticed within 2 of these
# Seconds a synchronous call waits for its reply (a declare's), or a write for the broker to
# take it, before the connection is given up as lost (and made again). Heartbeats are only
# checked between the loop's waits, so without this such a call could wait for ever.
REPLY_TIMEOUT = 2.0 * AMQP_HEARTBEAT
_DRAIN_AT_MOST = 500  # frames handled per wake-up, so a flood still lets the loop publish
_READ_AHEAD = 16384  # bytes asked of the socket at once (see read_ahead)
_READ_AT_ONCE = 65536  # bytes pump() takes from a readable socket with one recv()
_FRAME_HEAD = struct.Struct(">BHI")  # type, channel, payload size

# What a lost broker connection raises, from connecting to publishing.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # socket errors, refused, reset; socket.timeout is one too
    amqp.exceptions.ConnectionError,  # ConnectionForced (closed by the broker), ...
    amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError,
)


class BrokerError(EntropyError):
    """The broker cannot be used as configured (a URL of another kind, a refused login)."""


class LoginRefused(BrokerError):
    """RabbitMQ refused the user, its password or the vhost of the URL."""


def open_connection(url: str, heartbeat: int = AMQP_HEARTBEAT) -> kombu.Connection:
    """A connected kombu Connection to RabbitMQ; raises CONNECTION_ERRORS when it is down,
    LoginRefused when it will not have us.

    Only AMQP: workers rely on publisher confirms and quorum queues.
    """
    bounds = {"read_timeout": REPLY_TIMEOUT, "write_timeout": REPLY_TIMEOUT}
    connection = kombu.Connection(url, heartbeat=heartbeat, connect_timeout=5,
                                  transport_options=bounds)  # fmt: skip
    if connection.transport.driver_type != "amqp":
        raise BrokerError(
            f"{connection.as_uri()}: the broker executor needs RabbitMQ (amqp:// or amqps://), "
            f"not {connection.transport.driver_type}"
        )
    try:
        connection.ensure_connection(max_retries=1)
    except (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed) as exc:
        connection.release()
        raise LoginRefused(
            f"{connection.as_uri()} refused the login: {exc.reply_text or exc}; check the "
            "user, password and vhost of [executor] transport_url"
        ) from None
    except BaseException:
        connection.release()
        raise
    return connection


def read_ahead(connection: kombu.Connection) -> None:
    """Have py-amqp read the socket in chunks, not each part of each frame on its own.

    Its TCP transport asks recv() for exactly the bytes it needs next: three
    system calls a frame (header, payload, end), nine a message. Given more,
    it keeps the rest in its read buffer and reads the next frames from
    there; pump() looks at that buffer before waiting on the socket. (Its
    TLS transport is left as it is: pump() asks the SSL socket what it holds.)
    """
    transport = connection.connection.transport
    if not isinstance(transport, amqp.transport.TCPTransport):
        return
    recv = transport.sock.recv
    transport._quick_recv = lambda size: recv(max(size, _READ_AHEAD))


def _frame_buffered(transport: Any) -> bool:
    """Whether py-amqp's read buffer holds a whole frame (7-byte header, payload, end)."""
    buffer = getattr(transport, "_read_buffer", b"")
    return len(buffer) >= 7 and len(buffer) >= 8 + int.from_bytes(buffer[3:7], "big")


def describe(url: str) -> str:
    """The broker's URL with its password hidden, for messages."""
    return kombu.Connection(url).as_uri()


class Backoff:
    """Pauses between tries: RETRY[0], doubling up to RETRY[1]; reset once connected."""

    def __init__(self) -> None:
        self.pause = RETRY[0]
        self.down_since: float | None = None

    def failed(self) -> float:
        """The pause to take now; the next one is longer."""
        if self.down_since is None:
            self.down_since = time.monotonic()
        pause, self.pause = self.pause, min(self.pause * 2, RETRY[1])
        return pause

    def connected(self) -> float | None:
        """Seconds the broker was out of reach, if it was; resets the pauses."""
        down, self.down_since, self.pause = self.down_since, None, RETRY[0]
        return None if down is None else time.monotonic() - down


class Wakeup:
    """A pipe another thread writes a byte to, so the loop's select() returns.

    Once closed, wake() and clear() do nothing: job threads finishing after
    their worker stopped still call wake(), and the pipe's descriptor numbers
    may by then belong to another connection or file of this process, which
    a stray write (or read) would corrupt.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        # A wake-up is on its way: no need for another write.
        self._pending = False
        self._closed = False
        self._lock = threading.Lock()  # close() against a write or read in flight

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        if self._pending:
            return
        with self._lock:
            if self._closed:
                return
            self._pending = True
            with contextlib.suppress(BlockingIOError, OSError):  # full: one is pending anyway
                os.write(self._write, b"!")

    def clear(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 4096):
                    pass
            # After draining: a wake() between the two wrote nothing, and its work is
            # already handed over; one after this writes again.
            self._pending = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                with contextlib.suppress(OSError):
                    os.close(fd)


def pump(connection: kombu.Connection, wakeup: Wakeup, timeout: float) -> None:
    """Wait up to timeout for frames or a wake-up; then handle the frames that are here.

    Callbacks (deliveries, confirms) run inside this call, on this thread;
    they must not wait for a frame themselves (a synchronous AMQP call such
    as a queue declare): the frames read but not yet handled are not in
    py-amqp's buffer while they run.
    """
    sock = connection.connection.sock
    if sock is None:
        raise ConnectionResetError("the broker connection is closed")
    transport = connection.connection.transport
    tls = isinstance(sock, ssl.SSLSocket)
    # Frames read ahead, or an SSL socket's decrypted bytes: select() cannot see them.
    buffered = _frame_buffered(transport) or (tls and sock.pending())
    if not buffered:
        readable, _, _ = select.select([sock, wakeup], [], [], max(timeout, 0.0))
        if wakeup in readable:
            wakeup.clear()
        if sock not in readable:
            return
    if not tls and isinstance(transport, amqp.transport.TCPTransport):
        _handle_frames(connection.connection, transport, sock, buffered)
        return
    for _ in range(_DRAIN_AT_MOST):
        try:
            connection.drain_events(timeout=0)
        except TimeoutError:
            return


def _handle_frames(connection: amqp.Connection, transport: Any, sock: Any, buffered: bool) -> None:
    """Read what the socket holds (it is readable, or a frame is buffered) with one recv(),
    and hand each whole frame in it to py-amqp, as drain_events() would.

    drain_events() reads one frame at a time, switching the socket to
    non-blocking and back around each (two system calls a frame, six a
    message) and copying the rest of its buffer with each part it takes; and
    it ends on a read that finds nothing. Here the frames are cut out of one
    buffer; what is left of a frame not yet whole goes back to py-amqp's.
    """
    data = transport._read_buffer
    if not buffered:
        chunk = sock.recv(_READ_AT_ONCE)
        if not chunk:
            transport.connected = False
            raise ConnectionResetError("the broker closed the connection")
        data = data + chunk if data else chunk
    handle, unpack, end, pos = connection.on_inbound_frame, _FRAME_HEAD.unpack_from, len(data), 0
    try:
        while end - pos >= 8:
            kind, channel, size = unpack(data, pos)
            stop = pos + 7 + size  # where its end octet is
            if stop >= end:
                break
            if data[stop] != 206:
                raise amqp.exceptions.UnexpectedFrame(
                    f"Received frame_end {data[stop]:#04x} while expecting 0xce"
                )
            payload = data[pos + 7 : stop]
            pos = stop + 1
            handle((kind, channel, payload))
    finally:
        transport._read_buffer = data[pos:] if pos else data


def covered(pending: dict[int, Any], sequence: int, multiple: bool) -> list[Any]:
    """What a publisher confirm covers, taken out of pending (sequence -> what was sent):
    that one entry, or (multiple) every one up to sequence."""
    if not multiple:
        entry = pending.pop(sequence, None)
        return [] if entry is None else [entry]
    taken = []
    while pending:
        first = next(iter(pending))
        if first > sequence:
            break
        taken.append(pending.pop(first))
    return taken
