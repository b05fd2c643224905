"""The engine loop on a real event loop: streams of events, cancellation by leaving a stream, failures."""

import asyncio
import contextlib

import pytest

from services.denoiser.engine.engine import DenoiseEngine
from services.denoiser.engine.plan import EventKind
from services.denoiser.engine.request import Priority
from services.denoiser.engine.scheduler import SchedulerConfig, StepScheduler
from services.denoiser.engine.step_times import StepTimes
from tests.denoiser.engine.fakes import BUCKET, FakeClock, ZeroVelocityExecutor, ids, make_request

BATCH = Priority.BATCH


class GatedExecutor(ZeroVelocityExecutor):
    """Waits for a permit before each step, so the test decides when steps happen."""

    def __init__(self, clock, fail_on: str | None = None):
        super().__init__(clock)
        self.permits = __import__("threading").Semaphore(0)
        self.fail_on = fail_on

    def run(self, plan):
        self.permits.acquire()
        if self.fail_on in [item.request_id for item in plan.items]:
            raise RuntimeError("model blew up")
        return super().run(plan)


@pytest.fixture
async def engine():
    clock = FakeClock()
    executor = GatedExecutor(clock, fail_on="doomed")
    engine = DenoiseEngine(StepScheduler(SchedulerConfig(), StepTimes(), clock=clock), executor)
    engine.start()
    yield engine, executor
    for _ in range(100):
        executor.permits.release()
    await engine.close()


async def collect(stream):
    return [event async for event in stream]


@contextlib.asynccontextmanager
async def pipelined_engine(executor, clock, restart_index_of=None, **config):
    """A started engine whose final frames are decoded beside the step loop; closed on the way out."""
    scheduler_config = SchedulerConfig(pipelined_decodes=True, **config)
    scheduler = StepScheduler(scheduler_config, StepTimes(), restart_index_of=restart_index_of, clock=clock)
    engine = DenoiseEngine(scheduler, executor)
    engine.start()
    try:
        yield engine
    finally:
        await engine.close()


async def test_streams_deliver_progress_previews_and_the_result(engine):
    engine, executor = engine
    streams = [engine.submit(make_request(name, steps=3, preview_every=2, priority=BATCH)) for name in "ab"]
    for _ in range(3):
        executor.permits.release()
    a, b = await asyncio.wait_for(asyncio.gather(*map(collect, streams)), 5)
    assert [e.kind for e in a] == [e.kind for e in b] == [
        EventKind.PROGRESS, EventKind.PROGRESS, EventKind.PREVIEW, EventKind.PROGRESS, EventKind.RESULT,
    ]  # fmt: skip
    assert [len(p.items) for p in executor.plans] == [2, 2, 2]


async def test_leaving_a_stream_cancels_the_request_at_the_next_step(engine):
    engine, executor = engine
    stream = engine.submit(make_request("quitter", steps=50, priority=BATCH))
    other = engine.submit(make_request("stayer", steps=3, priority=BATCH))
    executor.permits.release()
    events = aiter(stream)
    assert (await anext(events)).kind == EventKind.PROGRESS
    await events.aclose()  # what a cancelled RPC does to the servicer's generator
    for _ in range(3):
        executor.permits.release()
    events = await asyncio.wait_for(collect(other), 5)
    assert events[-1].kind == EventKind.RESULT
    # The second step was planned before the caller left; the third is the next boundary.
    assert [[i.request_id for i in p.items] for p in executor.plans] == [
        ["quitter", "stayer"], ["quitter", "stayer"], ["stayer"],
    ]  # fmt: skip
    assert engine.scheduler.num_live == 0


async def test_an_executor_failure_ends_its_requests_with_internal_and_the_engine_goes_on(engine):
    engine, executor = engine
    doomed = engine.submit(make_request("doomed", steps=2))
    executor.permits.release()
    events = await asyncio.wait_for(collect(doomed), 5)
    assert events[-1].kind == EventKind.FAILED and events[-1].error.reason == "INTERNAL_ERROR"
    fine = engine.submit(make_request("fine", steps=1))
    executor.permits.release()
    assert (await asyncio.wait_for(collect(fine), 5))[-1].kind == EventKind.RESULT


class DecodeFailingExecutor(ZeroVelocityExecutor):
    def decode_final(self, sampler, bucket=BUCKET):
        if sampler.seed == 13:
            raise RuntimeError("decoder blew up")
        return super().decode_final(sampler, bucket)


