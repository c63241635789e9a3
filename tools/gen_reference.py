"""Write docs/reference.md from the code: every command, config option and YAML key.

    .venv/bin/python tools/gen_reference.py            # rewrite docs/reference.md
    .venv/bin/python tools/gen_reference.py --check    # exit 1 if it is stale

Commands come from walking the click tree of `entropy.cli:main` (wherever the
commands live), config options from the `oslo.config.opts` entry point the
sample generator uses, YAML keys from the tables definitions.py validates
against. Only the meaning of each YAML key is written here (KEY_HELP): a key
added to the code without a line here, or a line for a key the code no
longer has, stops the generator, so the reference cannot drift silently.
tests/unit/test_reference.py checks the committed file is current.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "reference.md"
WIDTH = 92  # of the help text blocks, so the file does not depend on the terminal
COMMAND = "python tools/gen_reference.py"

# -- YAML keys: their meaning (the code says which keys exist) ----------------------------

HOST_HELP = {
    "ip_address": "The host's IP address (required). `{ip_address}` in scripts; the default "
    "SSH address.",
    "host_type": "Its main group (required): compute, control, ... A host is in group G "
    "when host_type is G or G is in groups.",
    "groups": "Other groups it is in (a list).",
    "vars": "Free values: text, numbers, true/false, null, and lists and mappings of those. "
    "`{vars.NAME}` in scripts, `ENTROPY_VAR_<NAME>` in their environment.",
    "parents": "Hosts this one sits behind (issue 15, dependencies; see docs/monitoring.md).",
    "ssh": "How `kind: ssh` scripts reach the host (the keys below).",
    "zone": "Whose workers run its audits through the broker: a simple name (letters, "
    "digits, `-`, `_`). Default: `default`. See docs/broker.md.",
}
HOST_SSH_HELP = {
    "address": "Where to connect. Default: ip_address.",
    "port": "SSH port. Default: `[ssh] port` (22).",
    "user": "User to log in as. Default: `[ssh] user`, else the engine's user.",
    "jump": "A ProxyJump: `[user@]bastion[:port]`, several hops joined by commas.",
}
SCRIPT_COMMON_HELP = {
    "kind": "What runs (required): one of the kinds below.",
    "timeout": "How long a run may take (a duration, at most 1 day). The schedule's timeout "
    "wins, then the script's, then `default_timeout`.",
    "description": "Free text for people; not kept by export.",
}
KIND_HELP = {
    "command": {
        "command": "The argv list to run on the engine's machine (or one string with "
        "`shell: true`). Placeholders are replaced inside single arguments.",
        "shell": "true: `command` is one string for /bin/sh; each placeholder becomes a "
        'quoted `"${ENTROPY_SHELL_n}"`.',
        "env": "Extra environment variables (a mapping).",
        "cwd": "The directory to run in.",
        "output_limit": "Bytes of output kept (default 64 KiB); the cut is marked.",
    },
    "http": {
        "url": "The URL to request; placeholders allowed.",
        "method": "HTTP method. Default: GET.",
        "expect_status": "Statuses that count as ok. Default: [200].",
        "body_regex": "A regular expression the body must match.",
        "headers": "Request headers (a mapping).",
        "body": "Request body.",
        "verify_tls": "Check the server's certificate. Default: true.",
        "warning_ms": "Latency (ms) above which the result is warning.",
        "critical_ms": "Latency (ms) above which the result is critical.",
    },
    "tcp": {
        "port": "The port that must accept a connection within the timeout.",
        "host": "Where to connect. Default: the host's address.",
        "warning_ms": "Connect time (ms) above which the result is warning.",
        "critical_ms": "Connect time (ms) above which the result is critical.",
    },
    "python": {
        "function": "`module:function`, or a name registered under the entry point group "
        "`entropy.audits`; called as function(host, params) inside the engine.",
    },
    "ssh": {
        "command": "The argv list to run on the host, each argument quoted for the remote "
        "shell (or one string with `shell: true`). One of command or upload is required.",
        "shell": "true: `command` is one string for /bin/sh -c on the host.",
        "env": "Extra environment variables, set in the remote command line.",
        "output_limit": "Bytes of output kept (default 64 KiB).",
        "upload": "A local file (script, Nagios plugin) copied to the host over SFTP once "
        "per content and run; relative to the file the script is defined in.",
        "args": "The arguments of the uploaded file (a list).",
    },
}
SCHEDULE_HELP = {
    "run_every": "Fixed-rate interval (a duration, at most 366 days). Exactly one of "
    "run_every or cron.",
    "cron": "Five-field cron, read in `cron_timezone`.",
    "disabled": "true: the audit is not run (and `entropy enable` cannot lift it).",
    "disabled_reason": "Why it is disabled (at most 1,024 characters).",
    "timeout": "How long a run may take; wins over the script's.",
    "params": "Values for `{params.NAME}` and `ENTROPY_PARAM_<NAME>`.",
    "max_attempts": "Results in a row that make a state hard (issue 15; docs/monitoring.md).",
    "retry_every": "How soon a soft problem is checked again (issue 15).",
    "flapping": "true, or {low, high} thresholds in %: flap detection (issue 15).",
    "depends_on": "{audit, host: parent | same}: a dependency (issue 15).",
    "passive": "true: results come from `entropy result submit`, no script runs (issue 15).",
    "freshness": "How long a passive audit waits for a result before it turns unknown (issue 15).",
}
FLAPPING_HELP = {
    "low": "Flapping ends at or below this percentage. Default: 25.",
    "high": "Flapping starts above this percentage. Default: 30.",
}
DEPENDS_HELP = {
    "audit": "The audit this one depends on.",
    "host": "`parent` (the host's parents) or `same` (this host).",
}
REPAIR_HELP = {
    "when": "What fires it (required): the keys below.",
    "run": "The script to run against the same host (required).",
    "cooldown": "The least time between two runs on one host (a duration). Default: none.",
    "max_concurrent": "Runs at once across the fleet, at most. Default: no limit.",
    "max_attempts": "Runs since the audit was last healthy, at most; then the host is "
    "flagged until `entropy repair reset`. Default: no limit.",
    "verify": "true: run the audit again right after; record fixed or not_fixed.",
    "description": "Free text for people.",
}
WHEN_HELP = {
    "audit": "An audit name or a glob (`check_*`); it must match a script.",
    "outcome": "One or more of warning, critical, unknown, error, timeout. Default: critical.",
    "consecutive": "The pair's latest results in a row that must match. Default: 1.",
}
DOWNTIME_HELP = {
    "hosts": "Host names or globs it covers.",
    "groups": "Groups it covers.",
    "audits": "Audit names or globs. Default: every audit.",
    "start": "When a one-off window starts (ISO 8601; without a zone: cron_timezone).",
    "end": "When it ends (or give duration).",
    "cron": "When a recurring window starts (five fields, in cron_timezone).",
    "duration": "How long each window lasts.",
    "reason": "Why (required). One of hosts, groups or audits is required too.",
    "skip_checks": "true: the covered audits do not even run.",
    "description": "Free text for people.",
}


def key_tables() -> list[tuple[str, str, frozenset[str], frozenset[str], dict[str, str]]]:
    """(title, intro, required keys, all keys, help) of every YAML mapping Entropy reads."""
    from entropy import definitions as d

    common = d._SCRIPT_COMMON

    tables = [
        ("Hosts (`hosts.yaml`, one entry per host name)",
         "A host name is a DNS name or an IP address.",
         frozenset({"ip_address", "host_type"}), d._HOST_KEYS, HOST_HELP),
        ("A host's `ssh:`", "", frozenset(), d._HOST_SSH_KEYS, HOST_SSH_HELP),
        ("Scripts (`scripts.yaml`): every kind", "", frozenset({"kind"}), common,
         SCRIPT_COMMON_HELP),
    ]  # fmt: skip
    if set(d.SCRIPT_KINDS) != set(KIND_HELP):
        raise SystemExit(f"script kinds {sorted(d.SCRIPT_KINDS)}: describe each in KIND_HELP")
    for kind, (needed, optional) in d.SCRIPT_KINDS.items():
        tables.append((f"`kind: {kind}`", "", needed, needed | optional, KIND_HELP[kind]))
    tables += [
        ("Schedule entries (`audits/*.yaml`: TARGET → audits → AUDIT)",
         "A top-level key is a group or a host name; under it, `audits:` maps audit names "
         "to these entries.", frozenset(),
         d._SCHEDULE_KEYS, SCHEDULE_HELP),
        ("A schedule entry's `flapping:`", "", frozenset(), frozenset({"low", "high"}),
         FLAPPING_HELP),
        ("A schedule entry's `depends_on:`", "", frozenset({"audit"}), d._DEPENDS_KEYS,
         DEPENDS_HELP),
        ("Repairs (`repairs.yaml`, optional; one entry per repair name)", "",
         frozenset({"when", "run"}), d._REPAIR_KEYS, REPAIR_HELP),
        ("A repair's `when:`", "", frozenset({"audit"}), d._WHEN_KEYS, WHEN_HELP),
        ("Downtimes (`downtimes.yaml`, optional; one entry per downtime name)",
         "Either start with end or duration, or cron with duration (docs/monitoring.md).",
         frozenset({"reason"}), d._DOWNTIME_KEYS, DOWNTIME_HELP),
    ]  # fmt: skip
    for title, _, _, keys, helps in tables:
        missing, extra = set(keys) - set(helps), set(helps) - set(keys)
        if missing or extra:
            raise SystemExit(
                f"{title}: describe {sorted(missing)} in {__file__}"
                if missing
                else f"{title}: the code has no key {sorted(extra)}; remove it from {__file__}"
            )
    return tables


# -- rendering ------------------------------------------------------------------------------


def commands(
    group: click.Group, ctx: click.Context
) -> Iterator[tuple[click.Command, click.Context]]:
    """Every command under group, depth first, in the order `--help` lists them."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
        yield cmd, sub
        if isinstance(cmd, click.Group):
            yield from commands(cmd, sub)


