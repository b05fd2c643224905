"""A clock the tests move by hand, and an executor whose model predicts zero velocity.

With zero velocity a flow-matching Euler step leaves the latents as they are, so the executor needs
no model; what it does keep is the time a step takes (a fixed cost plus a cost per row), which it
adds to the fake clock. Scheduling decisions that depend on time are therefore deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable

import numpy as np

from services.denoiser.engine.plan import StepPlan, StepResult
from services.denoiser.engine.request import EngineRequest, Priority, SamplerState, ShapeBucket

BUCKET = ShapeBucket(num_frames=4, height=16, width=16, text_tokens=3)
OTHER_BUCKET = ShapeBucket(num_frames=8, height=16, width=16, text_tokens=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ZeroVelocityExecutor:
    """With `grid_of_step`, rows whose steps fall on different token grids run in separate calls,
    each paying the fixed cost, as the model executor runs a model that alternates grids."""

    def __init__(
        self,
        clock: FakeClock,
        fixed_seconds: float = 0.1,
        seconds_per_row: float = 0.05,
        grid_of_step: Callable[[int], Hashable] | None = None,
    ) -> None:
        self.clock = clock
        self.fixed_seconds = fixed_seconds
        self.seconds_per_row = seconds_per_row
        self.grid_of_step = grid_of_step
        self.plans: list[StepPlan] = []

    def seconds(self, rows: int) -> float:
        return self.fixed_seconds + self.seconds_per_row * rows

    def run(self, plan: StepPlan) -> StepResult:
        self.plans.append(plan)
        calls: Counter = Counter()
        for item in plan.items:
            calls[None if self.grid_of_step is None else self.grid_of_step(item.step_index)] += item.rows
        seconds = sum(self.seconds(rows) for rows in calls.values())
        self.clock.advance(seconds)
        b = plan.bucket
        result = StepResult(latents={}, duration_seconds=seconds, call_rows=list(calls.values()))
        for item in plan.items:
            latents = item.sampler.latents
            if latents is None:
                latents = np.random.default_rng(item.sampler.seed).standard_normal((4, b.num_frames, 2, 2))
            result.latents[item.request_id] = latents  # x + dt * 0
            if item.preview:
                result.previews[item.request_id] = np.zeros((b.num_frames, 4, 4, 3), np.uint8)
            if item.final and plan.decode_finals:
                result.frames[item.request_id] = self.decode_final(item.sampler, b)
        return result

    def decode_final(self, sampler: SamplerState, bucket: ShapeBucket = BUCKET) -> np.ndarray:
        return np.zeros((bucket.num_frames, bucket.height, bucket.width, 3), np.uint8)

    def restart(self, request: EngineRequest):
        return request.sampler.latents  # zero velocity keeps latents as they are, through a restart too

    def profile(self, bucket: ShapeBucket, rows: int) -> float:
        return self.seconds(rows)

    def profile_decode(self, bucket: ShapeBucket) -> float:
        return 0.0  # this model's frames cost nothing to decode

    def profile_restart(self, bucket: ShapeBucket) -> float:
        return 0.0  # nor to take through an autoencoder


def make_request(
    request_id: str,
    *,
    steps: int = 4,
    guidance: float = 1.0,
    priority: Priority = Priority.INTERACTIVE,
    tenant: str = "t",
    bucket: ShapeBucket = BUCKET,
    preview_every: int = 0,
    deadline: float | None = None,
    seed: int = 0,
) -> EngineRequest:
    return EngineRequest(
        request_id=request_id,
        bucket=bucket,
        num_steps=steps,
        guidance_scale=guidance,
        sampler=SamplerState(seed=seed, text=np.zeros((3, 8), np.float32)),
        priority=priority,
        tenant=tenant,
        preview_every=preview_every,
        deadline=deadline,
    )


def step(scheduler, executor):
    """One turn of the engine loop, synchronously: (plan, events)."""
    plan = scheduler.schedule()
    result = executor.run(plan) if plan.runs_model else StepResult.make_empty()
    return plan, scheduler.update(plan, result)


def ids(plan: StepPlan) -> list[str]:
    return [item.request_id for item in plan.items]
