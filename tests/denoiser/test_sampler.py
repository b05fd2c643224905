import pytest
import torch

from services.denoiser.model.sampler import FlowMatchEulerSampler, restart_noise


def test_sigmas_run_from_pure_noise_to_clean():
    sampler = FlowMatchEulerSampler(10, shift=3.0)
    assert sampler.sigmas[0] == 1.0 and sampler.sigmas[-1] == 0.0
    assert (sampler.sigmas[1:] < sampler.sigmas[:-1]).all()


def test_euler_steps_follow_a_straight_path_exactly():
    clean, noise = torch.randn(1, 4, 16, 8, 8), torch.randn(1, 4, 16, 8, 8)
    sampler = FlowMatchEulerSampler(7)
    latents = noise
    for i in range(7):
        step = sampler.step(noise - clean, i, latents)  # the true velocity of the straight path
        assert torch.allclose(step.pred_original, clean, atol=1e-5)
        latents = step.prev_sample
    assert torch.allclose(latents, clean, atol=1e-5)


def test_rows_at_different_steps_batch_like_separate_calls():
    sampler = FlowMatchEulerSampler(20)
    latents, velocity = torch.randn(3, 4, 16, 8, 8), torch.randn(3, 4, 16, 8, 8)
    indices = torch.tensor([0, 7, 19])
    batched = sampler.step(velocity, indices, latents)
    for row, index in enumerate(indices.tolist()):
        alone = sampler.step(velocity[row : row + 1], index, latents[row : row + 1])
        assert torch.allclose(batched.prev_sample[row], alone.prev_sample[0])
        assert torch.allclose(batched.pred_original[row], alone.pred_original[0])


def test_step_has_no_hidden_state():
    sampler = FlowMatchEulerSampler(10)
    latents, velocity = torch.randn(1, 4, 16, 8, 8), torch.randn(1, 4, 16, 8, 8)
    first = sampler.step(velocity, 3, latents).prev_sample
    sampler.step(velocity, 8, latents)
    assert torch.equal(sampler.step(velocity, 3, latents).prev_sample, first)


@pytest.mark.parametrize(("strength", "expected"), [(1.0, 0), (0.0, 20), (0.5, 10), (0.3, 14)])
def test_remix_strength_picks_the_first_step(strength, expected):
    assert FlowMatchEulerSampler(20).start_index(strength) == expected


def test_add_noise_puts_the_source_on_the_path_at_that_step():
    sampler = FlowMatchEulerSampler(10)
    clean, noise = torch.ones(1, 4, 16, 8, 8), torch.zeros(1, 4, 16, 8, 8)
    assert torch.allclose(sampler.add_noise(clean, noise, 0), noise)
    assert torch.allclose(sampler.add_noise(clean, noise, 5), 0.5 * clean)
    with pytest.raises(ValueError):
        sampler.start_index(1.5)


def test_a_restart_runs_the_end_of_the_schedule_again_within_the_step_count():
    plain, restarted = FlowMatchEulerSampler(7), FlowMatchEulerSampler(10, restart_steps=3)
    assert (restarted.main_steps, restarted.restart_index) == (7, 6)
    assert len(restarted.sigmas) == 11 and restarted.sigmas[-1] == 0.0
    assert torch.equal(restarted.sigmas[:7], plain.sigmas[:7])  # the main schedule, 1 -> 0
    assert restarted.next_sigmas[6] == 0.0
    assert torch.equal(restarted.sigmas[7:], plain.sigmas[4:])  # then its last 3 steps again
    assert [i for i in range(10) if restarted.restarts_after(i)] == [6]


def test_a_restarted_straight_path_still_ends_exactly_at_its_clean_end():
    clean, noise, fresh = (torch.randn(1, 4, 16, 8, 8) for _ in range(3))
    sampler = FlowMatchEulerSampler(9, restart_steps=3)
    latents, velocity = noise, noise - clean
    for i in range(9):
        step = sampler.step(velocity, i, latents)
        latents = step.prev_sample
        if sampler.restarts_after(i):
            assert torch.allclose(latents, clean, atol=1e-5)  # the main schedule ended at t = 0
            latents, velocity = sampler.add_noise(clean, fresh, i + 1), fresh - clean
    assert torch.allclose(latents, clean, atol=1e-5)


def test_too_few_steps_for_a_restart_are_all_main_steps():
    sampler = FlowMatchEulerSampler(8, restart_steps=3)
    assert (sampler.restart_steps, sampler.main_steps, sampler.restart_index) == (0, 8, None)
    assert torch.equal(sampler.sigmas, FlowMatchEulerSampler(8).sigmas)


def test_a_remix_does_not_start_part_way_through_a_restarted_schedule():
    with pytest.raises(ValueError, match="without a restart"):
        FlowMatchEulerSampler(10, restart_steps=3).start_index(0.5)


def test_known_frames_start_part_way_but_within_the_main_schedule():
    assert FlowMatchEulerSampler(10).known_frames_start(1.0) == 0
    assert FlowMatchEulerSampler(10).known_frames_start(0.9) == 1
    assert FlowMatchEulerSampler(20, restart_steps=3).known_frames_start(0.9) == 2
    # A start past the main schedule's last step would skip the restart: it starts there instead.
    assert FlowMatchEulerSampler(10, restart_steps=3).known_frames_start(0.1) == 6
    assert FlowMatchEulerSampler(4).known_frames_start(0.1) == 3  # one step at least
    with pytest.raises(ValueError):
        FlowMatchEulerSampler(10).known_frames_start(0.0)


def test_restart_noise_is_the_seeds_second_draw():
    generator = torch.Generator().manual_seed(5)
    start, second = torch.randn(2, 3, generator=generator), torch.randn(2, 3, generator=generator)
    assert torch.equal(restart_noise(5, (2, 3)), second)
    assert not torch.equal(restart_noise(5, (2, 3)), start)
