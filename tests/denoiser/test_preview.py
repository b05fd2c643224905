"""Previews drawn from latents by the fitted linear map (services/denoiser/model/preview.py)."""

import numpy as np
import torch

from services.denoiser.model.pipeline import VideoPipeline
from services.denoiser.model.preview import LatentPreviewer
from training.shapes_world import render, sample_spec


def test_a_preview_of_a_clips_latents_looks_like_the_clip_at_a_quarter_size():
    pipeline = VideoPipeline.from_pretrained()  # the shipped autoencoder
    previewer = LatentPreviewer.fit(pipeline.autoencoder, 64)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(4):
        frames = render(sample_spec(rng)).frames  # (16, 64, 64, 3)
        preview = previewer(pipeline.encode(frames)[0], 16)
        assert preview.shape == (16, 16, 16, 3) and preview.dtype == np.uint8
        pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(frames).permute(0, 3, 1, 2).float(), 4)
        errors.append(np.abs(preview - pooled.permute(0, 2, 3, 1).numpy()).mean())
    assert np.mean(errors) < 16  # of 255: colours and places right, edges soft


def test_the_fit_is_deterministic():
    pipeline = VideoPipeline.from_pretrained()
    a, b = (LatentPreviewer.fit(pipeline.autoencoder, 64) for _ in range(2))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
