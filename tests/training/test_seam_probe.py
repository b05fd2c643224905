"""The seam probe's rule, on clips whose seams are known: a rendered clip has none; a jump is one."""

import dataclasses

import numpy as np

from training.seam_probe import CONTEXT, seam_within_2x
from training.shapes_world import render, sample_spec


def test_a_rendered_clip_has_no_jump_where_a_continuation_would_start_and_a_shifted_frame_is_one():
    spec = dataclasses.replace(sample_spec(np.random.default_rng(3)), motion="moves right", size="small")
    frames = render(spec).frames
    assert seam_within_2x(frames)
    jumped = frames.copy()
    jumped[CONTEXT:] = np.roll(frames[CONTEXT:], 8, axis=2)  # every new frame 8 px further right
    assert not seam_within_2x(jumped)
