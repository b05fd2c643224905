"""The saturated run on the step engine alone, once per scheduler setting: what a policy change does to
the interactive tail, measured side by side.

    .venv/bin/python -m services.denoiser.bench_variants --interactive-load 0.25 --rounds 3 \\
        share_urgent_steps=false share_urgent_steps=true

Each variant is a set of `SchedulerConfig` overrides (`name=value,name=value`; an empty string is the
defaults). Rounds are interleaved (round 1 of every variant, then round 2..., the order rotating)
against the same arrival trace, each with its own yardstick measured just before it (one-at-a-time
serving's unloaded latency), because this machine's speed drifts between minutes. `--interactive-load` raises the interactive
stream above the full bench's (0.08 of capacity) so that more interactive requests overlap: the tail
of a few dozen requests rests on a handful of overlaps, and a comparison needs more of them.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace

from services.denoiser.bench import (
    BenchConfig,
    Prompts,
    RequestLevelServer,
    RunStats,
    Scenario,
    StepEngineServer,
    bench_executor,
    measure_capacity,
    parse_variant,
    profiled_bucket,
    run_round,
    unloaded_latency,
)


async def compare(variants: dict[str, dict], config: BenchConfig, interactive_load: float) -> list[dict]:
    """variants: each variant's text (its name in the output) and its SchedulerConfig overrides."""
    executor = bench_executor(config)
    prompts = Prompts.encode(seed=config.seed)
    bucket, profiled = await profiled_bucket(executor, config, prompts)
    step_times = profiled.step_times

    def fcfs() -> RequestLevelServer:
        return RequestLevelServer("fcfs", executor, config, max_requests=1)

    capacity = await measure_capacity(fcfs(), executor, bucket, config, prompts, config.capacity_seconds)
    print(f"measured capacity (fcfs, closed loop): {60 * capacity:.1f} videos/min", flush=True)
    scenario = Scenario("saturated", interactive_load, 1.5, config.saturated_window_s)
    stats = {v: RunStats(v or "defaults", scenario, capacity) for v in variants}
    window = scenario.window_s / config.rounds
    names = list(variants)
    for round_ in range(config.rounds):
        # A rotating order, as in the full bench: no variant always runs first after a yardstick.
        for variant in names[round_ % len(names) :] + names[: round_ % len(names)]:
            reference = await unloaded_latency(fcfs(), executor, bucket, config, prompts)
            server = StepEngineServer(executor, config, step_times, variants[variant])
            await run_round(
                server, executor, bucket, config, prompts, stats[variant], window, round_, reference
            )
            done = stats[variant].summary()["interactive"]
            print(
                f"round {round_ + 1}/{config.rounds} {variant or 'defaults'}: {done['finished']} interactive so far",
                flush=True,
            )
    results = []
    for variant in variants:
        summary = stats[variant].summary()
        results.append(summary)
        i = summary["interactive"]
        print(
            f"{variant or 'defaults':40s} interactive n={i['finished']} p50 {i['p50_over_unloaded']:.2f}x "
            f"p95 {i['p95_over_unloaded']:.2f}x unloaded; {summary['throughput_per_min']:.1f} videos/min finished; "
            f"2-row model call {', '.join(f'{ms:.1f}' for ms in summary['two_row_step_ms'] if ms)} ms by round"
        )
        for row in i["slowest"]:
            print(
                f"    {row['over_unloaded']:.2f}x: to the first step {row['to_first_step']:.2f}, steps "
                f"{row['steps']:.2f}, after the last step {row['after_last_step']:.2f}; "
                f"{row['in_flight_at_arrival']} interactive in flight at arrival"
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="SchedulerConfig overrides, name=value[,name=value]")
    parser.add_argument(
        "--interactive-load", type=float, default=0.25, help="interactive arrivals / capacity"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--window", type=float, default=105.0, help="seconds of arrivals per variant, all rounds"
    )
    args = parser.parse_args()
    variants = {variant: parse_variant(variant) for variant in args.variants}  # fails before any measuring
    config = replace(BenchConfig(), rounds=args.rounds, saturated_window_s=args.window, capacity_seconds=15.0)
    asyncio.run(compare(variants, config, args.interactive_load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
