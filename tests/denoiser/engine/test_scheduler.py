"""The step scheduler's policy, driven step by step with a zero-velocity executor and a fake clock."""

from itertools import pairwise

import grpc
import pytest

from services.common.errors import KinoError
from services.denoiser.engine.plan import EventKind
from services.denoiser.engine.request import Priority, RequestStatus
from services.denoiser.engine.scheduler import SchedulerConfig, StepScheduler
from services.denoiser.engine.step_times import StepTimes
from tests.denoiser.engine.fakes import (
    BUCKET,
    OTHER_BUCKET,
    FakeClock,
    ZeroVelocityExecutor,
    ids,
    make_request,
    step,
)

BATCH = Priority.BATCH


def setup(restart_index_of=None, **config):
    clock = FakeClock()
    executor = ZeroVelocityExecutor(clock)
    times = StepTimes()
    for bucket in (BUCKET, OTHER_BUCKET):
        for rows in range(1, 17):
            times.observe(bucket, rows, executor.seconds(rows))
    scheduler = StepScheduler(
        SchedulerConfig(**config), times, restart_index_of=restart_index_of, clock=clock
    )
    return scheduler, executor, clock


def kinds(events, request_id):
    return [e.kind for e in events if e.request_id == request_id]


def test_requests_join_and_leave_at_every_step():
    scheduler, executor, _ = setup()
    scheduler.add(make_request("a", steps=3, priority=BATCH))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["a"] and [i.step_index for i in plan.items] == [0]
    scheduler.add(make_request("b", steps=2, priority=BATCH))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["a", "b"] and [i.step_index for i in plan.items] == [1, 0]
    plan, events = step(scheduler, executor)
    assert [i.final for i in plan.items] == [True, True]
    assert kinds(events, "a") == kinds(events, "b") == [EventKind.PROGRESS, EventKind.RESULT]
    assert scheduler.num_live == 0
    assert not scheduler.schedule().runs_model


def test_each_step_reports_progress_previews_every_k_steps_and_the_result_last():
    scheduler, executor, _ = setup()
    scheduler.add(make_request("a", steps=5, preview_every=2))
    events = []
    for _ in range(5):
        events += step(scheduler, executor)[1]
    assert [(e.kind.value, e.step) for e in events] == [
        ("progress", 1), ("progress", 2), ("preview", 2), ("progress", 3),
        ("progress", 4), ("preview", 4), ("progress", 5), ("result", 5),
    ]  # fmt: skip
    assert events[-1].frames.shape == (BUCKET.num_frames, BUCKET.height, BUCKET.width, 3)


def test_guidance_doubles_the_rows_of_one_call():
    scheduler, executor, _ = setup()
    scheduler.add(make_request("guided", guidance=5.0, priority=BATCH))
    scheduler.add(make_request("plain", guidance=1.0, priority=BATCH))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["guided", "plain"] and plan.num_rows == 3
    assert len(executor.plans) == 1


def test_row_limit_caps_the_batch_and_a_freed_row_is_taken_at_the_next_step():
    scheduler, executor, _ = setup(max_rows=4)
    hardware(scheduler, fixed_seconds=0.1, seconds_per_row=0.001)  # batching pays all the way
    executor.seconds_per_row = 0.001
    scheduler.add(make_request("first", steps=1, priority=BATCH))
    for name in "bcde":
        scheduler.add(make_request(name, steps=3, priority=BATCH))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["first", "b", "c", "d"] and plan.num_rows == 4
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["b", "c", "d", "e"]


def test_a_row_limit_from_the_memory_budget_is_honoured_per_bucket():
    clock = FakeClock()
    scheduler = StepScheduler(SchedulerConfig(max_rows=16), row_limit=lambda bucket: 2, clock=clock)
    for name in "abc":
        scheduler.add(make_request(name, priority=BATCH))
    assert ids(scheduler.schedule()) == ["a", "b"]


