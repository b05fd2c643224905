"""The autoencoder in bfloat16 (`autoencoder.resolve_precision`, `FrameAutoencoder.for_inference`):
chosen where the CPU multiplies bfloat16 in hardware, float32 in and out whatever it computes in, the
shipped model's frames within a level or two of float32's, and never saved as the weights of record."""

import numpy as np
import pytest
import torch

from services.common.settings import DenoiserSettings
from services.denoiser.engine.executor import load_executor, resolve_autoencoder_precision
from services.denoiser.model.autoencoder import (
    AUTOENCODER_PRESETS,
    FrameAutoencoder,
    cpu_has_bfloat16_units,
    resolve_precision,
    tensor_to_video,
)
from services.denoiser.model.pipeline import VideoPipeline, save_pipeline
from training.shapes_world import render, sample_spec


def test_auto_is_bfloat16_only_where_the_hardware_multiplies_it():
    assert resolve_precision("float32") == torch.float32
    assert resolve_precision("bfloat16") == torch.bfloat16
    assert resolve_precision("auto", "cuda") == torch.float32  # not measured there
    assert resolve_precision("auto") == (torch.bfloat16 if cpu_has_bfloat16_units() else torch.float32)
    with pytest.raises(ValueError, match="auto, float32, bfloat16"):
        resolve_precision("float16")


def test_the_service_setting_is_decided_for_the_device_the_model_runs_on():
    settings = DenoiserSettings(autoencoder_precision="auto")
    assert resolve_autoencoder_precision(settings, torch.device("cuda")) == "float32"
    settings = DenoiserSettings(autoencoder_precision="bfloat16")
    assert resolve_autoencoder_precision(settings, torch.device("cuda")) == "bfloat16"
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        executor = load_executor(DenoiserSettings(autoencoder_precision=name))
        assert executor.autoencoder.dtype == dtype


@pytest.fixture(scope="module")
def pipelines() -> dict[str, VideoPipeline]:
    return {
        name: VideoPipeline.from_pretrained(autoencoder_precision=name) for name in ("float32", "bfloat16")
    }


def test_in_bfloat16_the_shipped_autoencoder_takes_and_gives_float32_and_draws_the_same_frames(pipelines):
    # 4 frames: where bfloat16 is emulated (no bfloat16 units, as on some CI machines) a clip's 16 take
    # seconds.
    frames = render(sample_spec(np.random.default_rng(0))).frames[:4]  # (4, 64, 64, 3)
    latents = {name: p.encode(frames) for name, p in pipelines.items()}
    assert all(z.dtype == torch.float32 for z in latents.values())
    relative = (latents["bfloat16"] - latents["float32"]).norm() / latents["float32"].norm()
    assert 0 < relative < 0.03  # bfloat16 keeps 8 bits of mantissa: about 1% error, not 0
    decoded = {name: p.decode(latents["float32"]).astype(int) for name, p in pipelines.items()}
    difference = np.abs(decoded["bfloat16"] - decoded["float32"])
    assert difference.mean() < 0.5 and difference.max() <= 8  # of 255 levels


@pytest.mark.skipif(
    not cpu_has_bfloat16_units(),
    reason="bfloat16 is emulated on this CPU (a clip takes about 30 s), and auto serves float32 here",
)
def test_a_clip_sampled_with_a_bfloat16_autoencoder_is_the_float32_clip_to_a_level_and_repeats(pipelines):
    tokens = np.random.default_rng(1).standard_normal((9, 384)).astype(np.float32)
    # Default steps, so the restart's round trip through the autoencoder runs in bfloat16 too.
    clips = {name: p.generate(tokens, seed=5).frames for name, p in pipelines.items()}
    difference = np.abs(clips["bfloat16"].astype(int) - clips["float32"].astype(int))
    assert difference.mean() < 0.5 and (difference > 8).mean() < 0.01
    again = pipelines["bfloat16"].generate(tokens, seed=5).frames
    assert np.array_equal(again, clips["bfloat16"])


def test_a_bfloat16_autoencoder_is_not_saved_as_the_weights_of_record(tmp_path, pipelines):
    pipeline = pipelines["bfloat16"]
    with pytest.raises(ValueError, match="save the float32 weights"):
        save_pipeline(tmp_path, pipeline.config, pipeline.dit, pipeline.autoencoder)


def test_for_inference_keeps_the_layout_and_converts_in_place():
    autoencoder = FrameAutoencoder(AUTOENCODER_PRESETS["tiny"])
    same = autoencoder.for_inference(torch.bfloat16)
    assert same is autoencoder and not autoencoder.training and autoencoder.dtype == torch.bfloat16
    conv = autoencoder.decoder[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        video = autoencoder.decode(torch.randn(1, 4, 2, 8, 8))
    assert video.dtype == torch.float32 and tensor_to_video(video).dtype == torch.uint8
