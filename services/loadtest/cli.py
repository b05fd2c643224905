"""`kino loadtest`: load-test any Kino endpoint and write the report as text, JSON and PNG.

    kino loadtest --target 127.0.0.1:50051 --rate 20 --duration 60 --mix rank=6,ingest=2,encode=1,generate=1
    kino loadtest --target kino-serve:9000 --closed 16 --duration 120 --out reports/run1

Wire it with `add_parser(subcommands)` (the command's handler is `args.run`, an async function
returning an exit code) or run `python -m services.loadtest.cli ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from services.loadtest.runner import LoadConfig, run_load
from services.loadtest.workload import parse_mix

DEFAULT_MIX = "rank=6,ingest=2,encode=1.5,generate=0.5"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--target", help="HOST:PORT of a Kino endpoint (default: KINO_TARGET)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--rate", type=float, default=10.0, help="open loop: Poisson arrivals per second (default 10)"
    )
    load.add_argument("--closed", type=int, metavar="N", help="closed loop with N concurrent callers instead")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of load (default 30, at most 3600)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=10_000, help="stop after this many (default 10000)"
    )
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"weighted RPC mix (default {DEFAULT_MIX})")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="per-call deadline in seconds (default 30)"
    )
    parser.add_argument("--wait-jobs", action="store_true", help="generate waits for each job to finish")
    parser.add_argument("--users", type=int, default=1000, help="distinct simulated users (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="loadtest-report", help="report prefix: PREFIX.txt, .json, .png")
    parser.set_defaults(run=run_command)
    return parser


def add_parser(subcommands) -> argparse.ArgumentParser:
    """Adds `loadtest` to a subparsers object (the `kino` command's)."""
    return add_arguments(
        subcommands.add_parser("loadtest", help="load-test a Kino endpoint; text, JSON and PNG report")
    )


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    target = args.target or os.environ.get("KINO_TARGET")
    if not target:
        raise SystemExit("kino loadtest: --target or KINO_TARGET is required")
    return LoadConfig(
        target=target,
        mode="closed" if args.closed else "open",
        rate=args.rate,
        concurrency=args.closed or 1,
        duration_seconds=args.duration,
        max_requests=args.max_requests,
        mix=parse_mix(args.mix),
        timeout_seconds=args.timeout,
        wait_jobs=args.wait_jobs,
        users=args.users,
        seed=args.seed,
    )


async def run_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    report = await run_load(config)
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    text = report.to_text()
    prefix.with_suffix(".txt").write_text(text + "\n")
    prefix.with_suffix(".json").write_text(report.to_json() + "\n")
    report.plot(prefix.with_suffix(".png"))
    print(text)
    print(f"report: {prefix}.txt, {prefix}.json, {prefix}.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="kino loadtest", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        return asyncio.run(args.run(args))
    except ValueError as error:
        print(f"kino loadtest: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