def help_block(cmd: click.Command, ctx: click.Context, skip: set[str]) -> str:
    """What `--help` prints for cmd, without the options whose flags are in skip."""
    formatter = click.HelpFormatter(width=WIDTH, max_width=WIDTH)
    cmd.format_usage(ctx, formatter)
    cmd.format_help_text(ctx, formatter)
    records = [
        record
        for param in cmd.get_params(ctx)
        if isinstance(param, click.Option)
        and not skip & set(param.opts)
        and (record := param.get_help_record(ctx)) is not None
    ]
    if records:
        with formatter.section("Options"):
            formatter.write_dl(records)
    if isinstance(cmd, click.Group):
        listed = [(n, c.get_short_help_str(WIDTH)) for n in cmd.list_commands(ctx)
                  if (c := cmd.get_command(ctx, n)) is not None and not c.hidden]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(listed)
    return formatter.getvalue().rstrip()


def commands_section() -> list[str]:
    from entropy.cli import main

    # As `entropy` makes it (-h too): click keeps the help option of the first context.
    root = click.Context(main, info_name="entropy", **main.context_settings)
    # Every command repeats the global options (so they work after it too): shown once.
    global_flags = {flag for p in main.get_params(root) for flag in p.opts} - {"--version"}
    out = [
        "## Commands",
        "",
        "What `entropy COMMAND --help` prints. The global options (`--config-file`, "
        "`--config-dir`, `--backend`, `-v` and the others `entropy --help` lists) go before "
        "the command or after it, and are shown once, here:",
        "",
        "```text",
        help_block(main, root, set()),
        "```",
    ]
    for cmd, ctx in commands(main, root):
        out += ["", f"### `{ctx.command_path}`", "", "```text",
                help_block(cmd, ctx, global_flags), "```"]  # fmt: skip
    return out


