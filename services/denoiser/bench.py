"""VideoDenoiser serving benchmark: Kino's step-level engine beside two classic ways of serving.

Reproduce the numbers and plots of docs/engine/REPORT.md with one command:

    nice -n 10 .venv/bin/python -m services.denoiser.bench --report docs/engine

and on a CUDA GPU (about two minutes on an H100 or H200; `--gpu` is the preset below, GPU_PRESET):

    python -m services.denoiser.bench --gpu --device cuda --report docs/engine/gpu

Three servers run the same model, on the same machine, in one process, one after the other, against
the same open-loop Poisson arrival traces (a mix of interactive and batch requests):

(a) `fcfs`: one request at a time, first come first served, each run to its end;
(b) `request-batching`: whatever has arrived (up to the row limit) is grouped and run to its end,
    newcomers wait for the whole group;
(c) `step-engine`: Kino's engine, requests join and leave the batch at every step, interactive
    requests pre-empt batch ones, admission from measured step times.

Arrival rates are multiples of the machine's capacity, measured just before the runs: the videos per
second that one-at-a-time serving finishes with a backlog (on this CPU batching barely raises it, and
the machine is shared, so a profile of a quiet moment would overstate it). Two kinds of run:

* mixed: Poisson arrivals at several multiples of capacity, a fixed share of them interactive;
* saturated: batch requests arrive at 1.5x capacity, so the machine is always busy with them, and a
  light stream of interactive requests arrives beside them.

Per server and run it reports throughput (videos/min finished in the last three quarters of the arrival
window: steady state), p50/p95
latency by priority, time to first preview, and SLO attainment (the share of interactive requests
finished within 3x the unloaded latency; refused and unfinished ones count as misses). Prompts are
shapes-world captions encoded by the TextEncoder's MiniLM, as in production. torch runs one thread:
on a 2-core machine shared with other work, a second OpenMP thread that waits for a busy core makes
every step many times slower, and all three servers get the same treatment.

On a GPU a step of 64 rows costs little more than a step of two, so the step engine's capacity is many
times one-at-a-time serving's, and batch arrivals at 1.5x fcfs's capacity would not saturate it: the
GPU preset sets the saturated run's batch arrivals at 1.5x the step engine's own closed-loop capacity
(`BenchConfig.saturate`), so every server has a backlog. Each run also records how late the event loop
started arrivals (`arrival_lag_*`) and the share of the run the executor was busy with model steps
(`step_busy_share`): where the Python around the model (scheduler, events, streams) is the limit, these
say so. Before the runs, one seeded request is run alone and beside eight others, and the largest
differences of its final latents and frames are recorded (`batch_invariance`): zero on the CPU, the
measured tolerance on a GPU. For a model that takes several token grids in turn, the start-up profile
also times steps whose rows are spread over the grids (`step_ms_by_rows_over_grids`: one DiT call per
grid), and each run records the DiT calls per step (`mean_step_calls`). `--scheduler name=value,...`
overrides the step engine's `SchedulerConfig` (docs/engine/gpu/compare_grids.sh compares two that way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import random
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from services.common.errors import KinoError, resource_exhausted
from services.common.settings import DenoiserSettings
from services.denoiser.engine.engine import DenoiseEngine
from services.denoiser.engine.executor import ModelExecutor, load_executor
from services.denoiser.engine.plan import DenoiseEvent, EventKind, StepItem, StepPlan
from services.denoiser.engine.request import EngineRequest, Priority, SamplerState, ShapeBucket
from services.denoiser.engine.scheduler import SchedulerConfig, StepScheduler
from services.denoiser.engine.step_times import StepTimes

SLO_FACTOR = 3.0


@dataclass(frozen=True)
class Scenario:
    name: str
    interactive_load: float  # interactive arrival rate, as a multiple of capacity
    batch_load: float  # batch arrival rate, as a multiple of capacity
    window_s: float  # arrivals happen during this long

    @property
    def load(self) -> float:
        return self.interactive_load + self.batch_load


@dataclass(frozen=True)
class BenchConfig:
    load_factors: tuple[float, ...] = (0.5, 1.0, 1.5)  # mixed runs: total arrival rate / capacity
    interactive_share: float = 0.2  # of the mixed runs' arrivals
    window_s: float = 36.0  # arrivals of one mixed run, over all rounds
    saturated_interactive_load: float = 0.08  # the saturated run's light interactive stream
    saturated_window_s: float = 105.0
    capacity_seconds: float = 20.0  # closed-loop measurement of the machine's capacity
    rounds: int = 3  # each scenario's window is split into this many interleaved rounds
    drain_factor: float = 0.5  # after the window, wait this fraction of it for the queue to empty
    num_steps: int = 10  # 0 means the model's default
    preview_every: int = 4
    max_rows: int = 16
    max_queued: int = 64
    tenants: int = 4
    torch_threads: int = 1
    seed: int = 0
    # The saturated run's batch arrivals are 1.5x the closed-loop capacity of this server: "fcfs" (on a
    # CPU the others barely raise it) or "step-engine" (on a GPU, where fcfs's would leave it idle).
    saturate: str = "fcfs"
    throughput_target: float = 1.0  # step-engine over fcfs at saturation, what the report checks
    invariance_neighbours: int = 8  # requests beside the probe in the batch-invariance check
    scheduler: str = ""  # the step engine's SchedulerConfig overrides, `name=value,...` (`parse_variant`)

    def scenarios(self, saturated_batch_load: float = 1.5) -> list[Scenario]:
        """The mixed runs, then the saturated one; loads are multiples of fcfs's capacity."""
        mixed = [
            Scenario(
                f"mixed {load:g}x",
                load * self.interactive_share,
                load * (1 - self.interactive_share),
                self.window_s,
            )
            for load in self.load_factors
        ]
        saturated = Scenario(
            "saturated", self.saturated_interactive_load, saturated_batch_load, self.saturated_window_s
        )
        return [*mixed, saturated]