def test_shapes_never_share_a_step_and_the_best_ranked_request_picks_the_bucket():
    scheduler, executor, _ = setup()
    scheduler.add(make_request("batch-small", priority=BATCH, steps=2))
    scheduler.add(make_request("interactive-long", bucket=OTHER_BUCKET, steps=2))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["interactive-long"] and plan.bucket == OTHER_BUCKET
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["interactive-long"]
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["batch-small"] and plan.bucket == BUCKET


def test_interactive_preempts_batch_at_the_next_step_and_batch_resumes_where_it_was():
    scheduler, executor, _ = setup(interactive_slowdown=1.0)
    scheduler.add(make_request("batch", priority=BATCH, steps=4))
    step(scheduler, executor)
    step(scheduler, executor)
    scheduler.add(make_request("urgent", steps=2))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["urgent"] and plan.preempted_ids == ["batch"]
    assert scheduler.get("batch").status == RequestStatus.PREEMPTED
    step(scheduler, executor)
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["batch"] and plan.items[0].step_index == 2


def test_batch_rows_fill_an_interactive_step_only_within_the_slowdown_budget():
    # Step time is 0.1 + 0.05 * rows: one guided interactive request alone takes 0.2 s; with a
    # slowdown of 1.5 the step may take 0.3 s, i.e. two more rows.
    scheduler, executor, _ = setup(interactive_slowdown=1.5)
    for name in "abcd":
        scheduler.add(make_request(name, priority=BATCH, steps=10))
    scheduler.add(make_request("urgent", guidance=7.0))
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["urgent", "a", "b"] and plan.num_rows == 4
    assert plan.preempted_ids == []


def hardware(scheduler, fixed_seconds, seconds_per_row):
    scheduler.step_times = StepTimes()
    for rows in range(1, 17):
        scheduler.step_times.observe(BUCKET, rows, fixed_seconds + seconds_per_row * rows)


def test_interactive_requests_batch_together_where_rows_are_cheap_and_queue_where_they_are_not():
    scheduler, _, _ = setup(interactive_slowdown=1.25)
    hardware(scheduler, fixed_seconds=0.1, seconds_per_row=0.002)  # a GPU: rows nearly free
    for name in "abc":
        scheduler.add(make_request(name, guidance=4.0))
    scheduler.add(make_request("batch", priority=BATCH))
    assert ids(scheduler.schedule()) == ["a", "b", "c", "batch"]

    scheduler, _, _ = setup(interactive_slowdown=1.25)
    hardware(scheduler, fixed_seconds=0.0, seconds_per_row=0.015)  # a CPU: cost grows with rows
    for name in "abc":
        scheduler.add(make_request(name, guidance=4.0))
    scheduler.add(make_request("batch", priority=BATCH))
    assert ids(scheduler.schedule()) == ["a"]


def test_an_interactive_arrival_shares_the_steps_of_a_running_one_where_that_lowers_the_worse_slowdown():
    def arrival_beside_a_running_request(fixed_seconds, seconds_per_row, head_waited=0.0, share=True):
        scheduler, executor, clock = setup(interactive_slowdown=1.0, share_urgent_steps=share)
        hardware(scheduler, fixed_seconds, seconds_per_row)
        executor.fixed_seconds, executor.seconds_per_row = fixed_seconds, seconds_per_row
        scheduler.add(make_request("running", guidance=4.0, steps=10))
        clock.advance(head_waited)
        step(scheduler, executor)
        step(scheduler, executor)
        scheduler.add(make_request("arrived", guidance=4.0, steps=10))
        scheduler.add(make_request("batch", priority=BATCH, guidance=4.0))
        return ids(scheduler.schedule())

    # Four rows cost 1.67x two: sharing slows the running request by 0.67 of 8 steps (1.53x its time
    # alone) and spares the arrival the wait for them (1.8x): the worse of the two is lower shared.
    assert arrival_beside_a_running_request(0.01, 0.01) == ["running", "arrived"]
    assert arrival_beside_a_running_request(0.01, 0.01, share=False) == ["running"]  # the default
    # Four rows cost twice two: sharing saves nobody anything, and the arrival waits.
    assert arrival_beside_a_running_request(0.0, 0.01) == ["running"]
    # The running request already waited 0.5 s before its first step (1.7 times its time alone): slowing it
    # further would make the worse slowdown worse, so the arrival waits.
    assert arrival_beside_a_running_request(0.01, 0.01, head_waited=0.5) == ["running"]


