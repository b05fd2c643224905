import pytest
import torch

from services.denoiser.model.autoencoder import AUTOENCODER_PRESETS, FrameAutoencoder
from services.denoiser.model.dit import VIDEO_DIT_PRESETS, VideoDiT
from services.denoiser.model.pipeline import PipelineConfig, VideoPipeline, save_pipeline


@pytest.fixture
def tiny_dit() -> VideoDiT:
    torch.manual_seed(0)
    return VideoDiT(VIDEO_DIT_PRESETS["tiny"]).eval()


@pytest.fixture
def tiny_pipeline_dir(tmp_path):
    torch.manual_seed(0)
    config = PipelineConfig(
        dit=VIDEO_DIT_PRESETS["tiny"], autoencoder=AUTOENCODER_PRESETS["tiny"], default_steps=4
    )
    dit = VideoDiT(config.dit)
    # Zero-initialised outputs would make every test blind to the network: perturb them.
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    save_pipeline(tmp_path, config, dit, FrameAutoencoder(config.autoencoder))
    return tmp_path


@pytest.fixture
def tiny_pipeline(tiny_pipeline_dir) -> VideoPipeline:
    return VideoPipeline.from_pretrained(tiny_pipeline_dir)
