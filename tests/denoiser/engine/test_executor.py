"""The executor on the tiny DiT: one call per step, guidance in the same call, batch-independent results."""

import dataclasses

import numpy as np
import pytest
import torch

from services.denoiser.engine.engine import DenoiseEngine
from services.denoiser.engine.executor import ModelExecutor
from services.denoiser.engine.plan import EventKind, StepItem, StepPlan
from services.denoiser.engine.request import EngineRequest, Priority, SamplerState
from services.denoiser.engine.scheduler import SchedulerConfig, StepScheduler
from services.denoiser.engine.step_times import StepTimes
from tests.denoiser.engine.helpers import prompt, tiny_executor, tiny_pipeline


@pytest.fixture(scope="module")
def executor():
    return tiny_executor()


def request(executor, request_id, *, seed, steps=4, guidance=3.0, text_len=7, priority=Priority.BATCH):
    text = prompt(seed, text_len)
    return EngineRequest(
        request_id=request_id,
        bucket=executor.bucket(16, 64, 64, text_len),
        num_steps=steps,
        guidance_scale=guidance,
        sampler=SamplerState(seed=seed, text=text),
        priority=priority,
        preview_every=2,
    )


class UnmeasuredStepTimes(StepTimes):
    """Keeps its prior (an accelerator's: rows nearly free) and counts decodes as free, so batch steps
    fill up: the test decides who shares a step, not the timing of a shared machine."""

    def observe(self, bucket, rows, seconds):
        pass

    def observe_decode(self, bucket, seconds):
        pass


def serve(executor, arrivals: dict[int, list[EngineRequest]]):
    """Runs the real scheduler and executor; arrivals[k] join before step k. Returns events by request."""
    scheduler = StepScheduler(SchedulerConfig(max_rows=16), UnmeasuredStepTimes())
    events, plans, k = {}, [], 0
    while k in arrivals or scheduler.num_live or any(j > k for j in arrivals):
        for r in arrivals.get(k, []):
            scheduler.add(r)
        plan = scheduler.schedule()
        if plan.runs_model:
            plans.append(plan)
            for event in scheduler.update(plan, executor.run(plan)):
                events.setdefault(event.request_id, []).append(event)
        k += 1
    return events, plans


def result_of(events):
    (result,) = [e for e in events if e.kind == EventKind.RESULT]
    return result.frames


def test_a_request_gives_the_same_frames_alone_and_in_a_changing_batch(executor):
    alone, _ = serve(executor, {0: [request(executor, "a", seed=1)]})
    batched, plans = serve(
        executor,
        {
            0: [request(executor, "early", seed=2, steps=3, guidance=1.0, text_len=20)],
            1: [request(executor, "a", seed=1)],
            2: [request(executor, "late", seed=3, steps=6, guidance=7.5, text_len=3)],
        },
    )
    assert max(p.num_rows for p in plans) == 5  # a ran beside both, at different steps
    frames_alone, frames_batched = result_of(alone["a"]), result_of(batched["a"])
    assert frames_alone.shape == (16, 64, 64, 3) and frames_alone.dtype == np.uint8
    assert np.array_equal(frames_alone, frames_batched)  # the stated tolerance is zero
    assert sum(p.runs_model for p in plans) > 0
    previews = [e.frames for e in batched["a"] if e.kind == EventKind.PREVIEW]
    assert [p.shape for p in previews] == [(16, 16, 16, 3)]


def test_latents_are_bit_identical_alone_and_batched(executor):
    a = request(executor, "a", seed=5, steps=3)
    b = request(executor, "b", seed=6, steps=3, text_len=30)
    serve(executor, {0: [a]})
    alone = a.sampler.latents
    a2 = request(executor, "a", seed=5, steps=3)
    serve(executor, {0: [b, a2]})
    assert torch.equal(alone, a2.sampler.latents)


