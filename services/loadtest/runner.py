"""Drives a workload open-loop (Poisson arrivals at a target rate) or closed-loop (N callers).

Open loop is what a product sees: arrivals do not slow down when Kino does, so queueing shows up as
latency and RESOURCE_EXHAUSTED. Closed loop measures capacity: each caller sends its next request
when the last one returns. Both stop at `duration_seconds` or `max_requests`, whichever comes first,
and wait at most `drain_seconds` for calls still in flight (those count as DEADLINE_EXCEEDED).
Open loop caps calls in flight at `max_in_flight`; an arrival beyond it is not sent and is counted
as `CLIENT_OVERLOADED`, so a stalled endpoint cannot exhaust the load generator.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Literal

import grpc

from services.cluster import routing
from services.loadtest.report import CallRecord, LoadReport
from services.loadtest.workload import JobFailed, Workload

MAX_DURATION_SECONDS = 3600.0
MAX_REQUESTS = 1_000_000


@dataclass(frozen=True)
class LoadConfig:
    target: str
    mode: Literal["open", "closed"] = "open"
    # Open loop: mean arrivals per second (Poisson). Closed loop: number of concurrent callers.
    rate: float = 10.0
    concurrency: int = 4
    duration_seconds: float = 30.0
    max_requests: int = 10_000
    mix: dict[str, float] = field(
        default_factory=lambda: {"rank": 0.6, "ingest": 0.2, "encode": 0.15, "generate": 0.05}
    )
    timeout_seconds: float = 30.0
    max_in_flight: int = 1000
    drain_seconds: float = 30.0
    wait_jobs: bool = False
    users: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.duration_seconds <= MAX_DURATION_SECONDS:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_SECONDS:g}] seconds")
        if not 0 < self.max_requests <= MAX_REQUESTS:
            raise ValueError(f"max_requests must be in [1, {MAX_REQUESTS}]")
        if self.mode == "open" and self.rate <= 0:
            raise ValueError("open loop needs a rate > 0")
        if self.mode == "closed" and self.concurrency < 1:
            raise ValueError("closed loop needs concurrency >= 1")


async def run_load(config: LoadConfig) -> LoadReport:
    rng = random.Random(config.seed)
    names, weights = zip(*config.mix.items(), strict=True)
    report = LoadReport(config=config)
    async with routing.insecure_channel(config.target) as channel:
        workload = Workload(
            channel, users=config.users, wait_jobs=config.wait_jobs, timeout_seconds=config.timeout_seconds
        )
        started = time.perf_counter()
        deadline = started + config.duration_seconds

        async def call(name: str) -> None:
            begin = time.perf_counter()
            code = "OK"
            try:
                await workload.operation(name)(rng)
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            except JobFailed as failed:
                code = failed.code.name
            except asyncio.CancelledError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED.name
                raise
            finally:
                report.records.append(CallRecord(name, begin - started, time.perf_counter() - begin, code))

        if config.mode == "open":
            await _open_loop(config, rng, names, weights, call, report, started, deadline)
        else:
            await _closed_loop(config, rng, names, weights, call, deadline)
        report.elapsed_seconds = time.perf_counter() - started
    return report


async def _open_loop(config, rng, names, weights, call, report, started, deadline) -> None:
    in_flight: set[asyncio.Task] = set()
    next_arrival = started
    sent = 0
    while sent < config.max_requests:
        next_arrival += rng.expovariate(config.rate)
        if next_arrival >= deadline:
            break
        await asyncio.sleep(max(0.0, next_arrival - time.perf_counter()))
        name = rng.choices(names, weights)[0]
        sent += 1
        if len(in_flight) >= config.max_in_flight:
            report.records.append(CallRecord(name, time.perf_counter() - started, 0.0, "CLIENT_OVERLOADED"))
            continue
        task = asyncio.create_task(call(name))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await _drain(in_flight, config.drain_seconds)


async def _closed_loop(config, rng, names, weights, call, deadline) -> None:
    budget = {"left": config.max_requests}

    async def caller() -> None:
        while time.perf_counter() < deadline and budget["left"] > 0:
            budget["left"] -= 1
            await call(rng.choices(names, weights)[0])

    callers = {asyncio.create_task(caller()) for _ in range(config.concurrency)}
    remaining = max(0.0, deadline - time.perf_counter())
    done, pending = await asyncio.wait(callers, timeout=remaining + config.drain_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _drain(tasks: set[asyncio.Task], seconds: float) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