def test_aging_promotes_a_displaced_batch_request_so_it_is_never_starved():
    scheduler, executor, _ = setup(interactive_slowdown=1.0, aging_seconds=1.0, max_rows=2)
    scheduler.add(make_request("batch", priority=BATCH, steps=2))
    finished = []
    for i in range(40):  # a steady stream of interactive requests, always one waiting
        if scheduler.num_waiting < 2:
            scheduler.add(make_request(f"i{i}", steps=2, guidance=3.0))
        _, events = step(scheduler, executor)
        finished += [e.request_id for e in events if e.kind == EventKind.RESULT]
    assert "batch" in finished
    # Each interactive step lasts 0.2 s, so aging takes 5 steps; it then runs beside the interactive ones.
    assert finished.index("batch") < 6


def test_tenants_share_a_class_fairly_not_first_come_first_served():
    scheduler, executor, _ = setup(max_rows=2)
    for i in range(3):
        scheduler.add(make_request(f"heavy{i}", tenant="heavy", priority=BATCH, steps=2, guidance=2.0))
    step(scheduler, executor)
    scheduler.add(make_request("light0", tenant="light", priority=BATCH, steps=2, guidance=2.0))
    scheduler.add(make_request("light1", tenant="light", priority=BATCH, steps=2, guidance=2.0))
    order = []
    while scheduler.num_live:
        _, events = step(scheduler, executor)
        order += [e.request_id for e in events if e.kind == EventKind.RESULT]
    assert order == ["heavy0", "light0", "heavy1", "light1", "heavy2"]


def test_fifo_policy_ignores_priority():
    scheduler, executor, _ = setup(policy="fifo", max_rows=2)
    scheduler.add(make_request("batch", priority=BATCH, steps=2, guidance=2.0))
    scheduler.add(make_request("urgent", steps=2, guidance=2.0))
    assert ids(step(scheduler, executor)[0]) == ["batch"]


def test_cancel_frees_the_rows_at_the_next_step():
    scheduler, executor, _ = setup(max_rows=2)
    scheduler.add(make_request("a", guidance=2.0, steps=10))
    scheduler.add(make_request("b", guidance=2.0, steps=10))
    step(scheduler, executor)
    scheduler.cancel("a")
    plan, events = step(scheduler, executor)
    assert plan.finished_ids == ["a"] and ids(plan) == ["b"]
    (failed,) = [e for e in events if e.request_id == "a"]
    assert failed.kind == EventKind.FAILED and failed.error.reason == "JOB_CANCELLED"
    assert failed.error.code == grpc.StatusCode.CANCELLED and failed.step == 1


def test_cancel_during_a_step_ends_the_request_after_that_step():
    scheduler, executor, _ = setup()
    scheduler.add(make_request("a", steps=5))
    plan = scheduler.schedule()
    scheduler.cancel("a")
    events = scheduler.update(plan, executor.run(plan))
    assert [e.kind for e in events] == [EventKind.FAILED] and scheduler.num_live == 0


def test_a_deadline_that_passes_while_running_ends_the_request():
    scheduler, executor, clock = setup()
    scheduler.add(make_request("a", steps=10, deadline=clock.now + 1.6, priority=BATCH))  # 1.5 s alone
    scheduler.add(make_request("b", steps=20, guidance=2.0, priority=BATCH))  # each step now takes 0.25 s
    events = []
    while scheduler.get("a") is not None:
        events += [e for e in step(scheduler, executor)[1] if e.request_id == "a"]
    assert events[-1].kind == EventKind.FAILED
    assert (events[-1].error.code, events[-1].error.reason) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "DEADLINE_PASSED",
    )
    assert events[-1].step == 7  # the 7th step ends at 1.75 s
    assert ids(step(scheduler, executor)[0]) == ["b"]


