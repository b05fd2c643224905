"""Guards of the video model's training run."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from services.denoiser.model.pipeline import DEFAULT_WEIGHTS_DIR, PipelineConfig
from training.train_video import (
    MODEL_FIELDS,
    TrainConfig,
    check_dataset_recipe,
    check_unit_variance,
    dataset_recipe,
    inherited_sampling,
)


def test_a_dataset_of_latents_far_from_unit_variance_is_refused():
    generator = torch.Generator().manual_seed(0)
    check_unit_variance(torch.randn(8, 4, 16, 4, 4, generator=generator))
    with pytest.raises(ValueError, match="applied twice"):  # a latent scale of 0.09 applied once too often
        check_unit_variance(0.09 * torch.randn(8, 4, 16, 4, 4, generator=generator))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_training_on_a_cuda_device_that_is_not_there_stops_with_a_reason():
    from training.train_video import training_device

    assert training_device("cpu").type == "cpu"
    with pytest.raises(SystemExit, match="sees no CUDA device"):
        training_device("cuda")


def test_a_cached_dataset_drawn_another_way_is_refused_with_the_difference():
    config = TrainConfig(seed=2)
    check_dataset_recipe({"recipe": dataset_recipe(config)}, config, Path("d.pt"))  # the same: taken
    check_dataset_recipe({}, config, Path("d.pt"))  # cached before recipes were recorded: taken
    for other in (TrainConfig(seed=1), dataclasses.replace(config, continuation_clip_fraction=0.0)):
        with pytest.raises(ValueError, match="use another --work-dir"):
            check_dataset_recipe({"recipe": dataset_recipe(other)}, config, Path("d.pt"))


def test_a_continued_model_keeps_every_sampling_default_chosen_for_the_one_it_continues():
    # The shipped model's guidance (3), restart, known-frames start and path guidance were measured and
    # chosen for it; PipelineConfig's own defaults differ.
    shipped = PipelineConfig.from_json(json.loads((DEFAULT_WEIGHTS_DIR / "config.json").read_text()))
    continued = PipelineConfig(
        dit=shipped.dit, autoencoder=shipped.autoencoder, **inherited_sampling(shipped)
    )
    for field in ("default_guidance_scale", "restart_steps", "known_frames_strength", "path_guidance"):
        assert getattr(shipped, field) != getattr(PipelineConfig, field), field
    sampling = [f.name for f in dataclasses.fields(PipelineConfig) if f.name not in MODEL_FIELDS]
    assert {"default_steps", "alternate_space_grid", "known_frames_start_still_only"} <= set(sampling)
    for field in sampling:
        assert getattr(continued, field) == getattr(shipped, field), field
