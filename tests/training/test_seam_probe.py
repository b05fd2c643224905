"""The seam probe's rule, on clips whose seams are known: a rendered clip has none; a jump is one."""

import dataclasses

import numpy as np

from training.seam_probe import CONTEXT, seam_within_2x, token_step_split
from training.shapes_world import render, sample_spec


def test_a_rendered_clip_has_no_jump_where_a_continuation_would_start_and_a_shifted_frame_is_one():
    spec = dataclasses.replace(sample_spec(np.random.default_rng(3)), motion="moves right", size="small")
    frames = render(spec).frames
    assert seam_within_2x(frames)
    jumped = frames.copy()
    jumped[CONTEXT:] = np.roll(frames[CONTEXT:], 8, axis=2)  # every new frame 8 px further right
    assert not seam_within_2x(jumped)


def test_steps_split_by_token_find_a_subject_that_moves_once_per_token():
    even = np.stack([np.arange(8.0) * 2, np.zeros(8)], axis=1)  # 2 px every frame
    inside, across = token_step_split(even, frames_per_token=2)
    assert inside.tolist() == [2.0] * 4 and across.tolist() == [2.0] * 3  # steps 0->1, 2->3... | 1->2...
    stutter = np.repeat(even[::2], 2, axis=0)  # the same place for both frames of a token, then 4 px
    inside, across = token_step_split(stutter, frames_per_token=2)
    assert inside.tolist() == [0.0] * 4 and across.tolist() == [4.0] * 3
