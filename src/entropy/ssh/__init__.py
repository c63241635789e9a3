"""Running commands on remote hosts over SSH, with pooled asyncssh connections.

- `settings`: the [ssh] config and where each host is reached (a Target).
- `loop`: one asyncio event loop on its own thread; worker threads submit to it.
- `hostkeys`: known_hosts checks, and accept-new recording.
- `failures`: connection problems named the check_by_ssh way (auth, refused, ...).
- `pool`: connections opened on demand, shared, capped, closed when idle.
- `remote`: one command on a connection, with its timeout and output cap.
- `upload`: scripts copied once per host and content hash (SFTP).
- `client`: what runners and the CLI call from their threads.

Nothing here imports asyncssh until a connection is needed: a fleet with no
ssh scripts never pays for it.
"""