def test_the_same_seed_is_bit_identical_and_another_seed_is_not(executor):
    first = result_of(serve(executor, {0: [request(executor, "a", seed=9)]})[0]["a"])
    again = result_of(serve(executor, {0: [request(executor, "a", seed=9)]})[0]["a"])
    other = result_of(serve(executor, {0: [request(executor, "a", seed=10)]})[0]["a"])
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_guidance_rides_in_the_same_call_and_matches_the_models_own_cfg(executor):
    item_request = request(executor, "g", seed=4, guidance=4.0, text_len=5)
    plan = StepPlan(
        step_id=0, bucket=item_request.bucket, num_rows=2, preempted_ids=[], finished_ids=[],
        items=[StepItem("g", 0, 4, 4.0, 2, item_request.sampler, preview=False, final=False)],
    )  # fmt: skip
    calls = []
    hook = executor.dit.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        latents = executor.run(plan).latents["g"]
    finally:
        hook.remove()
    assert calls == [2]
    with torch.inference_mode():
        noise = torch.randn((4, 16, 8, 8), generator=torch.Generator().manual_seed(4))
        text = torch.zeros(1, 32, executor.card.text_dim)
        text[0, :5] = torch.as_tensor(item_request.sampler.text)
        mask = torch.zeros(1, 32, dtype=torch.bool)
        mask[0, :5] = True
        sampler = executor.sampler(4)
        v = executor.dit.forward_with_cfg(noise[None], sampler.timesteps(0)[None], text, mask, 4.0)
        expected = sampler.step(v, 0, noise[None]).prev_sample[0]
    assert torch.allclose(latents, expected, atol=1e-5)


def test_the_memory_budget_sets_the_row_limit():
    bucket = tiny_executor().bucket(16, 64, 64, 7)
    small, large = tiny_executor(memory_budget_bytes=1 << 20), tiny_executor(memory_budget_bytes=1 << 30)
    assert 2 <= small.row_limit(bucket) < large.row_limit(bucket)
    assert small.row_limit(executor_bucket_with_reference(small)) <= small.row_limit(bucket)


def executor_bucket_with_reference(executor):
    return executor.bucket(16, 64, 64, 7, reference=True)


def test_decodes_are_timed_apart_from_the_model_call(executor):
    r = request(executor, "a", seed=1, steps=2)
    item = StepItem("a", 1, 2, 3.0, 2, r.sampler, preview=False, final=True)
    plan = StepPlan(step_id=0, bucket=r.bucket, items=[item], num_rows=2, preempted_ids=[], finished_ids=[])
    result = executor.run(plan)
    assert result.decodes == 1 and 0 < result.decode_seconds < result.duration_seconds


def test_the_engine_makes_the_frames_the_models_own_pipeline_makes():
    pipeline = tiny_pipeline()
    executor = ModelExecutor.from_pipeline(tiny_pipeline())
    text = prompt(3, 9)
    expected = pipeline.generate(text, seed=3, num_steps=4, guidance_scale=3.0).frames
    events, _ = serve(executor, {0: [request(executor, "a", seed=3, text_len=9)]})
    difference = np.abs(result_of(events["a"]).astype(int) - expected.astype(int))
    assert difference.max() <= 1  # float rounding (padded prompt, one row at a time) at most one level


def extend_beside_plain(pipeline, executor, steps: int = 4, start: int = 0):
    """An extension of three known frames (seed 3, starting at step `start`) served beside a plain
    request: (the known frames, the engine's frames of the extension, the pipeline's)."""
    first = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    extend = request(executor, "extend", seed=3, steps=steps)
    extend.sampler.known_latents, extend.sampler.known_pixels = pipeline.encode(first)[0], first
    extend.start_step = extend.steps_done = start
    events, _ = serve(executor, {0: [extend, request(executor, "plain", seed=4, steps=steps)]})
    expected = pipeline.generate(
        prompt(3), seed=3, num_steps=steps, guidance_scale=3.0, first_frames=first
    ).frames
    return first, result_of(events["extend"]), expected


def test_with_known_first_frames_the_engine_makes_the_pipelines_frames_beside_a_plain_request():
    pipeline = tiny_pipeline()
    first, made, expected = extend_beside_plain(pipeline, ModelExecutor.from_pipeline(pipeline))
    assert np.array_equal(made[:3], first)
    assert np.abs(made.astype(int) - expected.astype(int)).max() <= 1