async def test_pipelined_decodes_end_each_stream_with_its_frames_or_its_decode_failure():
    clock = FakeClock()
    executor = DecodeFailingExecutor(clock)
    async with pipelined_engine(executor, clock) as engine:
        fine = engine.submit(make_request("fine", steps=2, priority=BATCH))
        doomed = engine.submit(make_request("doomed", steps=1, seed=13, priority=BATCH))
        fine_events, doomed_events = await asyncio.wait_for(asyncio.gather(collect(fine), collect(doomed)), 5)
    assert [e.kind for e in fine_events] == [EventKind.PROGRESS, EventKind.PROGRESS, EventKind.RESULT]
    assert fine_events[-1].frames.shape == (BUCKET.num_frames, BUCKET.height, BUCKET.width, 3)
    assert all(plan.decode_finals is False for plan in executor.plans)
    assert [e.kind for e in doomed_events] == [EventKind.PROGRESS, EventKind.FAILED]
    assert doomed_events[-1].error.reason == "INTERNAL_ERROR"
    assert engine.scheduler.num_live == 0


class RestartCountingExecutor(ZeroVelocityExecutor):
    """Counts the restarts the decode stage asks for; the one of seed 13 fails."""

    def __init__(self, clock):
        super().__init__(clock)
        self.restarts: list[str] = []

    def restart(self, request):
        self.restarts.append(request.request_id)
        if request.sampler.seed == 13:
            raise RuntimeError("autoencoder blew up")
        return super().restart(request)


async def test_pipelined_restarts_run_in_the_decode_stage_and_the_request_comes_back_for_its_last_steps():
    clock = FakeClock()
    executor = RestartCountingExecutor(clock)
    async with pipelined_engine(executor, clock, restart_index_of=lambda request: 1) as engine:
        fine = engine.submit(make_request("fine", steps=4, priority=BATCH))
        doomed = engine.submit(make_request("doomed", steps=4, seed=13, priority=BATCH))
        urgent = engine.submit(make_request("urgent", steps=4, seed=13))
        fine_events, doomed_events, urgent_events = await asyncio.wait_for(
            asyncio.gather(collect(fine), collect(doomed), collect(urgent)), 5
        )
    assert [e.kind for e in fine_events] == [EventKind.PROGRESS] * 4 + [EventKind.RESULT]
    assert sorted(executor.restarts) == ["doomed", "fine"]
    # An interactive request's round trip stays inside its own step, where it waits for nothing.
    assert [e.kind for e in urgent_events] == [EventKind.PROGRESS] * 4 + [EventKind.RESULT]
    items = [item for plan in executor.plans for item in plan.items]
    assert {(item.request_id, item.restart_inline) for item in items} == {
        ("fine", False),
        ("doomed", False),
        ("urgent", True),
    }
    # Its restart after its second step failed in the decode stage.
    assert [e.kind for e in doomed_events] == [EventKind.PROGRESS, EventKind.PROGRESS, EventKind.FAILED]
    assert doomed_events[-1].error.reason == "INTERNAL_ERROR"
    assert engine.scheduler.num_live == 0


def test_profile_measures_every_bucket_at_doubling_batch_sizes():
    clock = FakeClock()
    executor = ZeroVelocityExecutor(clock)
    scheduler = StepScheduler(SchedulerConfig(max_rows=6), StepTimes(), clock=clock)
    DenoiseEngine(scheduler, executor).profile([BUCKET])
    assert scheduler.step_times.measured(BUCKET) == {rows: executor.seconds(rows) for rows in (1, 2, 4, 6)}


class GatedDecodeExecutor(ZeroVelocityExecutor):
    """Each decode waits for a permit and records whose frames it started on and whose it made."""

    def __init__(self, clock):
        super().__init__(clock)
        self.decode_permits = __import__("threading").Semaphore(0)
        self.started: list[int] = []
        self.decoded: list[int] = []

    def decode_final(self, sampler, bucket=BUCKET):
        self.started.append(sampler.seed)
        self.decode_permits.acquire()
        self.decoded.append(sampler.seed)
        return super().decode_final(sampler, bucket)


