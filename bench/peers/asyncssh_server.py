"""A cheap SSH server for the idle-connections bench: asyncssh, any login, `exit 0` on exec.

Prints one JSON line ({"port": P, "known_hosts": LINE}) once it listens on
127.0.0.1, then serves until its stdin closes. Run by bench/sshd.py in a
process of its own, so its memory is not counted as the engine's.
"""

from __future__ import annotations

import asyncio
import json
import sys

import asyncssh


class Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # no authentication: any user name is a login of its own


async def process(proc: asyncssh.SSHServerProcess) -> None:
    proc.exit(0)


async def main() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        Server, "127.0.0.1", 0, server_host_keys=[key], process_factory=process,
        keepalive_interval=0, backlog=1024,
    )  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    algorithm, data = key.export_public_key().decode().split()[:2]
    print(json.dumps({"port": port, "known_hosts": f"[127.0.0.1]:{port} {algorithm} {data}"}),
          flush=True)  # fmt: skip
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes our stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
