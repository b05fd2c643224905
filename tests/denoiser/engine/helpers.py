"""The real executor over the `tiny` presets with random weights: the real code path in milliseconds.

The presets initialise the DiT's output layers to zero (it would predict zero velocity), so every
parameter is redrawn from a seeded normal distribution: the outputs then depend on every input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from services.denoiser.engine.executor import ModelExecutor
from services.denoiser.model.autoencoder import AUTOENCODER_PRESETS, FrameAutoencoder
from services.denoiser.model.dit import VIDEO_DIT_PRESETS, VideoDiT
from services.denoiser.model.pipeline import PipelineConfig, VideoPipeline, save_pipeline

TINY_CONFIG = PipelineConfig(
    dit=VIDEO_DIT_PRESETS["tiny"],
    autoencoder=AUTOENCODER_PRESETS["tiny"],
    name="kino-shapes-dit-tiny-random",
    default_steps=4,
    max_steps=50,
    default_guidance_scale=3.0,
)
TEXT_DIM = TINY_CONFIG.dit.text_dim


def tiny_pipeline(seed: int = 0) -> VideoPipeline:
    torch.manual_seed(seed)
    dit = VideoDiT(TINY_CONFIG.dit)
    autoencoder = FrameAutoencoder(TINY_CONFIG.autoencoder)
    with torch.no_grad():
        for module in (dit, autoencoder):
            for parameter in module.parameters():
                parameter.normal_(0.0, 0.2)
    # float32 on every machine: the exactness these tests hold the engine to is the same in either
    # precision, but random weights turn a last-bit difference into a bfloat16 rounding flip and that
    # into many levels (tests/denoiser/test_autoencoder_precision.py covers bfloat16).
    return VideoPipeline(TINY_CONFIG, dit, autoencoder, autoencoder_precision="float32")


def tiny_executor(seed: int = 0, **kwargs) -> ModelExecutor:
    return ModelExecutor.from_pipeline(tiny_pipeline(seed), **kwargs)


def save_tiny_weights(weights_dir: Path, seed: int = 0) -> Path:
    pipeline = tiny_pipeline(seed)
    save_pipeline(weights_dir, pipeline.config, pipeline.dit, pipeline.autoencoder)
    return weights_dir


def prompt(seed: int, length: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((length, TEXT_DIM)).astype(np.float32)