async def test_an_interactive_request_is_decoded_before_batch_requests_already_waiting_for_the_decoder():
    clock = FakeClock()
    executor = GatedDecodeExecutor(clock)
    async with pipelined_engine(executor, clock) as engine:
        batch = [engine.submit(make_request(f"b{i}", steps=1, seed=i, priority=BATCH)) for i in range(3)]
        for _ in range(50):  # every batch request has finished its step: one decode started, two queued
            await asyncio.sleep(0.01)
            if len(engine._due_decodes) == 2:
                break
        assert len(engine._due_decodes) == 2
        urgent = engine.submit(make_request("i", steps=1, seed=9, priority=Priority.INTERACTIVE))
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(engine._due_decodes) == 3:
                break
        for _ in range(4):
            executor.decode_permits.release()
        await asyncio.wait_for(asyncio.gather(*map(collect, [*batch, urgent])), 5)
    assert executor.decoded[1] == 9  # right after the decode that was in progress when it finished
    assert sorted(executor.decoded) == [0, 1, 2, 9]


class GatedStepsRecordedDecodes(GatedExecutor):
    def __init__(self, clock):
        super().__init__(clock)
        self.decoded: list[int] = []

    def decode_final(self, sampler, bucket=BUCKET):
        self.decoded.append(sampler.seed)
        return super().decode_final(sampler, bucket)


@pytest.mark.parametrize("deferral, decoded_while_interactive_runs", [(5.0, []), (0.05, [1])])
async def test_a_batch_decode_waits_while_interactive_work_runs_for_the_deferral_at_most(
    deferral, decoded_while_interactive_runs
):
    clock = FakeClock()
    executor = GatedStepsRecordedDecodes(clock)
    async with pipelined_engine(executor, clock, batch_decode_deferral_s=deferral) as engine:
        batch = engine.submit(make_request("b", steps=1, seed=1, priority=BATCH))
        urgent = engine.submit(make_request("i", steps=3, seed=2, priority=Priority.INTERACTIVE))
        executor.permits.release()  # one step for both: the batch request is done, the interactive one is not
        await asyncio.sleep(0.3)
        assert executor.decoded == decoded_while_interactive_runs
        for _ in range(2):
            executor.permits.release()
        await asyncio.wait_for(asyncio.gather(collect(batch), collect(urgent)), 5)
    assert sorted(executor.decoded) == [1, 2]


class GatedStepsGatedDecodes(GatedExecutor, GatedDecodeExecutor):
    """Steps and decodes each wait for a permit."""


async def test_a_batch_decode_already_due_when_interactive_work_arrives_is_held_from_that_arrival():
    """Its deferral counts from the arrival, not from when it became due: otherwise a decode that
    queued behind another just before would start part-way through the interactive request."""
    clock = FakeClock()
    executor = GatedStepsGatedDecodes(clock)
    async with pipelined_engine(executor, clock, batch_decode_deferral_s=0.3) as engine:
        batch = [engine.submit(make_request(f"b{i}", steps=1, seed=i, priority=BATCH)) for i in range(2)]
        executor.permits.release()  # one step finishes both: b0's decode starts (and waits), b1 queues
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(engine._due_decodes) == 1:
                break
        await asyncio.sleep(0.4)  # b1 has been due longer than the deferral
        urgent = engine.submit(make_request("i", steps=3, seed=9, priority=Priority.INTERACTIVE))
        executor.decode_permits.release()  # b0's decode ends while the interactive request is live
        await asyncio.sleep(0.1)
        started = list(executor.started)
        for _ in range(3):
            executor.permits.release()
        for _ in range(2):
            executor.decode_permits.release()
        await asyncio.wait_for(asyncio.gather(*map(collect, [*batch, urgent])), 5)
    assert started == [0]  # b1 was held back: 0.1 s of its 0.3 s since the arrival had passed
    assert sorted(executor.started) == [0, 1, 9]


@pytest.mark.parametrize("wait", [True, False])
async def test_batch_steps_wait_for_an_interactive_requests_decode_when_configured(wait):
    clock = FakeClock()
    executor = GatedDecodeExecutor(clock)
    async with pipelined_engine(executor, clock, batch_steps_wait_for_interactive_decodes=wait) as engine:
        urgent = engine.submit(make_request("i", steps=1, seed=9, priority=Priority.INTERACTIVE))
        for _ in range(50):  # its one step is done; its decode waits for a permit
            await asyncio.sleep(0.01)
            if executor.plans:
                break
        batch = engine.submit(make_request("b", steps=2, seed=1, priority=BATCH))
        await asyncio.sleep(0.1)
        batch_steps_meanwhile = sum(1 for plan in executor.plans if "b" in ids(plan))
        for _ in range(2):
            executor.decode_permits.release()
        await asyncio.wait_for(asyncio.gather(collect(urgent), collect(batch)), 5)
    assert batch_steps_meanwhile == (0 if wait else 2)
