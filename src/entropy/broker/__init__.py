"""Audits through RabbitMQ: the job and result messages, the queues, the worker.

- protocol.py: what a job and a result message hold (JSON, versioned), and
  how they turn into a runners Job and a model Result;
- topology.py: the exchanges and queues, declared alike by every peer;
- connection.py: connecting with backoff, and one thread's event loop over
  an AMQP socket that other threads can wake;
- client.py: the engine's side: publish jobs with confirms, take results;
- worker.py: `entropy worker run`: take a zone's jobs, run them, reply;
- beats.py: worker heartbeats, and listing the live workers.

Nothing here opens the state store. See docs/broker.md.
"""