# A fast GPU in about two minutes: capacity measured for 8 s per server, one mixed load (1.5x), short
# rounds, and 64 rows per step (a GPU is idle at batch one; the memory budget allows thousands of rows
# of this model, so max_rows is the limit).
GPU_PRESET = BenchConfig(
    load_factors=(1.5,),
    window_s=12.0,
    saturated_window_s=12.0,
    capacity_seconds=8.0,
    rounds=2,
    drain_factor=0.25,
    max_rows=64,
    saturate="step-engine",
    throughput_target=2.5,
)


def parse_variant(text: str) -> dict:
    """`name=value,...` into SchedulerConfig overrides, each value converted to the field's type and
    the whole checked by SchedulerConfig itself; a bad one exits with the reason."""
    names = sorted(f.name for f in dataclasses.fields(SchedulerConfig))
    overrides = {}
    for pair in filter(None, text.split(",")):
        name, _, value = pair.partition("=")
        if name not in names:
            raise SystemExit(f"unknown SchedulerConfig field {name!r}; known: {names}")
        kind = type(getattr(SchedulerConfig(), name))
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise SystemExit(f"{name} takes true or false, not {value!r}")
            overrides[name] = value.lower() == "true"
            continue
        try:
            overrides[name] = kind(value)
        except ValueError:
            expected = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
            raise SystemExit(f"{name} takes {expected}, not {value!r}") from None
    try:
        SchedulerConfig(**overrides)
    except ValueError as error:
        raise SystemExit(f"{text!r}: {error}") from None
    return overrides


# ---- the three servers ------------------------------------------------------------------------------


class StepEngineServer:
    """(c) Kino's engine as the VideoDenoiser runs it."""

    name = "step-engine"

    def __init__(
        self,
        executor: ModelExecutor,
        config: BenchConfig,
        step_times: StepTimes,
        scheduler_overrides: dict | None = None,
    ) -> None:
        scheduler_config = SchedulerConfig(
            max_rows=config.max_rows,
            max_queued=config.max_queued,
            pipelined_decodes=DenoiserSettings().pipelined_decodes,  # as the VideoDenoiser runs it
            **(scheduler_overrides or {}),
        )
        self.engine = DenoiseEngine(
            StepScheduler(
                scheduler_config,
                step_times,
                row_limit=executor.row_limit,
                grid_of_step=executor.token_grid_of_step,
                restart_index_of=executor.restart_index,
            ),  # fmt: skip
            executor,
        )

    async def start(self) -> None:
        self.engine.start()

    async def close(self) -> None:
        await self.engine.close()

    def submit(self, request: EngineRequest) -> AsyncIterator[DenoiseEvent]:
        return aiter(self.engine.submit(request))


class RequestLevelServer:
    """(a) and (b): a FIFO queue; a group leaves it only when the previous group has finished.

    With max_requests=1 this is one request at a time; otherwise every queued request of the head's
    shape joins the group while its rows fit. Members leave the group when done; nobody joins it.
    """

    def __init__(self, name: str, executor: ModelExecutor, config: BenchConfig, max_requests: int) -> None:
        self.name = name
        self.executor = executor
        self.max_rows = config.max_rows
        self.max_requests = max_requests
        self.max_queued = config.max_queued
        self.queue: deque[tuple[EngineRequest, asyncio.Queue]] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.step_id = 0

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def submit(self, request: EngineRequest) -> AsyncIterator[DenoiseEvent]:
        if len(self.queue) >= self.max_queued:
            raise resource_exhausted("QUEUE_FULL", "queue full", retry_after_seconds=1.0)
        request.arrival = time.monotonic()
        events: asyncio.Queue = asyncio.Queue()
        self.queue.append((request, events))
        self.wake.set()
        return _drain(events)

    async def _loop(self) -> None:
        while True:
            if not self.queue:
                self.wake.clear()
                await self.wake.wait()
                continue
            bucket = self.queue[0][0].bucket
            group, rows = [], 0
            for request, events in list(self.queue):
                if len(group) == self.max_requests:
                    break
                if request.bucket == bucket and rows + request.rows <= self.max_rows:
                    group.append((request, events))
                    rows += request.rows
                    self.queue.remove((request, events))
            while group:
                now = time.monotonic()
                for request, _ in group:
                    request.first_step_at = request.first_step_at or now
                plan = StepPlan(
                    step_id=self.step_id,
                    bucket=bucket,
                    items=[_item(r) for r, _ in group],
                    num_rows=sum(r.rows for r, _ in group),
                    preempted_ids=[],
                    finished_ids=[],
                )
                self.step_id += 1
                result = await asyncio.to_thread(self.executor.run, plan)
                for item, (request, events) in zip(plan.items, list(group), strict=True):
                    request.sampler.latents = result.latents[item.request_id]
                    request.steps_done += 1
                    queue_seconds = request.first_step_at - request.arrival
                    common = dict(
                        request_id=request.request_id, step=request.steps_done,
                        total_steps=request.num_steps, queue_seconds=queue_seconds,
                    )  # fmt: skip
                    events.put_nowait(DenoiseEvent(kind=EventKind.PROGRESS, **common))
                    if item.final:
                        events.put_nowait(
                            DenoiseEvent(
                                kind=EventKind.RESULT, frames=result.frames[item.request_id], **common
                            )
                        )
                        group.remove((request, events))
                    elif item.preview:
                        events.put_nowait(
                            DenoiseEvent(
                                kind=EventKind.PREVIEW, frames=result.previews[item.request_id], **common
                            )
                        )


