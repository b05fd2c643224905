"""Where the model runs (`DenoiserSettings.device`): validated in the settings, refused at load when this
process cannot use it. The CUDA path itself needs a GPU; the bench's GPU run exercises it."""

import pytest
import torch
from pydantic import ValidationError

from services.common.settings import DenoiserSettings, load_settings
from services.denoiser.engine.executor import (
    DeviceUnavailableError,
    ModelExecutor,
    load_executor,
    resolve_device,
)
from services.denoiser.model.sampler import FlowMatchEulerSampler, euler_step
from tests.denoiser.engine.helpers import save_tiny_weights, tiny_executor, tiny_pipeline


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:3"])
def test_the_device_setting_takes_cpu_and_cuda_devices(device):
    settings = load_settings(env={"KINO_DENOISER__DEVICE": device})
    assert settings.denoiser.device == device


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", "cpu:0", ""])
def test_the_device_setting_refuses_anything_else(device):
    with pytest.raises(ValidationError, match="device"):
        DenoiserSettings(device=device)


def test_the_default_device_is_the_cpu():
    assert DenoiserSettings().device == "cpu"
    assert tiny_executor().device == torch.device("cpu")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_a_cuda_device_without_cuda_fails_at_load_saying_what_to_set(no_cuda, tmp_path):
    settings = DenoiserSettings(device="cuda", weights_dir=save_tiny_weights(tmp_path))
    with pytest.raises(DeviceUnavailableError, match=r"'cuda'.*no CUDA device.*KINO_DENOISER__DEVICE"):
        load_executor(settings)
    with pytest.raises(DeviceUnavailableError, match="'cuda:1'"):
        ModelExecutor.from_pipeline(tiny_pipeline(), device="cuda:1")


def test_a_cuda_index_beyond_the_visible_devices_fails_at_load(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceUnavailableError, match="only 1 CUDA device"):
        resolve_device("cuda:1")


def test_the_cpu_keeps_the_batch_invariant_layers():
    executor = tiny_executor()
    assert executor.device == torch.device("cpu")
    assert any(type(m).__name__ == "RowwiseModule" for m in executor.dit.modules())
    assert executor.previewer.weight.device == torch.device("cpu")


def test_previews_of_a_batch_equal_previews_one_at_a_time():
    executor = tiny_executor()
    latents = torch.randn(5, 4, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    batched = executor.previewer.batch(latents, 16)
    assert batched.shape == (5, 16, 16, 16, 3)
    for clip, preview in zip(latents, batched, strict=True):
        assert (executor.previewer(clip, 16) == preview).all()


def test_one_euler_step_over_rows_at_different_steps_of_different_grids_equals_each_alone():
    ten, four = FlowMatchEulerSampler(10, shift=3.0), FlowMatchEulerSampler(4)
    velocity = torch.randn(2, 4, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    latents = torch.randn(2, 4, 2, 3, 3, generator=torch.Generator().manual_seed(2))
    step = euler_step(
        velocity,
        latents,
        torch.stack([ten.sigmas[3], four.sigmas[1]]),
        torch.stack([ten.sigmas[4], four.sigmas[2]]),
    )
    for row, (sampler, index) in enumerate([(ten, 3), (four, 1)]):
        alone = sampler.step(velocity[row : row + 1], index, latents[row : row + 1])
        assert torch.equal(step.prev_sample[row], alone.prev_sample[0])
        assert torch.equal(step.pred_original[row], alone.pred_original[0])