async def test_frames_decoded_beside_the_step_loop_equal_frames_decoded_in_the_step(executor):
    inline_events, _ = serve(executor, {0: [request(executor, "a", seed=5)]})
    config = SchedulerConfig(max_rows=16, pipelined_decodes=True)
    engine = DenoiseEngine(StepScheduler(config, UnmeasuredStepTimes()), executor)
    engine.start()
    try:
        events = [event async for event in engine.submit(request(executor, "a", seed=5))]
    finally:
        await engine.close()
    assert events[-1].kind == EventKind.RESULT
    np.testing.assert_array_equal(events[-1].frames, result_of(inline_events["a"]))


@pytest.mark.parametrize(
    "alternation",
    [{"alternate_token_grid": True}, {"alternate_token_grid": True, "alternate_space_grid": True}],
    ids=["time", "time-and-space"],
)
def test_with_alternating_token_grids_the_engine_makes_the_pipelines_frames_in_batches_of_both_parities(
    alternation,
):
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, **alternation)
    executor = ModelExecutor.from_pipeline(pipeline)
    # "b" joins a step after "a", so every step after the first holds an odd and an even step index.
    events, plans = serve(
        executor, {0: [request(executor, "a", seed=3)], 1: [request(executor, "b", seed=4)]}
    )
    mixed = next(plan for plan in plans if {item.step_index % 2 for item in plan.items} == {0, 1})
    assert executor.run(mixed).call_rows == [2, 2]  # one DiT call per grid, which the scheduler counts
    for name, seed in (("a", 3), ("b", 4)):
        expected = pipeline.generate(prompt(seed), seed=seed, num_steps=4, guidance_scale=3.0).frames
        assert np.abs(result_of(events[name]).astype(int) - expected.astype(int)).max() <= 1
    one_grid = tiny_pipeline().generate(prompt(3), seed=3, num_steps=4, guidance_scale=3.0).frames
    assert not np.array_equal(one_grid, result_of(events["a"]))  # the setting changes what is made


def test_with_a_restart_the_engine_makes_the_pipelines_frames_and_a_remix_does_not_restart():
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, restart_steps=2)
    executor = ModelExecutor.from_pipeline(pipeline)
    first = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    extend = request(executor, "extend", seed=3, steps=6)
    extend.sampler.known_latents, extend.sampler.known_pixels = pipeline.encode(first)[0], first
    events, _ = serve(executor, {0: [extend, request(executor, "plain", seed=4, steps=6)]})
    made = {
        "plain": pipeline.generate(prompt(4), seed=4, num_steps=6, guidance_scale=3.0).frames,
        "extend": pipeline.generate(
            prompt(3), seed=3, num_steps=6, guidance_scale=3.0, first_frames=first
        ).frames,
    }
    for name, expected in made.items():
        difference = np.abs(result_of(events[name]).astype(int) - expected.astype(int))
        # Float rounding (padded prompt, one row at a time), grown a little through the autoencoder's
        # round trip and the steps after it: a level or two in a few pixels.
        assert difference.max() <= 2 and (difference > 0).mean() < 0.01, name
    assert np.array_equal(result_of(events["extend"])[:3], first)
    unrestarted = tiny_pipeline().generate(prompt(4), seed=4, num_steps=6, guidance_scale=3.0).frames
    assert not np.array_equal(unrestarted, made["plain"])  # the setting changes what is made
    assert executor.sampler(6).restart_index == 3 and executor.sampler(6, remix=True).restart_index is None


async def test_with_pipelined_decodes_the_restart_runs_beside_the_steps_and_makes_the_same_frames():
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, restart_steps=2)
    executor = ModelExecutor.from_pipeline(pipeline)
    config = SchedulerConfig(max_rows=16, pipelined_decodes=True)
    scheduler = StepScheduler(config, UnmeasuredStepTimes(), restart_index_of=executor.restart_index)
    engine = DenoiseEngine(scheduler, executor)
    restarted = []
    restart = executor.restart
    executor.restart = lambda r: restarted.append(r.request_id) or restart(r)
    engine.start()
    try:
        # A batch request (the helper's default): an interactive one's round trip stays inside its step.
        events = [e async for e in engine.submit(request(executor, "plain", seed=4, steps=6))]
    finally:
        await engine.close()
    expected = pipeline.generate(prompt(4), seed=4, num_steps=6, guidance_scale=3.0).frames
    difference = np.abs(result_of(events).astype(int) - expected.astype(int))
    assert restarted == ["plain"]  # in the decode stage, not inside a step
    assert difference.max() <= 2 and (difference > 0).mean() < 0.01  # as made inside the step (above)