def _item(request: EngineRequest) -> StepItem:
    step = request.steps_done + 1
    return StepItem(
        request_id=request.request_id,
        step_index=request.steps_done,
        num_steps=request.num_steps,
        guidance_scale=request.guidance_scale,
        rows=request.rows,
        sampler=request.sampler,
        preview=step % request.preview_every == 0 and step < request.num_steps,
        final=step == request.num_steps,
    )


async def _drain(events: asyncio.Queue) -> AsyncIterator[DenoiseEvent]:
    while True:
        event = await events.get()
        yield event
        if event.last:
            return


class TimedExecutor:
    """The executor, recording the model-call time of every step: how fast the shared machine was
    during each run (the 2-row steps are what one-at-a-time serving runs)."""

    def __init__(self, executor: ModelExecutor) -> None:
        self.executor = executor
        self.steps: list[tuple[int, float]] = []  # (rows, seconds of the model call)
        self.calls: list[int] = []  # DiT calls of each step (one per token grid among its rows)

    def __getattr__(self, name):
        return getattr(self.executor, name)

    def run(self, plan: StepPlan):
        result = self.executor.run(plan)
        self.steps.append((plan.num_rows, result.duration_seconds - result.decode_seconds))
        self.calls.append(len(result.call_rows))
        return result

    def two_row_step_ms(self) -> float | None:
        times = [seconds for rows, seconds in self.steps if rows == 2]
        return 1000 * float(np.median(times)) if times else None


# ---- load ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    priority: str
    arrival: float  # seconds since the start of the run
    first_preview: float | None = None  # seconds after arrival
    latency: float | None = None  # seconds after arrival, None when refused or unfinished
    refused: str = ""  # the error reason when refused
    unloaded: float = 0.0  # unloaded latency measured just before its round (the SLO's yardstick)
    round_: int = 0
    first_step: float | None = None  # seconds after arrival when its first step was done
    last_step: float | None = None  # seconds after arrival when its last step was done


@dataclass
class RunStats:
    """One server's outcomes in one scenario, over all rounds."""

    server: str
    scenario: Scenario
    capacity_per_s: float
    outcomes: list[Outcome] = field(default_factory=list)
    steady_finishes: int = 0  # finishes in the last three quarters of each round's arrival window
    steady_seconds: float = 0.0  # the length of those stretches, summed over rounds
    steady_steps: int = 0  # denoising steps done in those stretches, for all requests
    steps_per_video: int = 1
    load_averages: list[float] = field(default_factory=list)  # the machine's, after each round
    two_row_step_ms: list[float] = field(default_factory=list)  # median model call of 2-row steps, per round
    arrival_lags: list[float] = field(default_factory=list)  # seconds each arrival started late
    step_busy_share: list[float] = field(default_factory=list)  # model steps' share of each round's time
    mean_step_rows: list[float] = field(default_factory=list)  # batch rows per model step, per round
    mean_step_calls: list[float] = field(default_factory=list)  # DiT calls per model step, per round

    def summary(self) -> dict:
        out = {
            "server": self.server,
            "scenario": self.scenario.name,
            "load": self.scenario.load,
            "offered_per_min": 60 * self.scenario.load * self.capacity_per_s,
            "throughput_per_min": 60 * self.steady_finishes / self.steady_seconds,
            # Steps done in the steady stretches, in videos: the work rate, which does not depend on
            # how many requests share the machine at once (finishes lag behind it when many do).
            "work_rate_videos_per_min": 60 * self.steady_steps / self.steps_per_video / self.steady_seconds,
            "load_average": self.load_averages,
            "two_row_step_ms": self.two_row_step_ms,
            "arrivals": len(self.arrival_lags),
            "arrival_lag_p50_ms": _milliseconds(_percentile(self.arrival_lags, 50)),
            "arrival_lag_p99_ms": _milliseconds(_percentile(self.arrival_lags, 99)),
            "arrival_lag_max_ms": _milliseconds(max(self.arrival_lags, default=None)),
            "step_busy_share": self.step_busy_share,
            "mean_step_rows": self.mean_step_rows,
            "mean_step_calls": self.mean_step_calls,
        }
        for priority in ("interactive", "batch"):
            mine = [o for o in self.outcomes if o.priority == priority]
            done = [o for o in mine if o.latency is not None]
            latencies = [o.latency for o in done]
            ratios = [o.latency / o.unloaded for o in done]
            previews = [o.first_preview for o in mine if o.first_preview is not None]
            out[priority] = {
                "arrived": len(mine),
                "finished": len(done),
                "refused": sum(1 for o in mine if o.refused),
                "p50_s": _percentile(latencies, 50),
                "p95_s": _percentile(latencies, 95),
                "p50_over_unloaded": _percentile(ratios, 50),
                "p95_over_unloaded": _percentile(ratios, 95),
                "first_preview_p50_s": _percentile(previews, 50),
                "first_preview_p95_s": _percentile(previews, 95),
                "slo_attainment": sum(1 for x in ratios if x <= SLO_FACTOR) / len(mine) if mine else None,
            }
        out["interactive"]["slowest"] = self.slowest("interactive")
        return out

    def slowest(self, priority: str, count: int = 5) -> list[dict]:
        """What the tail is made of: the `count` slowest finished requests of a priority, their latency
        split in x unloaded (until the first step, the steps, after the last step: the decode and the
        wait for it), and how many requests of the same priority were in flight when each arrived.
        Rounds restart the clock, so "in flight" compares requests of the same round only."""
        done = [o for o in self.outcomes if o.priority == priority and o.latency is not None]
        rows = []
        for o in sorted(done, key=lambda o: o.latency / o.unloaded, reverse=True)[:count]:
            overlapping = sum(
                1
                for other in done
                if other is not o
                and other.round_ == o.round_
                and other.arrival <= o.arrival < other.arrival + other.latency
            )
            first, last = o.first_step or 0.0, o.last_step or 0.0
            rows.append(
                {
                    "over_unloaded": round(o.latency / o.unloaded, 2),
                    "to_first_step": round(first / o.unloaded, 2),
                    "steps": round((last - first) / o.unloaded, 2),
                    "after_last_step": round((o.latency - last) / o.unloaded, 2),
                    "in_flight_at_arrival": overlapping,
                }
            )
        return rows


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 2)


