"""The exchanges and queues on RabbitMQ, and how each peer declares them.

Every name starts with a prefix (`[executor] prefix`, default `entropy`):

- `entropy.jobs` (direct, durable): jobs, routing key = the host's zone;
- `entropy.jobs.<zone>` (quorum queue, durable): a zone's jobs, bound with
  the zone as key; workers of that zone consume it, prefetching no more
  than they run. It has a delivery limit: a job handed out
  1 + DELIVERY_LIMIT times without being acknowledged (its workers died,
  or were stopped before it finished) is not handed out again but
  dead-lettered, so a slot runs at most once more after a worker dies,
  and a job that kills every worker it reaches does not go round for ever;
- `entropy.jobs.dead` (headers): where dead jobs go (delivery limit, a
  job's own TTL run out, a job a worker refused); each engine's result
  queue is bound to it on the header `entropy-engine: <engine id>`, so a
  dead job comes back to the engine that sent it, as a job message whose
  `x-death` header says why;
- `entropy.results.<engine id>` (quorum queue, durable, expiring): results
  for one engine, published by workers to the default exchange. Expiring,
  not auto-delete or exclusive: those vanish the moment the engine's
  connection drops, so a broker restart or a network blip would lose every
  result sent meanwhile. This one outlives that, and RabbitMQ deletes it
  once no consumer has used it for its expiry (the engine's lease): an
  engine that died leaves no queue behind for long;
- `entropy.workers` (fanout): worker heartbeats, transient;
- `entropy.workers.ping` (fanout): asks every worker for a heartbeat now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import amqp

from .connection import BrokerError

DELIVERY_LIMIT = 1  # redeliveries of a job after the first delivery (quorum x-delivery-limit)
ENGINE_HEADER = "entropy-engine"  # the engine a job comes from (routes its dead letters back)
DEFAULT_PREFIX = "entropy"


@dataclass(frozen=True, slots=True)
class Topology:
    """The names of one Entropy deployment's exchanges and queues, and their declarations."""

    prefix: str = DEFAULT_PREFIX

    @property
    def jobs_exchange(self) -> str:
        return f"{self.prefix}.jobs"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.jobs.dead"

    @property
    def workers_exchange(self) -> str:
        return f"{self.prefix}.workers"

    @property
    def ping_exchange(self) -> str:
        return f"{self.prefix}.workers.ping"

    def zone_queue(self, zone: str) -> str:
        return f"{self.prefix}.jobs.{zone}"

    def results_queue(self, engine_id: str) -> str:
        return f"{self.prefix}.results.{engine_id}"

    # -- declarations: idempotent, and the same from every peer ----------------------

    def declare_zone(self, channel: amqp.Channel, zone: str) -> str:
        """The zone's job queue, bound to the jobs exchange; its name."""
        queue = self.zone_queue(zone)
        channel.exchange_declare(self.jobs_exchange, "direct", durable=True, auto_delete=False)
        channel.exchange_declare(self.dead_exchange, "headers", durable=True, auto_delete=False)
        arguments = {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": self.dead_exchange,
        }
        _declare(channel, queue, arguments)
        channel.queue_bind(queue, self.jobs_exchange, routing_key=zone)
        return queue

    def declare_results(self, channel: amqp.Channel, engine_id: str, expires: float) -> str:
        """An engine's result queue, deleted by RabbitMQ `expires` seconds after its last use."""
        queue = self.results_queue(engine_id)
        channel.exchange_declare(self.dead_exchange, "headers", durable=True, auto_delete=False)
        arguments = {"x-queue-type": "quorum", "x-expires": max(1000, int(expires * 1000))}
        _declare(channel, queue, arguments)
        channel.queue_bind(
            queue, self.dead_exchange, arguments={"x-match": "all", ENGINE_HEADER: engine_id}
        )
        return queue

    def declare_workers(self, channel: amqp.Channel) -> None:
        """The heartbeat and ping exchanges."""
        for name in (self.workers_exchange, self.ping_exchange):
            channel.exchange_declare(name, "fanout", durable=True, auto_delete=False)


def _declare(channel: amqp.Channel, queue: str, arguments: dict[str, Any]) -> None:
    try:
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)
    except amqp.exceptions.PreconditionFailed as exc:
        # The channel is closed by now; the caller's connection is still good.
        raise BrokerError(
            f"queue {queue!r} exists with other settings than this Entropy declares "
            f"({arguments}): {exc.reply_text}. Delete it (rabbitmqctl delete_queue {queue}) "
            "once it is empty, or use another [executor] prefix"
        ) from None