def test_a_full_queue_is_refused_with_a_retry_delay():
    scheduler, _, _ = setup(max_queued=2)
    scheduler.add(make_request("a", steps=10))
    scheduler.add(make_request("b", steps=10))
    with pytest.raises(KinoError) as raised:
        scheduler.add(make_request("c"))
    assert (raised.value.code, raised.value.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL")
    assert raised.value.retry_after_seconds > 0 and raised.value.metadata["max"] == "2"


def test_a_queue_full_of_batch_work_still_admits_interactive_requests():
    scheduler, _, _ = setup(max_queued=2)
    scheduler.add(make_request("a", priority=BATCH))
    scheduler.add(make_request("b", priority=BATCH))
    with pytest.raises(KinoError):
        scheduler.add(make_request("c", priority=BATCH))
    scheduler.add(make_request("urgent"))  # only interactive requests stand ahead of it: none
    scheduler.add(make_request("urgent-2"))
    with pytest.raises(KinoError) as raised:
        scheduler.add(make_request("urgent-3"))
    assert raised.value.reason == "QUEUE_FULL"


def test_a_deadline_too_short_even_when_idle_is_unmeetable():
    scheduler, _, clock = setup()
    with pytest.raises(KinoError) as raised:
        scheduler.add(make_request("a", steps=10, deadline=clock.now + 1.0))  # 10 x 0.15 s
    assert (raised.value.code, raised.value.reason) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "DEADLINE_UNMEETABLE",
    )
    assert float(raised.value.metadata["estimate_seconds"]) == pytest.approx(1.5)
    assert scheduler.num_live == 0


def test_a_deadline_the_queue_cannot_meet_is_refused_with_retry_info_before_any_compute():
    scheduler, _, clock = setup(max_rows=2)
    for name in "abc":
        scheduler.add(make_request(name, steps=10, guidance=2.0))
    with pytest.raises(KinoError) as raised:
        scheduler.add(make_request("late", steps=10, guidance=2.0, deadline=clock.now + 3.0))
    error = raised.value
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL")
    # 40 steps of 0.2 s are ahead of or part of it: 8 s, 5 s more than the deadline allows.
    assert float(error.metadata["estimate_seconds"]) == pytest.approx(8.0)
    assert error.retry_after_seconds == pytest.approx(5.0)
    scheduler.add(make_request("batch-ok", steps=10, guidance=2.0, deadline=clock.now + 9.0))


def test_an_interactive_deadline_is_judged_by_the_work_ranked_ahead_of_it_only():
    scheduler, _, clock = setup(max_rows=2)
    for name in "abc":
        scheduler.add(make_request(name, priority=BATCH, steps=10, guidance=2.0))
    scheduler.add(make_request("urgent", steps=10, guidance=2.0, deadline=clock.now + 2.5))


def test_estimate_uses_the_most_efficient_measured_batch():
    scheduler, _, _ = setup(max_rows=4)
    for name in "abcd":
        scheduler.add(make_request(name, steps=10))
    # 50 row-steps at 4 rows per 0.3 s.
    assert scheduler.estimate_seconds(make_request("e", steps=10)) == pytest.approx(50 * 0.3 / 4)


def test_step_times_interpolate_and_extrapolate_conservatively():
    times = StepTimes(prior_fixed_seconds=0.1, prior_seconds_per_row=0.5)
    assert times.predict(BUCKET, 3) == pytest.approx(1.6)
    times.observe(BUCKET, 2, 1.0)
    times.observe(BUCKET, 4, 1.4)
    assert times.predict(BUCKET, 3) == pytest.approx(1.2)
    assert times.predict(BUCKET, 1) == pytest.approx(1.0)
    assert times.predict(BUCKET, 8) == pytest.approx(2.8)
    times.observe(BUCKET, 4, 2.4)
    assert times.predict(BUCKET, 4) == pytest.approx(1.6)


