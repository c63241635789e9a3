"""Worker heartbeats, and who is alive: what `entropy workers` shows.

Each worker publishes a heartbeat (JSON, transient) to the fanout exchange
`entropy.workers` every heartbeat_interval, at once when asked on
`entropy.workers.ping`, and a last one saying `stopped` when it stops.
Nothing stores them: a reader binds a queue of its own (exclusive,
deleted with its connection), pings, and keeps what arrives within a
short wait. That is what RabbitMQ does reliably with no plugin (a
last-value cache needs the rabbitmq-lvc-exchange plugin, which is not
shipped), and a worker that is silent for that long is not taking jobs
anyway. The zones' queues add what the broker itself knows: jobs waiting
and consumers attached (a passive declare).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import amqp

from .connection import open_connection
from .protocol import VERSION, ProtocolError
from .topology import Topology


@dataclass(frozen=True, slots=True)
class Beat:
    """One worker's heartbeat: who it is, where, how loaded, and when it said so."""

    worker_id: str
    hostname: str
    pid: int
    zone: str
    max_workers: int
    running: int  # jobs running now
    done: int  # jobs replied to since it started
    started_at: float  # Unix time
    beat_at: float  # Unix time, by the worker's clock
    interval: float  # seconds until its next beat
    state: str = "running"  # running, stopping, stopped

    def encode(self) -> bytes:
        return json.dumps({"type": "worker", "v": VERSION, **asdict(self)}).encode()

    @classmethod
    def decode(cls, body: bytes | str) -> Beat:
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict) or doc.get("type") != "worker":
                raise ProtocolError("not a worker heartbeat")
            return cls(**{name: doc[name] for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"not a worker heartbeat: {exc}") from None


@dataclass(frozen=True, slots=True)
class ZoneQueue:
    """What the broker says of one zone's job queue."""

    zone: str
    exists: bool
    waiting: int = 0  # jobs ready, not handed to a worker
    consumers: int = 0  # workers consuming it (each connection counts once)


def live_workers(url: str, topology: Topology, wait: float = 2.0) -> list[Beat]:
    """The workers that answer a ping (or beat) within `wait` seconds, by zone then id.

    Raises connection.CONNECTION_ERRORS when the broker is out of reach.
    """
    beats: dict[str, Beat] = {}

    def received(message: amqp.Message) -> None:
        try:
            beat = Beat.decode(message.body)
        except ProtocolError:
            return  # a newer worker's, or not ours: nothing to show
        seen = beats.get(beat.worker_id)
        if seen is None or beat.beat_at >= seen.beat_at:
            beats[beat.worker_id] = beat

    connection = open_connection(url)
    try:
        channel = connection.channel()
        topology.declare_workers(channel)
        queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=True)
        channel.queue_bind(queue, topology.workers_exchange)
        channel.basic_consume(queue, callback=received, no_ack=True)
        channel.basic_publish(amqp.Message(b"{}"), exchange=topology.ping_exchange)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                connection.drain_events(timeout=left)
            except TimeoutError:
                break
    finally:
        connection.release()
    alive = [beat for beat in beats.values() if beat.state != "stopped"]
    return sorted(alive, key=lambda b: (b.zone, b.worker_id))


def zone_queues(url: str, topology: Topology, zones: list[str]) -> list[ZoneQueue]:
    """Jobs waiting and consumers attached, per zone queue (passive: creates nothing)."""
    found = []
    connection = open_connection(url)
    try:
        for zone in zones:
            channel = connection.channel()  # a missing queue closes the channel asking
            try:
                _, waiting, consumers = channel.queue_declare(
                    topology.zone_queue(zone), passive=True
                )
            except amqp.exceptions.NotFound:
                found.append(ZoneQueue(zone, False))
                continue
            found.append(ZoneQueue(zone, True, waiting, consumers))
            channel.close()
    finally:
        connection.release()
    return found


def beat_dict(beat: Beat, now: float) -> dict[str, Any]:
    """A heartbeat as `entropy workers --json` prints it."""
    return {**asdict(beat), "age": round(max(now - beat.beat_at, 0.0), 3)}