def _default(opt: object) -> str:
    default = getattr(opt, "default", None)
    if default is None or default == []:
        return "(none)"
    if isinstance(default, bool):
        return str(default).lower()
    return f"`{default}`"


def _type(opt: object) -> str:
    name = type(opt).__name__.removesuffix("Opt").lower()
    low, high = getattr(opt.type, "min", None), getattr(opt.type, "max", None)  # type: ignore[attr-defined]
    if name == "port":
        return "port"
    if low is not None and high is not None:
        return f"{name}, {low:g}..{high:g}"
    return f"{name}, >= {low:g}" if low is not None else name


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def config_section() -> list[str]:
    (entry,) = [e for e in importlib.metadata.entry_points(group="oslo.config.opts")
                if e.name == "entropy"]  # fmt: skip
    out = [
        "## Configuration options",
        "",
        "Read from `entropy.conf` (oslo.config: `--config-file`, `--config-dir`, then "
        "`~/.entropy/`, `~/`, `/etc/entropy/`, `/etc/`); each also from the environment as "
        "`OS_<GROUP>__<OPTION>`. `etc/entropy.conf.sample` holds the same list as a config file.",
    ]
    for group, opts in entry.load()():
        name = group or "DEFAULT"
        out += ["", f"### `[{name}]`", "", "| option | type | default | environment | meaning |",
                "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for opt in opts:
            env = f"OS_{name.upper()}__{opt.dest.upper()}"
            secret = " (secret: hidden in logs)" if opt.secret else ""
            out.append(f"| `{opt.name}` | {_type(opt)} | {_default(opt)} | `{env}` | "
                       f"{_cell(opt.help or '')}{secret} |")  # fmt: skip
    return out


def keys_section() -> list[str]:
    out = [
        "## Definitions: YAML keys",
        "",
        "The dir backend reads `hosts.yaml`, `scripts.yaml`, `audits/*.yaml` and, optionally, "
        "`repairs.yaml` and `downtimes.yaml`; the file backend one file with sections "
        "`hosts:`, `scripts:`, `schedules:` (the schedule files' content) and `repairs:`. "
        "Database backends keep the same entries, in the same format. A key not listed is "
        "an error naming its `path:line:col`. Durations: see docs/definitions.md.",
    ]
    for title, intro, required, keys, helps in key_tables():
        out += ["", f"### {title}", ""]
        if intro:
            out += [intro, ""]
        out += ["| key | required | meaning |", "| --- | --- | --- |"]
        for key in sorted(keys, key=lambda k: (k not in required, k)):
            out.append(f"| `{key}` | {'yes' if key in required else ''} | {_cell(helps[key])} |")
    return out


def render() -> str:
    lines = [
        "# Reference",
        "",
        f"Generated from the code by `{COMMAND}`: do not edit by hand "
        "(tests/unit/test_reference.py fails when it is stale). What each thing is for, "
        "with examples: [the operator guide](operator-guide.md) and the topic pages beside it.",
        "",
        "- [Commands](#commands)",
        "- [Configuration options](#configuration-options)",
        "- [Definitions: YAML keys](#definitions-yaml-keys)",
        "",
        *commands_section(),
        "",
        *config_section(),
        "",
        *keys_section(),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