def test_a_batch_step_stops_at_the_batch_size_with_the_best_measured_throughput():
    scheduler, _, _ = setup()
    scheduler.step_times = StepTimes()
    for rows in range(1, 17):  # batching pays up to 4 rows, then the cache spills: 30 ms a row
        scheduler.step_times.observe(BUCKET, rows, 0.05 + 0.01 * rows if rows <= 4 else 0.03 * rows)
    for name in "abcdef":
        scheduler.add(make_request(name, priority=BATCH))
    assert ids(scheduler.schedule()) == ["a", "b", "c", "d"]


def test_batch_steps_do_not_shrink_when_the_load_makes_every_size_slower_than_its_warm_up():
    """Seen on a GPU: the warm-up measured 64 rows at 12 ms, while under load (CPU time per request)
    each row costs about 1 ms more. Sizes measured since then looked slower than the stale 64, the
    batch size aimed just below it, and the step budget, interpolated towards the stale figure, let
    fewer and fewer rows in: steps fell to a few rows. A larger batch is never predicted faster than a
    smaller one (the measured times are fitted non-decreasing)."""
    times = StepTimes()
    for rows, ms in {1: 7.1, 2: 7.2, 4: 7.3, 8: 7.6, 16: 8.3, 32: 9.6, 64: 12.1}.items():
        times.observe(BUCKET, rows, ms / 1000)
    scheduler = StepScheduler(SchedulerConfig(max_rows=64, batch_step_limit=100), times, clock=FakeClock())
    for i in range(40):
        scheduler.add(make_request(f"r{i}", guidance=4.0, priority=BATCH))
    for _ in range(60):  # what the engine measures: each step's rows at the loaded cost
        rows = scheduler.schedule().num_rows
        times.observe(BUCKET, rows, 0.007 + 0.001 * rows)
    # Rows per second r / (7 + r) ms grow with r: the best is 64 rows, within 10% from 30 rows on. The
    # stale 64 still pulls the fit down where it is pooled with loaded sizes, so steps settle a little
    # below (28 rows), far from the two rows of the fault.
    assert scheduler.schedule().num_rows >= 24
    assert times.predict(BUCKET, 64) >= times.predict(BUCKET, rows)


def test_estimates_count_the_decode_of_the_frames_and_not_the_previews():
    scheduler, _, _ = setup()
    scheduler.step_times.observe_decode(BUCKET, 0.5)
    request = make_request("a", steps=6, preview_every=2)  # previews after steps 2 and 4, then frames
    assert scheduler.alone_seconds(request) == pytest.approx(6 * 0.15 + 0.5)
    assert scheduler.estimate_seconds(request) == pytest.approx(6 * 0.15 + 0.5)


def test_a_decode_due_in_the_step_counts_against_the_interactive_budget():
    scheduler, _, _ = setup(interactive_slowdown=1.5)  # 0.2 s alone for a guided request: 0.3 s budget
    scheduler.step_times.observe_decode(BUCKET, 0.2)
    scheduler.add(make_request("finishing", priority=BATCH, steps=1))  # its frames are decoded next step
    scheduler.add(make_request("quiet", priority=BATCH, steps=4))
    scheduler.add(make_request("urgent", guidance=7.0, steps=4))
    assert ids(scheduler.schedule()) == ["urgent", "quiet"]