def test_a_restart_is_timed_apart_from_the_model_call():
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, restart_steps=2)
    executor = ModelExecutor.from_pipeline(pipeline)
    r = request(executor, "a", seed=1, steps=6)
    timings = []
    for step_index in (2, 3):  # 3 ends the main schedule of 4 steps
        item = StepItem("a", step_index, 6, 3.0, 2, r.sampler, preview=False, final=False)
        plan = StepPlan(
            step_id=0, bucket=r.bucket, items=[item], num_rows=2, preempted_ids=[], finished_ids=[]
        )
        result = executor.run(plan)
        timings.append((result.restarts, result.restart_seconds, result.duration_seconds))
    assert timings[0][:2] == (0, 0) and timings[1][0] == 1 and 0 < timings[1][1] < timings[1][2]
    # What the scheduler plans with: where the request restarts, and what a restart costs.
    assert executor.restart_index(r) == 3 and executor.profile_restart(r.bucket) > 0
    assert tiny_executor().restart_index(r) is None and tiny_executor().profile_restart(r.bucket) == 0


def test_known_frames_starting_part_way_the_engine_makes_the_pipelines_frames():
    """`known_frames_strength` below 1: the new frames start from the last known frame, noised to the
    start step's time, in the engine as in the pipeline (the servicer sets the start step)."""
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, restart_steps=2, known_frames_strength=0.7)
    executor = ModelExecutor.from_pipeline(pipeline)
    start = executor.known_frames_start(6, None, 3)
    assert start == 2
    first, made, expected = extend_beside_plain(pipeline, executor, steps=6, start=start)
    difference = np.abs(made.astype(int) - expected.astype(int))
    assert difference.max() <= 2 and (difference > 0).mean() < 0.01
    assert np.array_equal(made[:3], first)
    pipeline.config = dataclasses.replace(pipeline.config, known_frames_strength=1.0)
    from_noise = pipeline.generate(
        prompt(3), seed=3, num_steps=6, guidance_scale=3.0, first_frames=first
    ).frames
    assert not np.array_equal(from_noise, expected)  # the setting changes what is made


def test_with_frame_init_the_engine_makes_the_pipelines_frames():
    """FrameInit's start noise (`frame_init_cutoff`) is drawn alike in the engine and the pipeline."""
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, frame_init_cutoff=0.5, frame_init_noise_share=0.5)
    first, made, expected = extend_beside_plain(pipeline, ModelExecutor.from_pipeline(pipeline))
    assert np.array_equal(made[:3], first)
    assert np.abs(made.astype(int) - expected.astype(int)).max() <= 1
    pipeline.config = dataclasses.replace(pipeline.config, frame_init_cutoff=0.0)
    plain = pipeline.generate(prompt(3), seed=3, num_steps=4, guidance_scale=3.0, first_frames=first).frames
    assert not np.array_equal(plain, expected)  # the setting changes what is made


def test_guided_towards_the_path_the_engine_makes_the_pipelines_frames():
    """`path_guidance`: the subject path in the conditional rows only, in the engine as in the pipeline,
    beside a request without a path."""
    pipeline = tiny_pipeline()
    pipeline.config = dataclasses.replace(pipeline.config, path_guidance=True)
    executor = ModelExecutor.from_pipeline(pipeline)
    path = np.stack([np.linspace(0.2, 0.8, 16), np.full(16, 0.5)], axis=1).astype(np.float32)  # (F, 2)
    along = request(executor, "along", seed=3)
    along.sampler.path = path
    events, _ = serve(executor, {0: [along, request(executor, "plain", seed=4)]})
    expected = pipeline.generate(prompt(3), seed=3, num_steps=4, guidance_scale=3.0, subject_path=path).frames
    assert np.abs(result_of(events["along"]).astype(int) - expected.astype(int)).max() <= 1
    pipeline.config = dataclasses.replace(pipeline.config, path_guidance=False)
    in_both_halves = pipeline.generate(
        prompt(3), seed=3, num_steps=4, guidance_scale=3.0, subject_path=path
    ).frames
    assert not np.array_equal(in_both_halves, expected)  # the setting changes what is made
