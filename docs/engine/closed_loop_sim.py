"""A closed loop simulated on the tests' fake executor: how the step-time model and the token-grid
rule behave when a GPU-like machine (a call costs 8 ms plus 0.12 ms a row) stalls now and then.

    PYTHONPATH=. .venv/bin/python docs/engine/closed_loop_sim.py [OUTLIER_SHARE ...]

`callers` guided requests of 10 steps are live; each caller submits again 1-3 steps after its result.
A share of the steps takes 20 ms longer (a host hiccup). Printed per case: videos per simulated
minute, batch rows and DiT calls per step. "max floor" is the step-time model before the fit (every
size floored at the slowest smaller size measured), read from git; "fitted" is `StepTimes` now.
Simulated time, not a measurement of any machine: it shows the scheduler's dynamics, deterministically.
"""

from __future__ import annotations

import random
import subprocess
import sys
import types

from services.denoiser.engine.request import Priority
from services.denoiser.engine.scheduler import SchedulerConfig, StepScheduler
from services.denoiser.engine.step_times import StepTimes
from tests.denoiser.engine.fakes import BUCKET, FakeClock, ZeroVelocityExecutor, make_request

BEFORE = "2df2073"  # the commit whose StepTimes floors every size at the slowest smaller one


def max_floor_step_times() -> type:
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:services/denoiser/engine/step_times.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("step_times_before")
    exec(compile(source, "step_times_before", "exec"), module.__dict__)
    # Today's StepTimes with the earlier prediction: only the floor differs between the cases.
    return type("MaxFloorStepTimes", (StepTimes,), {"predict": module.StepTimes.predict})


def run(grid, times_cls, callers: int, outliers: float, steps: int = 10, n_steps: int = 3000) -> tuple:
    clock = FakeClock()
    executor = ZeroVelocityExecutor(clock, 0.008, 0.00012, grid_of_step=grid)
    times = times_cls()
    for rows in (1, 2, 4, 8, 16, 32, 64):  # the start-up profile
        times.observe(BUCKET, rows, executor.seconds(rows))
    scheduler = StepScheduler(SchedulerConfig(max_rows=64), times, clock=clock, grid_of_step=grid)
    rng = random.Random(0)
    submitted, pending, done, rows, calls = 0, [], 0, [], []

    def submit() -> None:
        nonlocal submitted
        request = make_request(f"r{submitted}", guidance=4.0, priority=Priority.BATCH, steps=steps)
        scheduler.add(request)
        submitted += 1

    for _ in range(callers):
        submit()
    start = clock.now
    for k in range(n_steps):
        for due in [d for d in pending if d <= k]:
            pending.remove(due)
            submit()
        plan = scheduler.schedule()
        if not plan.runs_model:
            break
        result = executor.run(plan)
        if rng.random() < outliers:
            clock.advance(0.02)
            result.duration_seconds += 0.02
        for event in scheduler.update(plan, result):
            if event.kind.value == "result":
                done += 1
                pending.append(k + rng.randint(1, 3))
        rows.append(plan.num_rows)
        calls.append(len(result.call_rows))
    minutes = (clock.now - start) / 60
    return done / minutes, sum(rows) / len(rows), sum(calls) / len(calls)


def main() -> None:
    shares = [float(x) for x in sys.argv[1:]] or [0.0, 0.01, 0.03]
    before = max_floor_step_times()
    cases = {
        "one grid, max floor": (None, before),
        "one grid, fitted": (None, StepTimes),
        "four grids, max floor": (lambda i: i % 4, before),
        "four grids, fitted": (lambda i: i % 4, StepTimes),
    }
    for share in shares:
        print(f"slow steps: {share:.0%}")
        for name, (grid, times_cls) in cases.items():
            for callers in (32, 64):
                videos, rows, calls = run(grid, times_cls, callers, share)
                print(
                    f"  {name:22s} {callers} callers: {videos:7.0f} videos/min, {rows:4.1f} rows and {calls:.2f} DiT calls per step"
                )


if __name__ == "__main__":
    main()