def test_estimates_count_a_restart_until_it_is_done_and_a_measured_one_updates_them():
    scheduler, executor, _ = setup(restart_index_of=lambda request: 1)  # after its second step
    scheduler.step_times.observe_restart(BUCKET, 0.5)
    request = make_request("a", steps=4)
    assert scheduler.alone_seconds(request) == pytest.approx(4 * 0.15 + 0.5)
    assert scheduler.estimate_seconds(request) == pytest.approx(4 * 0.15 + 0.5)
    scheduler.add(request)
    step(scheduler, executor)
    plan = scheduler.schedule()
    result = executor.run(plan)  # the step that restarts it, 0.3 s longer than its model call
    result.restarts, result.restart_seconds = 1, 0.3
    result.duration_seconds += 0.3
    scheduler.update(plan, result)
    assert scheduler.step_times.restart_seconds(BUCKET) == pytest.approx(0.5 + 0.2 * (0.3 - 0.5))
    assert scheduler.step_times.predict(BUCKET, 1) == pytest.approx(0.15)  # the model's time alone
    assert scheduler.alone_seconds(request) == pytest.approx(2 * 0.15)  # the restart is behind it


def test_a_restart_due_in_the_step_counts_against_the_interactive_budget():
    scheduler, _, _ = setup(
        interactive_slowdown=1.5,  # 0.2 s alone for a guided request: 0.3 s budget
        restart_index_of=lambda request: 0 if request.request_id == "restarting" else None,
    )
    scheduler.step_times.observe_restart(BUCKET, 0.2)
    scheduler.add(make_request("restarting", priority=BATCH, steps=4))  # restarts in its next step
    scheduler.add(make_request("quiet", priority=BATCH, steps=4))
    scheduler.add(make_request("urgent", guidance=7.0, steps=4))
    assert ids(scheduler.schedule()) == ["urgent", "quiet"]


def test_with_pipelined_decodes_a_batch_restart_leaves_the_steps_and_an_interactive_one_stays_in_its_step():
    scheduler, executor, _ = setup(
        interactive_slowdown=1.5, pipelined_decodes=True, restart_index_of=lambda request: 0
    )
    scheduler.step_times.observe_restart(BUCKET, 0.2)
    scheduler.add(make_request("restarting", priority=BATCH, steps=4))
    scheduler.add(make_request("urgent", guidance=7.0, steps=4))
    # urgent: 0.2 s and its own restart 0.2 s, budget 0.6 s; the batch request's restart is not the
    # step's, so its row fits (inside the step both restarts would make 0.65 s).
    plan = scheduler.schedule()
    assert [(item.request_id, item.restart_inline) for item in plan.items] == [
        ("urgent", True),
        ("restarting", False),
    ]
    scheduler.update(plan, executor.run(plan))
    (away,) = scheduler.take_restarts()
    assert away.request_id == "restarting" and ids(scheduler.schedule()) == ["urgent"]
    scheduler.restarted(away, away.sampler.latents, 0.3)
    assert ids(scheduler.schedule()) == ["urgent", "restarting"]
    assert scheduler.step_times.restart_seconds(BUCKET) == pytest.approx(0.2 + 0.2 * (0.3 - 0.2))


def test_a_batch_request_away_for_its_restart_does_not_age():
    scheduler, executor, _ = setup(
        pipelined_decodes=True, aging_seconds=1.0, restart_index_of=lambda request: 0
    )
    scheduler.add(make_request("restarting", priority=BATCH, steps=4))
    step(scheduler, executor)  # its first step; then it leaves for its restart
    (away,) = scheduler.take_restarts()
    scheduler.add(make_request("urgent", guidance=7.0, steps=4))
    for _ in range(3):
        plan, _ = step(scheduler, executor)
        assert ids(plan) == ["urgent"]
    assert away.displaced_seconds == 0 and not away.promoted
    scheduler.restarted(away, away.sampler.latents, 0.2)
    planned = [ids(step(scheduler, executor)[0]) for _ in range(4)]
    assert any("restarting" in plan for plan in planned)  # back in the steps once it has its latents


def test_a_batch_step_lasts_at_most_its_best_batch_plus_one_decode():
    scheduler, _, _ = setup()  # best batch: 8 rows, 0.5 s; with one decode, 0.7 s
    scheduler.step_times.observe_decode(BUCKET, 0.2)
    for name in "abc":  # each finishes, and is decoded, in its next step
        scheduler.add(make_request(name, priority=BATCH, steps=1))
    scheduler.add(make_request("quiet", priority=BATCH, steps=4))
    # a: 0.15 + 0.2; with b: 0.2 + 0.4; c would make it 0.25 + 0.6; quiet instead: 0.25 + 0.4.
    assert ids(scheduler.schedule()) == ["a", "b", "quiet"]