class Prompts:
    """Shapes-world captions encoded once by the TextEncoder's MiniLM, reused round robin.

    `save` and `load` carry the encoded tokens to a machine without the MiniLM package (a GPU
    machine with no network): the same float32 token embeddings, about 1 MB for 64 captions."""

    def __init__(self, tokens: list[np.ndarray]) -> None:
        self.tokens = [np.asarray(t, np.float32) for t in tokens]  # (L, D) each
        self.max_tokens = max(len(t) for t in self.tokens)

    @classmethod
    def encode(cls, count: int = 64, seed: int = 0) -> Prompts:
        from services.text_encoder.backends import load_default_backend
        from training.shapes_world import make_caption, sample_spec

        rng = np.random.default_rng(seed)
        captions = [make_caption(sample_spec(rng), rng) for _ in range(count)]
        return cls([e.tokens for e in load_default_backend().encode(captions)])

    @classmethod
    def load(cls, path: str | Path) -> Prompts:
        with np.load(path) as saved:
            return cls([saved[f"prompt_{i}"] for i in range(len(saved.files))])

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{f"prompt_{i}": t for i, t in enumerate(self.tokens)})

    def __getitem__(self, index: int) -> np.ndarray:
        return self.tokens[index % len(self.tokens)]


def make_request(
    executor, bucket, config: BenchConfig, prompts: Prompts, index: int, priority: Priority, rng
):
    card = executor.card
    return EngineRequest(
        request_id=f"r{index}",
        bucket=bucket,
        num_steps=config.num_steps or card.default_steps,
        guidance_scale=card.default_guidance_scale,
        sampler=SamplerState(seed=index, text=prompts[index]),
        priority=priority,
        tenant=f"tenant-{rng.randrange(config.tenants)}",
        preview_every=config.preview_every,
    )


def arrivals(scenario: Scenario, capacity: float, seed: int) -> list[tuple[float, Priority]]:
    """Two independent Poisson processes, one per priority, over the scenario's window."""
    rng = random.Random(seed)
    out = []
    for priority, load in (
        (Priority.INTERACTIVE, scenario.interactive_load),
        (Priority.BATCH, scenario.batch_load),
    ):
        t = rng.expovariate(load * capacity)
        while t < scenario.window_s:
            out.append((t, priority))
            t += rng.expovariate(load * capacity)
    return sorted(out)


async def run_round(
    server, executor, bucket, config, prompts, stats: RunStats, window: float, round_: int, unloaded: float
) -> None:
    """One open-loop round: requests arrive on schedule whatever the server does; then a bounded drain."""
    scenario = Scenario(
        stats.scenario.name, stats.scenario.interactive_load, stats.scenario.batch_load, window
    )
    trace = arrivals(
        scenario, stats.capacity_per_s, seed=config.seed * 1000 + round(scenario.load * 100) + round_
    )
    rng = random.Random(config.seed + round_)
    executor.steps.clear()
    executor.calls.clear()
    await server.start()
    start = time.monotonic()
    outcomes: list[Outcome] = []
    step_times: list[float] = []
    tasks: list[asyncio.Task] = []

    async def one(index: int, priority: Priority) -> None:
        outcome = Outcome(priority.name.lower(), time.monotonic() - start, unloaded=unloaded, round_=round_)
        outcomes.append(outcome)
        try:
            events = server.submit(make_request(executor, bucket, config, prompts, index, priority, rng))
        except KinoError as error:
            outcome.refused = error.reason
            return
        async for event in events:
            if event.kind == EventKind.PROGRESS:
                step_times.append(time.monotonic() - start)
                outcome.last_step = step_times[-1] - outcome.arrival
                if outcome.first_step is None:
                    outcome.first_step = outcome.last_step
            if event.kind == EventKind.PREVIEW and outcome.first_preview is None:
                outcome.first_preview = time.monotonic() - start - outcome.arrival
            if event.kind == EventKind.RESULT:
                outcome.latency = time.monotonic() - start - outcome.arrival

    async def arrive() -> None:
        """Starts each request when its time comes: one timer at a time however many arrivals the
        window holds (a GPU takes tens a second), and a record of how late the loop let each start."""
        for i, (at, priority) in enumerate(trace):
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            stats.arrival_lags.append(time.monotonic() - start - at)
            tasks.append(asyncio.ensure_future(one(1000 * round_ + i, priority)))

    arriving = asyncio.ensure_future(arrive())
    end = start + window * (1 + config.drain_factor)
    await asyncio.wait([arriving], timeout=end - time.monotonic())
    if tasks and end > time.monotonic():
        await asyncio.wait(tasks, timeout=end - time.monotonic())
    for task in [arriving, *tasks]:
        task.cancel()
    await asyncio.gather(arriving, *tasks, return_exceptions=True)
    elapsed = time.monotonic() - start
    await server.close()
    await asyncio.to_thread(_wait_idle, executor)
    stats.step_busy_share.append(round(sum(seconds for _, seconds in executor.steps) / elapsed, 3))
    rows = [r for r, _ in executor.steps]
    stats.mean_step_rows.append(round(float(np.mean(rows)), 1) if rows else 0.0)
    stats.mean_step_calls.append(round(float(np.mean(executor.calls)), 2) if executor.calls else 0.0)
    # Steady state: finishes in the last three quarters of the arrival window, so that a server that
    # starts many requests at once is not penalised for the time its first batch takes.
    stats.steady_finishes += sum(
        1 for o in outcomes if o.latency is not None and window / 4 <= o.arrival + o.latency <= window
    )
    stats.steady_seconds += 0.75 * window
    stats.steady_steps += sum(1 for t in step_times if window / 4 <= t <= window)
    stats.steps_per_video = config.num_steps or executor.card.default_steps
    stats.outcomes += outcomes
    stats.load_averages.append(round(os.getloadavg()[0], 2))
    stats.two_row_step_ms.append(executor.two_row_step_ms())


