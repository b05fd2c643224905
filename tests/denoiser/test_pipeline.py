import dataclasses
import json

import numpy as np
import pytest
import torch

from services.denoiser.model.pipeline import (
    DEFAULT_WEIGHTS_DIR,
    GenerationCancelled,
    TokenGrid,
    VideoPipeline,
    hold_known_frames,
    token_grid,
)
from services.denoiser.model.sampler import FlowMatchEulerSampler
from services.denoiser.model.weights import IncompatibleWeightsError


def _prompt(seed=0, length=6):
    return np.random.default_rng(seed).standard_normal((length, 384)).astype(np.float32)


def test_generate_returns_uint8_frames_at_the_native_size(tiny_pipeline):
    out = tiny_pipeline.generate(_prompt(), seed=1)
    assert out.frames.shape == (16, 64, 64, 3) and out.frames.dtype == np.uint8
    assert out.fps == 8.0


def test_same_seed_gives_the_same_frames_and_another_seed_differs(tiny_pipeline):
    a = tiny_pipeline.generate(_prompt(), seed=1).frames
    assert np.array_equal(a, tiny_pipeline.generate(_prompt(), seed=1).frames)
    assert not np.array_equal(a, tiny_pipeline.generate(_prompt(), seed=2).frames)


def test_callback_sees_every_step(tiny_pipeline):
    seen = []
    tiny_pipeline.generate(
        _prompt(), seed=0, num_steps=5, on_step=lambda info: seen.append((info.step, info.total_steps))
    )
    assert seen == [(i, 5) for i in range(1, 6)]


def test_cancellation_stops_before_the_next_step(tiny_pipeline):
    steps = []
    with pytest.raises(GenerationCancelled):
        tiny_pipeline.generate(
            _prompt(),
            seed=0,
            num_steps=6,
            on_step=lambda info: steps.append(info.step),
            should_cancel=lambda: len(steps) >= 2,
        )
    assert steps == [1, 2]


def test_known_first_frames_come_back_unchanged(tiny_pipeline):
    first = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    out = tiny_pipeline.generate(_prompt(), seed=0, first_frames=first)
    assert np.array_equal(out.frames[:3], first)


def test_known_frames_are_held_on_the_flow_path_and_the_new_frames_left_alone():
    sampler = FlowMatchEulerSampler(4)
    generator = torch.Generator().manual_seed(0)
    latents, known, noise = (torch.randn(1, 4, 16, 8, 8, generator=generator) for _ in range(3))
    known, noise = known[:, :, :3], noise[:, :, :3]
    for step in range(4):
        held = hold_known_frames(latents, known, noise, sampler, step)
        sigma = sampler.sigmas[step]
        torch.testing.assert_close(held[:, :, :3], (1 - sigma) * known + sigma * noise)
        assert torch.equal(held[:, :, 3:], latents[:, :, 3:])
    torch.testing.assert_close(hold_known_frames(latents, known, noise, sampler, 0)[:, :, :3], noise)


def _remix_steps(pipeline, source) -> list[int]:
    """The steps a remix of `source` at strength 0.3 of 10 steps runs, as its callback counts them."""
    steps = []
    pipeline.generate(
        _prompt(),
        seed=3,
        num_steps=10,
        source_video=source,
        strength=0.3,
        on_step=lambda i: steps.append(i.step),
    )
    return steps


def test_remix_runs_only_the_steps_its_strength_asks_for(tiny_pipeline):
    source = tiny_pipeline.generate(_prompt(), seed=0).frames
    assert _remix_steps(tiny_pipeline, source) == [1, 2, 3]


def test_a_restart_runs_within_the_step_count_and_a_remix_keeps_its_plain_schedule(tiny_pipeline):
    plain = tiny_pipeline.generate(_prompt(), seed=0, num_steps=6).frames
    tiny_pipeline.config = dataclasses.replace(tiny_pipeline.config, restart_steps=2)
    calls = []
    restarted = tiny_pipeline.generate(
        _prompt(), seed=0, num_steps=6, on_step=lambda i: calls.append(i.step)
    ).frames
    assert calls == [1, 2, 3, 4, 5, 6] and not np.array_equal(plain, restarted)
    assert np.array_equal(restarted, tiny_pipeline.generate(_prompt(), seed=0, num_steps=6).frames)
    assert _remix_steps(tiny_pipeline, plain) == [1, 2, 3]


def test_reference_image_is_accepted_and_changes_the_clip(tiny_pipeline):
    reference = np.full((64, 64, 3), 200, np.uint8)
    plain = tiny_pipeline.generate(_prompt(), seed=0).frames
    assert not np.array_equal(
        plain, tiny_pipeline.generate(_prompt(), seed=0, reference_image=reference).frames
    )


def test_bad_inputs_are_refused_with_the_expected_shape(tiny_pipeline):
    with pytest.raises(ValueError, match="384"):
        tiny_pipeline.generate(np.zeros((4, 512), np.float32), seed=0)
    with pytest.raises(ValueError, match="first_frames"):
        tiny_pipeline.generate(_prompt(), seed=0, first_frames=np.zeros((16, 64, 64, 3), np.uint8))


def test_weights_that_do_not_fit_the_config_are_refused(tiny_pipeline_dir):
    config = json.loads((tiny_pipeline_dir / "config.json").read_text())
    config["dit"]["depth"] = 1
    (tiny_pipeline_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleWeightsError, match="blocks.1"):
        VideoPipeline.from_pretrained(tiny_pipeline_dir)


@pytest.mark.skipif(not (DEFAULT_WEIGHTS_DIR / "config.json").exists(), reason="no shipped weights")
def test_shipped_weights_load_and_fit_in_the_repo_budget():
    pipeline = VideoPipeline.from_pretrained()
    assert pipeline.config.frame_size == 64 and pipeline.config.dit.num_frames >= 16
    assert sum(p.stat().st_size for p in DEFAULT_WEIGHTS_DIR.iterdir()) < 50 * 2**20


def test_with_both_alternations_the_sampling_steps_take_all_four_token_grids_in_turn():
    both = {"alternate_token_grid": True, "alternate_space_grid": True}
    grids = [token_grid(i, **both) for i in range(8)]
    assert grids[:4] == [
        TokenGrid(shift_tokens=False, shift_space=False),
        TokenGrid(shift_tokens=True, shift_space=False),
        TokenGrid(shift_tokens=False, shift_space=True),
        TokenGrid(shift_tokens=True, shift_space=True),
    ]
    assert grids[4:] == grids[:4]
    assert {token_grid(i) for i in range(4)} == {TokenGrid()}