def test_a_batch_step_is_capped_in_guided_request_steps_where_rows_cost_time():
    scheduler, _, _ = setup(batch_step_limit=1.5)  # 0.2 s for 2 rows: batch steps of 0.3 s at most
    for name in "abcdef":  # guided: two rows each
        scheduler.add(make_request(name, priority=BATCH, guidance=7.0))
    assert ids(scheduler.schedule()) == ["a", "b"]  # 4 rows, 0.3 s; the best batch would be 8 rows
    scheduler.step_times = StepTimes()
    for rows in range(1, 17):  # an accelerator: 8 rows cost what 2 do
        scheduler.step_times.observe(BUCKET, rows, 0.2 if rows <= 8 else 0.2 * rows / 8)
    assert ids(scheduler.schedule()) == ["a", "b", "c", "d"]


def test_pipelined_decodes_free_the_rows_at_once_and_the_result_follows_the_decode():
    scheduler, executor, _ = setup(pipelined_decodes=True, max_rows=2)
    scheduler.add(make_request("a", steps=1, priority=BATCH, guidance=7.0))  # two rows each
    scheduler.add(make_request("b", steps=2, priority=BATCH, guidance=7.0))
    plan, events = step(scheduler, executor)
    assert ids(plan) == ["a"] and not plan.decode_finals
    assert kinds(events, "a") == [EventKind.PROGRESS]  # no frames yet
    (decoding,) = scheduler.take_decodes()
    assert decoding.request_id == "a" and decoding.status == RequestStatus.DECODING
    assert scheduler.take_decodes() == []  # each handed out once
    plan, _ = step(scheduler, executor)
    assert ids(plan) == ["b"]  # a's rows went to b while a's frames are made
    event = scheduler.decoded(decoding, executor.decode_final(decoding.sampler), 0.3)
    assert (event.kind, event.step, event.request_id) == (EventKind.RESULT, 1, "a")
    assert decoding.status == RequestStatus.FINISHED_DONE
    assert scheduler.step_times.decode_seconds(BUCKET) == pytest.approx(0.3)


def test_a_pipelined_decode_does_not_count_against_the_interactive_budget():
    scheduler, _, _ = setup(interactive_slowdown=1.5, pipelined_decodes=True)
    scheduler.step_times.observe_decode(BUCKET, 0.2)
    scheduler.add(make_request("finishing", priority=BATCH, steps=1))  # inline, its decode would not fit
    scheduler.add(make_request("urgent", guidance=7.0, steps=4))
    assert ids(scheduler.schedule()) == ["urgent", "finishing"]


def test_a_failed_pipelined_decode_ends_the_request_with_its_error():
    scheduler, executor, _ = setup(pipelined_decodes=True)
    scheduler.add(make_request("a", steps=1))
    step(scheduler, executor)
    (decoding,) = scheduler.take_decodes()
    error = KinoError(grpc.StatusCode.INTERNAL, "INTERNAL_ERROR", "decoding the frames failed")
    event = scheduler.decode_failed(decoding, error)
    assert event.kind == EventKind.FAILED and event.error is error
    assert decoding.status == RequestStatus.FINISHED_FAILED


def cycle_of_four(step_index: int) -> int:
    """A model whose steps take four token grids in turn (the shipped one's time and space shifts)."""
    return step_index % 4


def at_places_in_the_cycle(scheduler, places, priority=BATCH):
    """Guided requests, each `place` steps in (a cycle of four: as many grids)."""
    for name, place in zip("abcd", places, strict=False):
        request = make_request(name, guidance=4.0, priority=priority, steps=12)
        request.steps_done = place
        scheduler.add(request)