async def measure_capacity(
    server, executor, bucket, config, prompts, seconds: float, workers: int = 2
) -> float:
    """Videos per second the server finishes with a backlog that never runs dry (closed loop): each of
    `workers` callers sends its next request when the last one is done."""
    await server.start()
    finished: list[float] = []
    stop = time.monotonic() + seconds
    rng = random.Random(config.seed)

    async def worker(first: int) -> None:
        index = first
        while time.monotonic() < stop or len(finished) < 2:
            request = make_request(executor, bucket, config, prompts, index, Priority.BATCH, rng)
            async for event in server.submit(request):
                if event.kind == EventKind.RESULT:
                    finished.append(time.monotonic())
            index += workers

    await asyncio.gather(*(worker(200_000 + i) for i in range(workers)))
    await server.close()
    await asyncio.to_thread(_wait_idle, executor)
    return (len(finished) - 1) / (finished[-1] - finished[0])


def batch_invariance(
    executor: ModelExecutor, bucket: ShapeBucket, prompts: Prompts, num_steps: int, neighbours: int = 8
) -> dict:
    """One seeded request run alone, then in the same steps beside `neighbours` others (other prompts,
    other seeds): the largest absolute differences of its final latents and of its frames (uint8
    levels). Zero on the CPU, where the executor makes every layer batch-invariant; on a GPU, the
    tolerance to state."""
    card = executor.card
    rows = 2 if card.default_guidance_scale != 1.0 else 1

    def final(count: int) -> tuple[torch.Tensor, np.ndarray]:
        samplers = [SamplerState(seed=7 + i, text=prompts[i]) for i in range(count)]  # [0] the probe
        for step in range(num_steps):
            items = [
                StepItem(
                    f"invariance-{i}",
                    step,
                    num_steps,
                    card.default_guidance_scale,
                    rows,
                    sampler,
                    preview=False,
                    final=step == num_steps - 1,
                )  # fmt: skip
                for i, sampler in enumerate(samplers)
            ]
            plan = StepPlan(
                step_id=-1,
                bucket=bucket,
                items=items,
                num_rows=rows * count,
                preempted_ids=[],
                finished_ids=[],
            )
            result = executor.run(plan)
            for item in items:
                item.sampler.latents = result.latents[item.request_id]
        return samplers[0].latents.cpu(), result.frames["invariance-0"]

    latents_alone, frames_alone = final(1)
    latents_batched, frames_batched = final(1 + neighbours)
    return {
        "neighbours": neighbours,
        "num_steps": num_steps,
        "latents_max_abs_diff": float((latents_alone - latents_batched).abs().max()),
        "latents_max_abs": float(latents_alone.abs().max()),
        "frames_max_abs_diff": int(np.abs(frames_alone.astype(int) - frames_batched.astype(int)).max()),
        "frames_differing_share": float(np.mean(frames_alone != frames_batched)),
    }


def describe_device(device: torch.device) -> dict:
    """What ran the model, for the report: the GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return {
            "type": "cuda",
            "name": torch.cuda.get_device_name(device),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
    name = platform.machine()
    with contextlib.suppress(OSError):
        models = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        ]
        name = models[0].split(":", 1)[1].strip() if models else name
    return {"type": "cpu", "name": name, "cores": os.cpu_count(), "torch": torch.__version__}


def _wait_idle(executor: ModelExecutor) -> None:
    with executor.lock:
        pass


async def unloaded_latency(server, executor, bucket, config, prompts, repeats: int = 3) -> float:
    """Median latency of an interactive request alone on the server."""
    await server.start()
    latencies = []
    for i in range(repeats):
        start = time.monotonic()
        request = make_request(
            executor, bucket, config, prompts, 100_000 + i, Priority.INTERACTIVE, random.Random(i)
        )
        async for _event in server.submit(request):
            pass
        latencies.append(time.monotonic() - start)
    await server.close()
    return float(np.median(latencies))


# ---- the whole bench -------------------------------------------------------------------------------


def run_bench(
    config: BenchConfig | None = None,
    report_dir: str | Path | None = None,
    settings: DenoiserSettings | None = None,
    prompts_file: str | Path | None = None,
) -> dict:
    """Runs every scenario on the three servers, prints the table and the ratios to the targets, and
    writes results.json and the plots to report_dir when given. Prompts are encoded by MiniLM here,
    or read from `prompts_file` (`Prompts.save`)."""
    config = config or BenchConfig()
    executor = bench_executor(config, settings)
    device = describe_device(executor.device)
    print(f"device: {device['name']} ({device['type']}), torch {device['torch']}", flush=True)
    prompts = Prompts.load(prompts_file) if prompts_file else Prompts.encode(seed=config.seed)
    report = {"device": device, **asyncio.run(_bench(executor, config, prompts))}
    if report_dir is not None:
        write_results(report, Path(report_dir))
    return report


def bench_executor(config: BenchConfig, settings: DenoiserSettings | None = None) -> TimedExecutor:
    """The model as every server of the bench runs it: the settings' device and weights, the bench's
    torch threads, each step's time recorded."""
    settings = (settings or DenoiserSettings()).model_copy(update={"torch_threads": config.torch_threads})
    return TimedExecutor(load_executor(settings))


