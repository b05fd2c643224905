"""Seam checks: a continuation whose subject jumps at its seam is drawn again (services/gateway/seams.py)."""

from __future__ import annotations

import numpy as np
import pytest

from kino.v1 import generation_pb2
from services.gateway.seams import JUMP_RATIO, SeamDraws, seam_ratio
from tests.gateway.helpers import wait_terminal
from tests.gateway.scaffold import MovingSquareDenoiser, ScaffoldTextEncoder, SilentAudio
from tests.gateway.test_jobs import counter, submit_request


def square_frames(xs: list[float], size: int = 32) -> np.ndarray:
    frames = np.zeros((len(xs), size, size, 3), np.uint8)
    for frame, x in zip(frames, xs, strict=True):
        frame[10:14, int(x) : int(x) + 4] = 255
    return frames


def test_the_seam_ratio_is_the_step_into_the_first_new_frame_over_the_steps_after_it():
    before = square_frames([0, 2, 4])
    assert seam_ratio(before, square_frames([6, 8, 10, 12])) == pytest.approx(1.0)
    assert seam_ratio(before, square_frames([14, 16, 18, 20])) == pytest.approx(5.0)
    assert seam_ratio(before, square_frames([14, 16, 18, 20])) > JUMP_RATIO


def test_a_resting_subject_may_wobble_a_pixel_and_a_lost_one_is_not_judged():
    before = square_frames([10, 10, 10])
    assert seam_ratio(before, square_frames([11, 11, 11, 11])) == pytest.approx(1.0)  # floored at 1 px
    assert seam_ratio(before, square_frames([13, 13, 13, 13])) == pytest.approx(3.0)
    assert seam_ratio(before, np.zeros((4, 32, 32, 3), np.uint8)) is None
    assert seam_ratio(before, square_frames([12])) is None  # no step after the seam to compare with


def test_draws_stop_at_the_first_smooth_one_else_the_smoothest_is_kept():
    before = square_frames([0, 2, 4])
    smooth, small_jump, big_jump = (square_frames(xs) for xs in ([6, 8, 10], [12, 14, 16], [20, 22, 24]))
    draws = SeamDraws(before)
    assert not draws.take(big_jump) and not draws.take(small_jump) and draws.take(smooth)
    assert draws.kept is smooth and draws.outcome == "redrawn" and draws.draws == 3

    draws = SeamDraws(before)
    assert not draws.take(small_jump) and not draws.take(big_jump)
    assert not draws.take(np.zeros((3, 32, 32, 3), np.uint8))  # a redraw that lost its subject
    assert draws.kept is small_jump and draws.outcome == "kept_jump" and draws.last_ratio is None

    assert SeamDraws(before).take(smooth)


def test_a_draw_that_loses_the_known_frames_subject_is_drawn_again():
    before = square_frames([0, 2, 4])
    lost = np.zeros((3, 32, 32, 3), np.uint8)
    smooth = square_frames([6, 8, 10])
    draws = SeamDraws(before)
    assert not draws.take(lost) and draws.take(smooth)
    assert draws.kept is smooth and draws.outcome == "redrawn"

    # Every draw losing it, the one that shows it in the most frames is kept.
    fading = smooth.copy()
    fading[1:] = 0
    flickering = smooth.copy()
    flickering[1] = 0
    draws = SeamDraws(before)
    assert not draws.take(fading) and not draws.take(flickering) and not draws.take(lost)
    assert draws.kept is flickering and draws.outcome == "kept_lost"

    # A draw that jumps but keeps the subject is kept before one that loses it.
    draws = SeamDraws(before)
    jump = square_frames([20, 22, 24])
    assert not draws.take(lost) and not draws.take(jump) and not draws.take(flickering)
    assert draws.kept is jump and draws.outcome == "kept_jump"


def test_without_a_subject_in_the_known_frames_the_first_draw_is_taken_as_it_is():
    lost = np.zeros((3, 32, 32, 3), np.uint8)
    draws = SeamDraws(lost)
    assert draws.take(square_frames([20, 22, 24])) and draws.outcome == "untracked"
    one_frame = square_frames([6])  # a subject, but no step after the seam to compare with
    draws = SeamDraws(square_frames([0, 2, 4]))
    assert draws.take(one_frame) and draws.kept is one_frame and draws.outcome == "untracked"


async def seam_job(start_gateway, start_scaffold, jump_seeds: set[int], seam_redraws: int, watch=None):
    """A 3-second video (a 16-frame clip, then one continuation call) from seed 10 over a scaffold
    denoiser whose draws from `jump_seeds` jump at the seam; the job and the denoiser's requests.
    `watch`, a list, collects the progress fractions a Watch stream saw."""
    denoiser = MovingSquareDenoiser(jump_seeds)
    backends = await start_scaffold(encoder=ScaffoldTextEncoder(), denoiser=denoiser, audio=SilentAudio())
    gateway = await start_gateway(backends.address, seam_redraws=seam_redraws)
    job = await gateway.stub.Submit(submit_request(duration_seconds=3, width=96, height=64, seed=10))
    if watch is not None:
        async for update in gateway.stub.Watch(generation_pb2.WatchRequest(name=job.name)):
            watch.append(update.progress.fraction)
    return await wait_terminal(gateway.stub, job.name, timeout=60), denoiser.requests


def seam_checks(outcome: str) -> float:
    return counter("kino_gateway_seam_checks_total", outcome=outcome)


async def test_a_continuation_that_jumps_at_its_seam_is_drawn_again_with_the_next_seed(
    start_gateway, start_scaffold
):
    before, fractions = seam_checks("redrawn"), []
    job, requests = await seam_job(start_gateway, start_scaffold, {11}, seam_redraws=2, watch=fractions)
    assert job.state == generation_pb2.JOB_STATE_SUCCEEDED, job.error
    assert [r.seed for r in requests] == [10, 11, 12]
    assert requests[2].first_frames == requests[1].first_frames  # the same continuation, drawn again
    assert seam_checks("redrawn") == before + 1
    # The redraw adds a call on the way; progress holds rather than moving back.
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


async def test_when_every_draw_jumps_the_smoothest_is_kept_and_with_no_redraws_the_first(
    start_gateway, start_scaffold
):
    kept = seam_checks("kept_jump")
    job, requests = await seam_job(start_gateway, start_scaffold, jump_seeds={11, 12, 13}, seam_redraws=2)
    assert job.state == generation_pb2.JOB_STATE_SUCCEEDED, job.error
    assert [r.seed for r in requests] == [10, 11, 12, 13]
    assert seam_checks("kept_jump") == kept + 1

    smooth = seam_checks("smooth")
    job, requests = await seam_job(start_gateway, start_scaffold, jump_seeds={11}, seam_redraws=0)
    assert job.state == generation_pb2.JOB_STATE_SUCCEEDED, job.error
    assert [r.seed for r in requests] == [10, 11]
    assert seam_checks("kept_jump") == kept + 2 and seam_checks("smooth") == smooth
