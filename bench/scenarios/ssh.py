"""Audits over SSH: Entropy's pooled kind: ssh against ssh-per-audit and Ansible ad-hoc.

A fleet of --hosts host names (node-0001 ...), each reaching 127.0.0.1 on a
port of its own served by local sshd instances (15 ports each), so each host
has its own connection as in a real fleet. The audit is `true`. One run of
each, in fresh interpreters, one after the other:

  (a) entropy kind: ssh       the real Engine (max_workers --workers) runs
                              --audits audits per host (hosts x audits, all
                              due within 1 s): one pooled connection per host,
                              a session per audit
  (b) entropy kind: command   the same Engine runs one audit per host as
                              `ssh -o BatchMode=yes -p PORT HOST true` (the
                              check_by_ssh way: a full login per audit)
  (c) ansible ad-hoc          `ansible all -m command -a true -f --workers`
                              (ansible-core 2.17 in bench/.venv-ansible) on
                              the same hosts, once

Measured for each: audits/s (audits / wall time, first due to last
recorded; for (c) the command's wall time); engine CPU per audit (the
process and its children: ssh clients for (b), Ansible's forks and ssh for
(c)); the whole machine's CPU per audit (/proc/stat: sshd and the remote
commands too, and whatever else runs); memory per open connection: (a) the
engine's RSS growth from before its first login to the end (after gc and
malloc_trim) / connections open, (b) and (c) the peak PSS of their ssh
client processes (and of Ansible's worker forks) / the ssh processes then.

  (d) idle connections        one engine process opens --idle connections
                              (1,000) to an asyncssh server in another
                              process (a user name each, so one connection
                              each), runs `true` once on each, then holds
                              them: RSS growth per connection.

Targets: (a) >= 10 x (b) and >= 20 x (c) in audits/s, in one run; (d)
<= 150 KiB per connection. The machine is shared: the load average at the
start and end of each case is printed beside it.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..common import (
    context_line,
    environment,
    in_fresh_process,
    make_conf,
    release_free_memory,
    rss_mib,
    sqlite_url,
    table,
    verdict,
)
from ..fleet import Fleet
from ..harness import EngineHarness, prepare_state, sleep_until
from ..peers import PeerError, ensure_ansible
from ..sshd import BenchSetupError, IdleServer, SshdFarm, tree_rss

SUMMARY = "audits over SSH: pooled kind: ssh vs ssh per audit vs Ansible ad-hoc; idle conns"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"hosts": 60, "audits": 5, "idle": 200}
# `python -m bench all` runs it last of all: its 50 parallel logins load the machine.

TARGET_VS_SSH = 10.0
TARGET_VS_ANSIBLE = 20.0
TARGET_IDLE_KIB = 150.0
TARGET_IDLE = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosts", type=int, default=300, help="host names (default: %(default)s)")
    parser.add_argument(
        "--audits", type=int, default=10,
        help="audits per host in (a); (b) and (c) run one per host (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=50,
        help="engine max_workers, and Ansible's -f (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--idle", type=int, default=TARGET_IDLE,
        help="idle connections one engine holds in (d) (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--only", default="a,b,c,d", help="cases to run, e.g. a,d (default: %(default)s)"
    )
    parser.add_argument("--tmpdir", metavar="DIR", help="where fleets and keys go")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = {c.strip() for c in args.only.split(",") if c.strip()}
    params = {"hosts": args.hosts, "audits_a": args.audits, "workers": args.workers,
              "idle": args.idle, "cases": sorted(cases), "audit": "true"}  # fmt: skip
    result: dict[str, Any] = {"scenario": "ssh", "params": params, "environment": environment(),
                              "cases": {}, "problems": []}  # fmt: skip
    try:
        if "c" in cases:
            ansible = ensure_ansible()  # made before the clock starts: a download is no bench
        with tempfile.TemporaryDirectory(prefix="entropy-bench-ssh-", dir=args.tmpdir) as tmp:
            root = Path(tmp)
            root.chmod(0o755)  # the login user reads authorized_keys below it
            farm = SshdFarm(root / "sshd", args.hosts) if cases & {"a", "b", "c"} else None
            try:
                if "a" in cases and farm:
                    result["cases"]["a"] = _engine_case("ssh", farm, root, args, args.audits)
                if "b" in cases and farm:
                    result["cases"]["b"] = _engine_case("command", farm, root, args, 1)
                if "c" in cases and farm:
                    result["cases"]["c"] = _ansible_case(ansible, farm, root, args)
            finally:
                if farm:
                    farm.close()
            if "d" in cases:
                result["cases"]["d"] = _idle_case(args.idle, args.workers)
    except (BenchSetupError, PeerError) as exc:
        result.update(skipped=str(exc), ok=True, targets={}, targets_met=None)
        return result
    for name, case in result["cases"].items():
        result["problems"] += [f"({name}) {p}" for p in case.get("problems", [])]
    result["ok"] = not result["problems"]
    result["targets"] = _targets(result["cases"], args)
    met = [t["met"] for t in result["targets"].values() if t["met"] is not None]
    result["targets_met"] = all(met) if met else None
    return result


# -- (a) and (b): the real engine ------------------------------------------------------------


def _write_fleet(root: Path, kind: str, farm: SshdFarm, hosts: int, audits: int) -> Fleet:
    """hosts.yaml with a port each; `audits` scripts of this kind, all scheduled on `fleet`."""
    root.mkdir(parents=True)
    (root / "audits").mkdir()
    lines = [
        f"node-{i:04d}.bench.example: {{ip_address: 127.0.0.1, host_type: fleet, "
        f"ssh: {{port: {port}}}, vars: {{port: {port}}}}}\n"
        for i, port in enumerate(farm.ports[:hosts], 1)
    ]
    (root / "hosts.yaml").write_text("".join(lines))
    if kind == "ssh":
        script = "{kind: ssh, command: ['true']}"
    else:
        ssh = [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={farm.known_hosts}", "-o", "LogLevel=ERROR",
            "-i", str(farm.client_key), "-p", "{vars.port}", "-l", farm.user, "{ip_address}",
            "true",
        ]  # fmt: skip
        script = "{kind: command, command: [" + ", ".join(f"'{a}'" for a in ssh) + "]}"
    names = [f"probe{j:02d}" for j in range(1, audits + 1)]
    (root / "scripts.yaml").write_text("".join(f"{n}: {script}\n" for n in names))
    audits_doc = "fleet:\n  audits:\n" + "".join(f"    {n}: {{run_every: 1day}}\n" for n in names)
    (root / "audits" / "fleet.yaml").write_text(audits_doc)
    return Fleet("dir", root, hosts, audits, ("1day",))


def _engine_case(kind: str, farm: SshdFarm, root: Path, args: argparse.Namespace, audits: int
                 ) -> dict[str, Any]:  # fmt: skip
    fleet = _write_fleet(root / f"fleet-{kind}", kind, farm, args.hosts, audits)
    state = sqlite_url(root / f"state-{kind}.sqlite")
    prep = in_fresh_process(prepare_state, fleet, state, 1, None)
    ssh = {"user": farm.user, "identity_files": [str(farm.client_key)],
           "known_hosts": str(farm.known_hosts)}  # fmt: skip
    load_before = os.getloadavg()[0]
    got = in_fresh_process(_measure_engine, fleet, state, prep["first_due"], fleet.pairs,
                           args.workers, ssh)  # fmt: skip
    got.update(kind=kind, pairs=fleet.pairs, load_before=load_before, load_after=os.getloadavg()[0])
    problems = []
    if got["recorded"] != fleet.pairs:
        problems.append(f"recorded {got['recorded']} of {fleet.pairs} audits: {got['problem']}")
    if set(got["outcomes"]) != {"ok"}:
        problems.append(f"outcomes {got['outcomes']} (expected all ok): {got['sample']}")
    got["problems"] = problems
    return got


def _measure_engine(
    fleet: Fleet, state: str, first_slot: float, pairs: int, workers: int, ssh: dict[str, Any]
) -> dict[str, Any]:
    """In a fresh process: the engine runs every pair once; what it cost."""
    from entropy.backends import fetch
    from entropy.ssh import client as ssh_client
    from entropy.ssh.settings import SshSettings

    settings = SshSettings(
        user=ssh["user"], identity_files=tuple(ssh["identity_files"]),
        known_hosts=ssh["known_hosts"], max_connections=10_000,
    )  # fmt: skip
    ssh_client.reset(settings)
    backend = fetch(make_conf(fleet.backend, state, max_splay=1), fleet.url)
    samples: list[tuple[int, int]] = []
    sample: list[str] = []
    try:
        harness = EngineHarness(backend, workers)
        original = harness._on_result

        def note(result: Any) -> None:
            if result.outcome.value != "ok" and len(sample) < 3:
                sample.append(f"{result.host}: {result.outcome.value} {result.summary}")
            original(result)

        harness.engine.on_result = note
        _ = ssh_client.default().pool  # asyncssh imported, keys read: not per connection
        release_free_memory()
        rss_before = rss_mib()
        harness.start()
        sleep_until(first_slot)
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(os.getpid(), "ssh", samples, stop))
        sampler.start()
        cpu_before, stat_before = _rusage(), _machine_jiffies()
        problem = harness.wait(lambda: harness.count >= pairs, 60, first_slot + 60 + pairs)
        cpu_after, stat_after = _rusage(), _machine_jiffies()
        stop.set()
        sampler.join()
        release_free_memory()
        rss_after = rss_mib()
        pool = ssh_client.default()._pool
        stats = pool.stats() if pool is not None else {"open": 0, "opened": 0}
        harness.stop()
    finally:
        backend.close()
        ssh_client.reset()
    first = min(harness.slots, default=first_slot)
    last = harness.last_recorded_at or time.time()
    peak = max(samples, default=(0, 0), key=lambda s: s[1])
    return {
        "recorded": harness.count,
        "problem": problem,
        "outcomes": dict(harness.outcomes),
        "sample": sample,
        "elapsed_s": last - first,
        "audits_per_s": harness.count / (last - first) if last > first else 0.0,
        "cpu_us_per_audit": (cpu_after - cpu_before) / max(harness.count, 1) * 1e6,
        "machine_cpu_us_per_audit": (stat_after - stat_before) / max(harness.count, 1) * 1e6,
        "connections_open": stats["open"],
        "connections_opened": stats["opened"],
        "rss_growth_mib": rss_after - rss_before,
        "kib_per_connection": (rss_after - rss_before) * 1024 / stats["open"]
        if stats["open"]
        else _per_process_kib(peak),
        "peak_client_processes": peak[1],
    }


def _sample(root: int, name: str, samples: list[tuple[int, int]], stop: threading.Event) -> None:
    while not stop.wait(0.2):
        samples.append(tree_rss(root, name))


def _per_process_kib(peak: tuple[int, int]) -> float:
    rss, count = peak
    return rss / 1024 / count if count else math.nan


def _rusage() -> float:
    """CPU seconds of this process and its reaped children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _machine_jiffies() -> float:
    """CPU seconds every CPU of the machine spent busy so far (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- (c): Ansible ad-hoc ---------------------------------------------------------------------


def _ansible_case(bin_dir: Path, farm: SshdFarm, root: Path, args: argparse.Namespace
                  ) -> dict[str, Any]:  # fmt: skip
    inventory = root / "inventory.ini"
    common = f"-o UserKnownHostsFile={farm.known_hosts} -o StrictHostKeyChecking=yes"
    inventory.write_text(
        "".join(f"node-{i:04d}.bench.example ansible_host=127.0.0.1 ansible_port={port}\n"
                for i, port in enumerate(farm.ports[: args.hosts], 1))
        + f"\n[all:vars]\nansible_user={farm.user}\n"
        f"ansible_ssh_private_key_file={farm.client_key}\n"
        f"ansible_ssh_common_args='{common}'\nansible_python_interpreter=/usr/bin/python3\n"
    )  # fmt: skip
    home = root / "ansible-home"
    home.mkdir()
    env = {
        **os.environ, "HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"), "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
    }  # fmt: skip
    command = [str(bin_dir / "ansible"), "all", "-i", str(inventory), "-m", "command",
               "-a", "true", "-f", str(args.workers)]  # fmt: skip
    load_before = os.getloadavg()[0]
    got = in_fresh_process(_measure_command, command, env, args.hosts)
    got.update(load_before=load_before, load_after=os.getloadavg()[0], pairs=args.hosts,
               command=" ".join(command[1:]))  # fmt: skip
    return got


def _measure_command(command: list[str], env: dict[str, str], hosts: int) -> dict[str, Any]:
    """In a fresh process: run command once; its wall time, CPU, memory per connection."""
    samples: list[tuple[int, int]] = []
    cpu_before, stat_before = _rusage(), _machine_jiffies()
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    stop = threading.Event()
    peaks: list[tuple[int, int, int]] = []  # (tree rss, ssh processes, all processes)

    def watch() -> None:
        while not stop.wait(0.2):
            rss, count = tree_rss(proc.pid)
            peaks.append((rss, tree_rss(proc.pid, "ssh")[1], count))

    watcher = threading.Thread(target=watch)
    watcher.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    watcher.join()
    cpu_after, stat_after = _rusage(), _machine_jiffies()
    ok = out.count("| CHANGED") + out.count("| SUCCESS")
    problems = [] if ok == hosts else [f"{ok} of {hosts} hosts ok; {(err or out)[-500:]}"]
    peak = max(peaks, default=(0, 0, 0))
    del samples
    return {
        "recorded": ok,
        "elapsed_s": elapsed,
        "audits_per_s": ok / elapsed if elapsed else 0.0,
        "cpu_us_per_audit": (cpu_after - cpu_before) / max(ok, 1) * 1e6,
        "machine_cpu_us_per_audit": (stat_after - stat_before) / max(ok, 1) * 1e6,
        "kib_per_connection": peak[0] / 1024 / peak[1] if peak[1] else math.nan,
        "peak_client_processes": peak[1],
        "peak_processes": peak[2],
        "problems": problems,
    }


# -- (d): idle connections -------------------------------------------------------------------


def _idle_case(count: int, workers: int) -> dict[str, Any]:
    server = IdleServer()
    try:
        load_before = os.getloadavg()[0]
        got = in_fresh_process(_hold_idle, server.port, server.known_hosts_line, count, workers)
        got.update(load_before=load_before, load_after=os.getloadavg()[0])
    finally:
        server.close()
    problems = []
    if got["open"] != count:
        problems.append(f"{got['open']} connections open, expected {count}: {got['failures']}")
    got["problems"] = problems
    return got


def _hold_idle(port: int, known_line: str, count: int, workers: int) -> dict[str, Any]:
    """In a fresh process: `true` once on each of count connections; RSS held per connection."""
    from entropy.ssh import client as ssh_client
    from entropy.ssh.settings import SshSettings, Target

    tmp = Path(tempfile.mkdtemp(prefix="entropy-bench-idle-"))
    try:
        known = tmp / "known_hosts"
        known.write_text(known_line + "\n")
        client = ssh_client.reset(SshSettings(
            known_hosts=str(known), max_connections=count + 10, identity_files=(),
            keepalive_interval=30, idle_timeout=3600,
        ))  # fmt: skip
        assert client is not None
        targets = [Target("127.0.0.1", port, f"u{i:05d}", name=f"idle-{i:05d}")
                   for i in range(count + 1)]  # fmt: skip

        def once(target: Target) -> str | None:
            ran = client.run(target, ["true"], env={}, timeout=60, limit=1024)
            if ran.failure is not None:
                return str(ran.failure)
            return None if ran.finished.code == 0 else f"exit {ran.finished.code}"

        once(targets[0])  # asyncssh imported, the loop and the pool made: not per connection
        release_free_memory()
        before = rss_mib()
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            failures = [f for f in pool.map(once, targets[1:]) if f]
        opened_s = time.perf_counter() - started
        time.sleep(1.0)  # idle: keepalive timers armed, buffers settled
        release_free_memory()
        after = rss_mib()
        stats = client.pool.stats()
        ssh_client.reset()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "connections": count,
        "open": stats["open"] - 1,
        "failures": failures[:3],
        "open_s": opened_s,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "kib_per_connection": (after - before) * 1024 / count,
    }


# -- verdicts and the report -------------------------------------------------------------------


def _targets(cases: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    rate = {name: cases[name]["audits_per_s"] for name in "abc" if name in cases}
    full = args.hosts >= 300
    if "a" in rate and "b" in rate and rate["b"]:
        ratio = rate["a"] / rate["b"]
        targets["a_vs_b"] = {"min": TARGET_VS_SSH, "ratio": ratio, "median": ratio,
                             "met": ratio >= TARGET_VS_SSH if full else None}  # fmt: skip
    if "a" in rate and "c" in rate and rate["c"]:
        ratio = rate["a"] / rate["c"]
        targets["a_vs_c"] = {"min": TARGET_VS_ANSIBLE, "ratio": ratio, "median": ratio,
                             "met": ratio >= TARGET_VS_ANSIBLE if full else None}  # fmt: skip
    if "d" in cases:
        kib = cases["d"]["kib_per_connection"]
        at_size = args.idle >= TARGET_IDLE
        targets["idle_kib"] = {"max": TARGET_IDLE_KIB, "value": kib, "median": kib,
                               "met": kib <= TARGET_IDLE_KIB if at_size else None}  # fmt: skip
    return targets


LABELS = {"a": "(a) entropy kind: ssh", "b": "(b) kind: command, ssh per audit",
          "c": "(c) ansible ad-hoc"}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    head = (f"bench ssh: {p['hosts']} hosts on local sshd (a port, so a connection, each), "
            f"audit `true`, {p['workers']} workers; ")  # fmt: skip
    head += context_line(result["environment"])
    if result.get("skipped"):
        return f"{head}\nskipped: {result['skipped']}"
    cases = result["cases"]
    rows = []
    for name in "abc":
        if name in cases:
            c = cases[name]
            rows.append((
                LABELS[name], f"{c['pairs']}", f"{c['audits_per_s']:.1f}",
                f"{c['cpu_us_per_audit'] / 1000:.2f}",
                f"{c['machine_cpu_us_per_audit'] / 1000:.2f}",
                f"{c['kib_per_connection']:.0f}", f"{c['load_before']:.1f}/{c['load_after']:.1f}",
            ))  # fmt: skip
    header = ("case", "audits", "audits/s", "engine CPU ms/audit", "machine CPU ms/audit",
              "KiB/connection", "load before/after")  # fmt: skip
    lines = [head, table(header, rows)]
    if "a" in cases:
        a = cases["a"]
        lines.append(f"(a): {a['connections_opened']} logins, {a['connections_open']} connections "
                     f"open at the end, RSS +{a['rss_growth_mib']:.1f} MiB")  # fmt: skip
    if "d" in cases:
        d = cases["d"]
        lines.append(
            f"(d) one engine holding {d['open']} idle connections to an asyncssh server: "
            f"{d['kib_per_connection']:.1f} KiB each (RSS {d['rss_before_mib']:.1f} -> "
            f"{d['rss_after_mib']:.1f} MiB; opened and used in {d['open_s']:.1f} s; "
            f"load {d['load_before']:.1f}/{d['load_after']:.1f})"
        )
    for key, t in result["targets"].items():
        shown = f"{t['ratio']:.1f}x (target >= {t['min']:g}x)" if "ratio" in t else (
            f"{t['value']:.1f} KiB (target <= {t['max']:g})")  # fmt: skip
        lines.append(f"target {key}: {shown} {verdict(t['met'])}")
    lines += [f"PROBLEM {p}" for p in result["problems"]]
    return "\n".join(lines)
