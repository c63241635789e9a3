"""`python -m bench`: run Entropy's benchmarks from the repository root."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import scenarios
from .common import write_json

EPILOG = """\
examples:
  python -m bench sync                         10000 hosts x 10 audits, 3 runs
  python -m bench sync --hosts 1000 --runs 5 --json bench/results/sync.json
  python -m bench sync --runs 1 --profile bench/results/prof
  python -m bench dispatch                     20000 audits due at once, real engine
  python -m bench dispatch --runs 1 --profile bench/results/prof
  python -m bench steady                       100000 pairs, 1000 audits/s for 30 s
  python -m bench steady --pairs 20000 --rate 2000 --seconds 10
  python -m bench memory --runs 1              RSS per pair at 1000000 pairs
  python -m bench refresh                      refresh times at 100000 pairs
  python -m bench all --quick                  every scenario, small sizes (< 2 min)

Each scenario prints a table (median and min..max over the runs) and, with
--json FILE, writes the same data with the raw runs and the environment.
Each run uses a fresh fleet, a fresh SQLite state file and fresh
interpreters. Where a target is set (at the size it is set for), the
median is checked against it: PASS or MISS; at other sizes, "-".
Exit status: 0 done, 1 a sanity check failed (wrong row counts, a stalled
engine, results not persisted), 3 a target was missed and --strict was given.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Entropy benchmarks. Run from the repository root with the project's venv.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="SCENARIO", required=True)
    for name in scenarios.SCENARIOS:
        module = scenarios.load(name)
        sub = commands.add_parser(
            name,
            help=module.SUMMARY,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        _common(sub)
    every = commands.add_parser(
        "all",
        help="run every scenario (" + ", ".join(scenarios.SCENARIOS) + ") at its default size",
        description="Run every scenario in turn, each with its defaults or, with --quick, "
        "with small sizes for a smoke run.",
    )
    every.add_argument(
        "--quick", action="store_true", help="small sizes, one run each: well under 2 minutes"
    )
    _common(every)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")


def run_all(quick: bool) -> list[dict[str, Any]]:
    results = []
    for name in scenarios.SCENARIOS:
        module = scenarios.load(name)
        sub = argparse.ArgumentParser()
        module.add_arguments(sub)
        args = sub.parse_args([])
        if quick:
            for key, value in module.QUICK.items():
                setattr(args, key, value)
        result = module.run(args)
        print(module.render(result), end="\n\n", flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "all":
        results = run_all(args.quick)
        data: Any = {"scenarios": results}
    else:
        module = scenarios.load(args.command)
        result = module.run(args)
        print(module.render(result), flush=True)
        results, data = [result], result
    if args.json:
        write_json(args.json, data)
        print(f"\nwrote {args.json}")
    if not all(r["ok"] for r in results):
        return 1
    if args.strict and any(r["targets_met"] is False for r in results):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