async def profiled_bucket(
    executor: ModelExecutor, config: BenchConfig, prompts: Prompts
) -> tuple[ShapeBucket, StepScheduler]:
    """The bench's shape bucket (the model's largest clip, the prompts' padding) and a scheduler whose
    step times are profiled on it; the step engine's servers share those step times."""
    card = executor.card
    bucket = executor.bucket(card.frame_counts[-1], *card.resolutions[-1], prompts.max_tokens)
    scheduler = StepScheduler(
        SchedulerConfig(max_rows=config.max_rows), StepTimes(), row_limit=executor.row_limit,
        grid_of_step=executor.token_grid_of_step, restart_index_of=executor.restart_index,
    )  # fmt: skip
    await asyncio.to_thread(DenoiseEngine(scheduler, executor).profile, [bucket])
    return bucket, scheduler


def grid_split_times(executor: ModelExecutor, bucket: ShapeBucket, max_rows: int) -> dict[int, float]:
    """Milliseconds of a step whose requests are spread over the model's token-grid cycle (one DiT
    call per grid), by batch rows: what sharing a step costs requests at different places in the
    cycle. Empty for a model that keeps one grid."""
    cycle = executor.grid_cycle
    if cycle == 1:
        return {}
    sizes = sorted({rows for rows in (2 * cycle, 8 * cycle, max_rows) if 2 * cycle <= rows <= max_rows})
    times = {}
    for rows in sizes:
        executor.profile(bucket, rows, grids=cycle)  # the first call of a size pays for lazy set-up
        times[rows] = round(
            1000 * statistics.median(executor.profile(bucket, rows, grids=cycle) for _ in range(3)), 1
        )
    return times