def grid_setup(hardware_rows: tuple[float, float], **config):
    clock = FakeClock()
    fixed, per_row = hardware_rows
    executor = ZeroVelocityExecutor(clock, fixed, per_row, grid_of_step=cycle_of_four)
    times = StepTimes()
    for rows in range(1, 17):
        times.observe(BUCKET, rows, executor.seconds(rows))
    scheduler = StepScheduler(SchedulerConfig(**config), times, clock=clock, grid_of_step=cycle_of_four)
    return scheduler, executor


GPU = (0.1, 0.002)  # a call costs about the same for 2 rows as for 16


def grids(plan) -> set[int]:
    return {cycle_of_four(item.step_index) for item in plan.items}


def test_where_calls_cost_more_than_rows_a_step_keeps_to_one_grid_and_the_rest_catch_up_within_a_cycle():
    scheduler, executor = grid_setup(GPU)
    at_places_in_the_cycle(scheduler, [0, 1, 2, 3])
    plans = [step(scheduler, executor)[0] for _ in range(4)]
    assert all(len(grids(plan)) == 1 for plan in plans)
    assert len(plans[0].items) == 1  # the others wait: each would add a whole call to the step
    # the leader stepped on to each one's grid in turn and gathered it
    assert [len(plan.items) for plan in plans] == [1, 2, 3, 4]


@pytest.mark.parametrize(("slowdown", "joined"), [(1.5, ["b"]), (2.5, ["b", "a"])])
def test_a_request_on_another_grid_joins_when_its_own_call_fits_the_budget(slowdown, joined):
    """Two interactive requests on adjacent grids: each call costs 0.104 s, so the second fits a
    budget of 2.5 x the leader's step alone and not one of 1.5 x."""
    scheduler, executor = grid_setup(GPU, interactive_slowdown=slowdown)
    at_places_in_the_cycle(scheduler, [0, 1], priority=Priority.INTERACTIVE)
    plan, _ = step(scheduler, executor)
    assert ids(plan) == joined


def test_without_calls_per_grid_a_step_is_planned_as_one_call_whatever_its_grids():
    scheduler, executor = grid_setup(GPU, calls_per_grid=False)
    at_places_in_the_cycle(scheduler, [0, 1, 2, 3])
    plan, _ = step(scheduler, executor)
    assert len(plan.items) == 4 and len(grids(plan)) == 4


def test_a_step_of_several_calls_is_measured_as_its_calls_and_not_as_one_call_of_all_its_rows():
    scheduler, executor = grid_setup(GPU, interactive_slowdown=2.5)  # room for two calls
    at_places_in_the_cycle(scheduler, [0, 1], priority=Priority.INTERACTIVE)
    plan, _ = step(scheduler, executor)  # two calls of 2 rows: 2 x 0.104 s
    assert len(grids(plan)) == 2
    measured = scheduler.step_times.measured(BUCKET)
    assert measured[2] == pytest.approx(0.104)  # each call as long as a 2-row step
    assert measured[4] == pytest.approx(0.108)  # a 4-row call is not taken for the 0.208 s step


def test_one_slow_step_does_not_price_every_larger_batch_at_its_time():
    """Seen on an H200: one 18-row step took 28 ms (a host hiccup) where 64 rows take 9 ms. Flooring
    every larger size at the slowest time below it priced all of them at 28 ms, the batch size fell to
    16 rows, and the larger sizes never ran again to correct it. The fit pools the outlier with its
    neighbours instead."""
    times = StepTimes()
    for rows, ms in {2: 4.8, 8: 5.1, 16: 5.5, 18: 28.4, 20: 5.6, 32: 7.1, 48: 8.0, 64: 8.9}.items():
        times.observe(BUCKET, rows, ms / 1000)
    assert times.predict(BUCKET, 64) < 0.015
    assert times.best_rows(BUCKET, 64) >= 48
    assert all(times.predict(BUCKET, a) <= times.predict(BUCKET, b) for a, b in pairwise(range(1, 65)))
