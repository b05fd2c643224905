"""Guards of the video model's training run."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from services.denoiser.model.pipeline import DEFAULT_WEIGHTS_DIR, PipelineConfig
from training.train_video import (
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


def test_a_continued_model_keeps_the_sampling_defaults_chosen_for_the_one_it_continues():
    # The shipped model's guidance (3) was measured and chosen for it; the config's own default is 4.
    shipped = PipelineConfig.from_json(json.loads((DEFAULT_WEIGHTS_DIR / "config.json").read_text()))
    continued = PipelineConfig(
        dit=shipped.dit, autoencoder=shipped.autoencoder, **inherited_sampling(shipped)
    )
    assert shipped.default_guidance_scale != PipelineConfig.default_guidance_scale
    for field in (
        "default_steps",
        "max_steps",
        "default_guidance_scale",
        "sampler_shift",
        "alternate_token_grid",
        "alternate_space_grid",
    ):
        assert getattr(continued, field) == getattr(shipped, field)