async def _bench(executor: ModelExecutor, config: BenchConfig, prompts: Prompts) -> dict:
    card = executor.card
    bucket, scheduler = await profiled_bucket(executor, config, prompts)
    step_times = scheduler.step_times
    steps = config.num_steps or card.default_steps
    rows = 2 if card.default_guidance_scale != 1.0 else 1
    max_rows = scheduler.row_limit(bucket)
    decode_s = step_times.decode_seconds(bucket)  # the final frames (previews come from the latents)
    per_video = steps * rows / step_times.best_rate(bucket, max_rows) + decode_s
    profiled_capacity = 1 / per_video  # videos per second at the best measured batch size
    measured = {r: round(1000 * s, 1) for r, s in sorted(step_times.measured(bucket).items())}
    print(
        f"model {card.name}, bucket {bucket}, {steps} steps, guidance {card.default_guidance_scale} ({rows} rows)"
    )
    print(f"step time by batch rows (ms): {measured}; one decode {1000 * decode_s:.1f} ms")
    print(f"capacity from step times: {60 * profiled_capacity:.1f} videos/min", flush=True)
    over_grids = await asyncio.to_thread(grid_split_times, executor, bucket, max_rows)
    if over_grids:
        print(
            f"step time by batch rows spread over the model's {executor.grid_cycle} token grids (ms): {over_grids}"
        )
    invariance = await asyncio.to_thread(
        batch_invariance, executor, bucket, prompts, steps, config.invariance_neighbours
    )
    print(
        f"one request alone vs beside {invariance['neighbours']} others: largest difference of final "
        f"latents {invariance['latents_max_abs_diff']:.3g} (of values up to {invariance['latents_max_abs']:.3g}), "
        f"of frames {invariance['frames_max_abs_diff']} levels ({100 * invariance['frames_differing_share']:.2f}% "
        "of values differ)",
        flush=True,
    )

    def servers():
        return [
            RequestLevelServer("fcfs", executor, config, max_requests=1),
            RequestLevelServer("request-batching", executor, config, max_requests=config.max_rows),
            StepEngineServer(executor, config, step_times, parse_variant(config.scheduler)),
        ]

    unloaded = {}
    for server in servers():
        unloaded[server.name] = await unloaded_latency(server, executor, bucket, config, prompts)
    print("unloaded latency (s): " + ", ".join(f"{k} {v:.3f}" for k, v in unloaded.items()), flush=True)
    # Arrival rates are set against what the machine really does (it is shared, and slower than the
    # profile of a quiet moment): one request at a time with a backlog.
    capacity = await measure_capacity(
        servers()[0], executor, bucket, config, prompts, config.capacity_seconds
    )
    print(f"measured capacity (fcfs, closed loop): {60 * capacity:.1f} videos/min", flush=True)
    saturated_batch_load, engine_capacity = 1.5, None
    if config.saturate == "step-engine":
        # Enough callers for two full batches: one running, one waiting to join as rows free up.
        workers = 2 * max(1, max_rows // rows)
        engine_capacity = await measure_capacity(
            servers()[2], executor, bucket, config, prompts, config.capacity_seconds, workers=workers
        )
        saturated_batch_load = 1.5 * engine_capacity / capacity
        print(
            f"measured capacity (step-engine, closed loop, {workers} callers): "
            f"{60 * engine_capacity:.1f} videos/min; saturated batch arrivals at "
            f"{saturated_batch_load:.2f}x fcfs's capacity",
            flush=True,
        )
    results = []
    for scenario in config.scenarios(saturated_batch_load):
        stats = {name: RunStats(name, scenario, capacity) for name in SERVER_STYLE}
        window = scenario.window_s / config.rounds
        for round_ in range(config.rounds):
            # Interleaved rounds, each with its own yardstick: the machine is shared and its speed
            # drifts, so every server sees every part of the drift, in a rotating order.
            reference = await unloaded_latency(servers()[0], executor, bucket, config, prompts)
            order = servers()
            order = order[round_ % 3 :] + order[: round_ % 3]
            for server in order:
                await run_round(
                    server, executor, bucket, config, prompts, stats[server.name], window, round_, reference
                )
        for name in SERVER_STYLE:
            results.append(stats[name].summary())
            print(_row(results[-1]), flush=True)
    report = {
        "config": asdict(config),
        "model": card.name,
        "bucket": str(bucket),
        "num_steps": steps,
        "rows_per_request": rows,
        "max_rows": max_rows,
        "step_ms_by_rows": measured,
        # The same rows spread over every grid of the model's cycle: one DiT call per grid, as when
        # requests at different steps share a step.
        "grid_cycle": executor.grid_cycle,
        "step_ms_by_rows_over_grids": over_grids,
        # What the step engine's scheduler planned with at the end: the warm-up, updated by its steps.
        "step_ms_by_rows_after_runs": {
            r: round(1000 * s, 1) for r, s in sorted(step_times.measured(bucket).items())
        },
        "decode_ms": 1000 * decode_s,
        "profiled_capacity_per_min": 60 * profiled_capacity,
        "capacity_per_min": 60 * capacity,
        "step_engine_capacity_per_min": None if engine_capacity is None else 60 * engine_capacity,
        "batch_invariance": invariance,
        "unloaded_latency_s": unloaded,
        "runs": results,
    }
    report["targets"] = _targets(report)
    print(f"step time by batch rows after the runs (ms): {report['step_ms_by_rows_after_runs']}")
    print(json.dumps(report["targets"], indent=2))
    return report


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _row(s: dict) -> str:
    i, b = s["interactive"], s["batch"]
    steps = ", ".join(_fmt(x) for x in s["two_row_step_ms"])
    return (
        f"{s['scenario']:>11} {s['server']:>16}: {s['throughput_per_min']:5.1f}/min "
        f"(work {s['work_rate_videos_per_min']:5.1f}/min) | interactive n={i['arrived']} "
        f"p50 {_fmt(i['p50_s'])} p95 {_fmt(i['p95_s'])} s (x unloaded p50 {_fmt(i['p50_over_unloaded'])} "
        f"p95 {_fmt(i['p95_over_unloaded'])}) SLO {_fmt(i['slo_attainment'])} preview p50 "
        f"{_fmt(i['first_preview_p50_s'])} | batch n={b['arrived']} p50 {_fmt(b['p50_s'])} p95 {_fmt(b['p95_s'])} "
        f"done {b['finished']} | refused {i['refused'] + b['refused']} | 2-row step ms by round {steps} "
        f"| rows/step {s['mean_step_rows']} calls/step {s['mean_step_calls']} busy {s['step_busy_share']} "
        f"| arrival lag p99 {_fmt(s['arrival_lag_p99_ms'])} ms"
    )


def _targets(report: dict) -> dict:
    top = max(r["load"] for r in report["runs"] if r["scenario"].startswith("mixed"))
    overload = {
        r["server"]: r for r in report["runs"] if r["load"] == top and r["scenario"].startswith("mixed")
    }
    saturated = {r["server"]: r for r in report["runs"] if r["scenario"] == "saturated"}
    target = report["config"]["throughput_target"]
    return {
        "overload": top,
        "slo_attainment_at_overload (target >= 0.95 for step-engine)": {
            name: r["interactive"]["slo_attainment"] for name, r in overload.items()
        },
        "interactive_p95_over_unloaded_when_batch_saturates (target <= 1.5 for step-engine)": {
            name: r["interactive"]["p95_over_unloaded"] for name, r in saturated.items()
        },
        "throughput_at_saturation_per_min": {name: r["throughput_per_min"] for name, r in saturated.items()},
        f"throughput_ratio_step_engine_over_fcfs (target >= {target:g})": _ratio(
            saturated["step-engine"]["throughput_per_min"], saturated["fcfs"]["throughput_per_min"]
        ),
        "work_rate_at_saturation_videos_per_min": {
            name: r["work_rate_videos_per_min"] for name, r in saturated.items()
        },
        "work_rate_ratio_step_engine_over_fcfs": _ratio(
            saturated["step-engine"]["work_rate_videos_per_min"],
            saturated["fcfs"]["work_rate_videos_per_min"],
        ),
        "batch_invariance": {
            k: report["batch_invariance"][k] for k in ("latents_max_abs_diff", "frames_max_abs_diff")
        },
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _mean(values: list[float] | None) -> float | None:
    return float(np.mean(values)) if values else None


def _device_name(report: dict) -> str:
    return report.get("device", {}).get("name", "unknown device")


def results_table(report: dict) -> str:
    """The runs as a Markdown table (what REPORT.md quotes)."""
    lines = [
        f"On {_device_name(report)}.",
        "",
        "| scenario | server | videos/min finished | work rate (videos/min) | interactive p50 / p95 (x unloaded) "
        "| interactive SLO | interactive first preview p50 (s) | batch p50 / p95 (s) | refused "
        "| rows per step | DiT calls per step | model busy | arrival lag p99 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        i, b = r["interactive"], r["batch"]
        lines.append(
            f"| {r['scenario']} | {r['server']} | {r['throughput_per_min']:.1f} | {r['work_rate_videos_per_min']:.1f} "
            f"| {_fmt(i['p50_over_unloaded'])} / {_fmt(i['p95_over_unloaded'])} (n={i['arrived']}) "
            f"| {_fmt(i['slo_attainment'])} | {_fmt(i['first_preview_p50_s'])} "
            f"| {_fmt(b['p50_s'])} / {_fmt(b['p95_s'])} (n={b['arrived']}) | {i['refused'] + b['refused']} "
            f"| {_fmt(_mean(r.get('mean_step_rows')))} | {_fmt(_mean(r.get('mean_step_calls')))} "
            f"| {_fmt(_mean(r.get('step_busy_share')))} "
            f"| {_fmt(r.get('arrival_lag_p99_ms'))} |"
        )
    return "\n".join(lines) + "\n"


SERVER_STYLE = {
    "fcfs": ("tab:gray", "s"),
    "request-batching": ("tab:orange", "^"),
    "step-engine": ("tab:blue", "o"),
}


def write_results(report: dict, out: Path) -> None:
    """results.json plus two plots: the mixed runs by load, and the saturated run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "results.md").write_text(results_table(report))
    mixed = [r for r in report["runs"] if r["scenario"].startswith("mixed")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [
        (axes[0, 0], "interactive latency p50 (dashed) and p95 (solid), x unloaded", "latency"),
        (axes[0, 1], "SLO attainment: interactive finished within 3x unloaded", "slo"),
        (axes[1, 0], "throughput (videos/min)", "throughput"),
        (axes[1, 1], "interactive time to first preview p50 (s)", "preview"),
    ]
    for name, (color, marker) in SERVER_STYLE.items():
        runs = sorted((r for r in mixed if r["server"] == name), key=lambda r: r["load"])
        loads = [r["load"] for r in runs]

        def series(key, runs=runs):
            return [np.nan if r["interactive"][key] is None else r["interactive"][key] for r in runs]

        ax = panels[0][0]
        ax.plot(loads, series("p95_over_unloaded"), color=color, marker=marker, label=name)
        ax.plot(loads, series("p50_over_unloaded"), color=color, marker=marker, linestyle="--")
        panels[1][0].plot(loads, series("slo_attainment"), color=color, marker=marker, label=name)
        panels[2][0].plot(
            loads, [r["throughput_per_min"] for r in runs], color=color, marker=marker, label=name
        )
        panels[3][0].plot(loads, series("first_preview_p50_s"), color=color, marker=marker, label=name)
    panels[0][0].axhline(3.0, color="red", linewidth=0.8, linestyle=":")
    panels[0][0].set_yscale("log")
    panels[1][0].axhline(0.95, color="red", linewidth=0.8, linestyle=":")
    panels[2][0].plot(
        sorted({r["load"] for r in mixed}),
        [r["offered_per_min"] for r in sorted(mixed, key=lambda r: r["load"]) if r["server"] == "fcfs"],
        color="black", linewidth=0.8, linestyle=":", label="offered",
    )  # fmt: skip
    for ax, title, _ in panels:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("offered load (x capacity)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    share = round(100 * report["config"]["interactive_share"])
    fig.suptitle(
        f"{report['model']} on {_device_name(report)}: {report['num_steps']} steps, Poisson arrivals, "
        f"{share}% interactive"
    )
    fig.tight_layout()
    fig.savefig(out / "mixed.png", dpi=110)
    plt.close(fig)

    saturated = {r["server"]: r for r in report["runs"] if r["scenario"] == "saturated"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = list(SERVER_STYLE)
    colors = [SERVER_STYLE[n][0] for n in names]
    p50 = [saturated[n]["interactive"]["p50_over_unloaded"] or np.nan for n in names]
    p95 = [saturated[n]["interactive"]["p95_over_unloaded"] or np.nan for n in names]
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, p50, 0.4, color=colors, alpha=0.5, label="p50")
    axes[0].bar(x + 0.2, p95, 0.4, color=colors, label="p95")
    axes[0].axhline(1.5, color="red", linewidth=0.8, linestyle=":", label="target 1.5x")
    axes[0].set_yscale("log")
    axes[0].set_title("interactive latency / unloaded latency", fontsize=10)
    axes[1].bar(x, [saturated[n]["throughput_per_min"] for n in names], color=colors)
    axes[1].set_title("throughput while batch work saturates (videos/min)", fontsize=10)
    for ax in axes:
        ax.set_xticks(x, names)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    batch_load = saturated["fcfs"]["load"] - report["config"]["saturated_interactive_load"]
    fig.suptitle(
        f"{_device_name(report)}: batch arrivals at {batch_load:.2f}x fcfs's capacity, light interactive stream"
    )
    fig.tight_layout()
    fig.savefig(out / "saturated.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", help="write results.json, results.md and the plots to this directory")
    parser.add_argument("--weights", help="weights directory (default: the shipped weights)")
    parser.add_argument(
        "--gpu", action="store_true", help="the GPU preset (GPU_PRESET): about two minutes on an H100/H200"
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda with --gpu, else cpu)")
    parser.add_argument("--window", type=float, help="seconds of arrivals per mixed run, over all rounds")
    parser.add_argument("--saturated-window", type=float, help="seconds of arrivals of the saturated run")
    parser.add_argument("--capacity-seconds", type=float, help="closed-loop capacity measurement, per server")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per scenario")
    parser.add_argument("--max-rows", type=int, help="batch rows per step, at most")
    parser.add_argument("--steps", type=int, help="denoising steps per request; 0 = the model's default")
    parser.add_argument("--prompts", help="read the encoded prompts from this file instead of running MiniLM")
    parser.add_argument(
        "--scheduler", help="the step engine's SchedulerConfig overrides, name=value[,name=value]"
    )
    parser.add_argument(
        "--save-prompts", metavar="FILE", help="encode the prompts with MiniLM, save them to FILE and stop"
    )
    args = parser.parse_args()
    parse_variant(args.scheduler or "")  # a bad override stops here, before any measuring
    if args.save_prompts:
        Prompts.encode(seed=BenchConfig.seed).save(args.save_prompts)
        return 0
    overrides = {
        "window_s": args.window,
        "saturated_window_s": args.saturated_window,
        "capacity_seconds": args.capacity_seconds,
        "rounds": args.rounds,
        "max_rows": args.max_rows,
        "num_steps": args.steps,
        "scheduler": args.scheduler,
    }
    config = replace(
        GPU_PRESET if args.gpu else BenchConfig(), **{k: v for k, v in overrides.items() if v is not None}
    )
    device = args.device or ("cuda" if args.gpu else "cpu")
    run_bench(config, args.report, DenoiserSettings(weights_dir=args.weights, device=device), args.prompts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
