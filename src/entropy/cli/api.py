"""`entropy api serve` and `entropy api token ...`: the HTTP API and who may use it."""

from __future__ import annotations

import click

from ..service.runtime import Runtime
from ..service.tokens import Role, token_file
from .common import group, json_option, pass_runtime
from .output import print_json, print_table, report, say


@group()
def api() -> None:
    """The HTTP API, Prometheus /metrics and the dashboard (docs/api.md).

    \b
    Start with:
      entropy api token add ops --role operator     # prints the token, once
      entropy api serve --bind 127.0.0.1:8080
      curl -H "Authorization: Bearer TOKEN" http://127.0.0.1:8080/v1/audits?host=web-1
    """


@api.command("serve")
@click.option(
    "--bind",
    metavar="HOST:PORT",
    help="Where to listen (default: [api] bind, 127.0.0.1:8080). 0.0.0.0:8080 for every "
    "address: then serve TLS (--ssl-*) or put a TLS proxy in front.",
)
@click.option("--ssl-certfile", metavar="FILE", help="Serve HTTPS with this certificate (PEM).")
@click.option("--ssl-keyfile", metavar="FILE", help="The certificate's private key (PEM).")
@pass_runtime
def api_serve(
    rt: Runtime, bind: str | None, ssl_certfile: str | None, ssl_keyfile: str | None
) -> None:
    """Serve the HTTP API, /metrics and the dashboard until SIGINT or SIGTERM.

    It keeps no state of its own: any number can run beside the engines, on
    the same backend (--backend, as every command). Each request needs
    `Authorization: Bearer TOKEN` (`entropy api token add`); reading needs a
    reader's or an operator's token, acting an operator's. Every act is
    logged with the token's name. The OpenAPI schema is at /openapi.json.
    """
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise click.UsageError("give --ssl-certfile and --ssl-keyfile together")
    # Imported here: FastAPI, uvicorn and Jinja2 would add ~1 s to every other command.
    from ..api.serve import serve

    serve(rt, bind, ssl_certfile, ssl_keyfile)


@api.group("token")
def token() -> None:
    """The API's bearer tokens ([api] tokens_file keeps their hashes, never the tokens)."""


@token.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    help="reader: reads everything; operator: also disables, enables, runs and resets.",
)
@json_option
@pass_runtime
def token_add(rt: Runtime, name: str, role: str, as_json: bool) -> None:
    """Make token NAME and print it: this once only, the file keeps its hash.

    --json prints {"name", "role", "token"}.
    """
    tokens = token_file(rt)
    secret = tokens.add(name, role, rt.clock.now())
    report(as_json, {"name": name, "role": role, "token": secret}, secret)
    if not as_json:
        say(f"token {name} ({role}) stored in {tokens.path}; it is shown only now")


@token.command("list")
@json_option
@pass_runtime
def token_list(rt: Runtime, as_json: bool) -> None:
    """List the tokens: name, role and when each was made (never the tokens).

    --json prints a list of {"name", "role", "created_at"}.
    """
    found = [t.public() for t in token_file(rt).tokens()]
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("no API tokens; `entropy api token add NAME --role reader` makes one")
        return
    print_table([("NAME", "ROLE", "CREATED"), *((t["name"], t["role"], t["created_at"])
                                               for t in found)])  # fmt: skip


@token.command("remove")
@click.argument("name")
@json_option
@pass_runtime
def token_remove(rt: Runtime, name: str, as_json: bool) -> None:
    """Remove token NAME: requests carrying it are refused (401) from now on.

    --json prints {"change": "removed", "token": NAME}.
    """
    token_file(rt).remove(name)
    report(as_json, {"change": "removed", "token": name}, f"removed token {name}")


COMMANDS = [api]
