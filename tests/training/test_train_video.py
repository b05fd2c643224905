"""Guards of the video model's training run."""

import pytest
import torch

from training.train_video import check_unit_variance


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
