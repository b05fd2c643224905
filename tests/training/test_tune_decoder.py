"""Decoder tuning: the targets it learns from, and a short run that lowers its loss."""

import dataclasses

import numpy as np
import torch

from services.denoiser.model.autoencoder import AUTOENCODER_PRESETS, FrameAutoencoder, video_to_tensor
from training.evaluator import analyze
from training.shapes_world import BACKGROUND_PALETTE, PALETTE, SceneSpec, render
from training.tune_decoder import Pairs, TuneConfig, crisp_target, tune, weighted_error

SQUARE = SceneSpec("square", "large", "red", "moves right", "wood", "black", seed=3)


def test_the_target_of_a_rounded_square_is_the_square_drawn_where_the_sample_put_it():
    sample = render(dataclasses.replace(SQUARE, shape="circle")).frames  # what a rippling square reads as
    assert analyze(sample).shape == "circle"
    target = crisp_target(sample, SQUARE)
    truth = render(SQUARE)
    assert analyze(target).shape == "square" and analyze(target).area_cv == 0
    drawn = (target != BACKGROUND_PALETTE["black"]).any(-1)
    overlap = (drawn & truth.masks).sum() / (drawn | truth.masks).sum()
    assert overlap > 0.85  # the same place, to a pixel
    assert set(map(tuple, target.reshape(-1, 3))) == {BACKGROUND_PALETTE["black"], PALETTE["red"]}


def test_the_target_keeps_the_samples_background_and_size_class_where_the_caption_left_them_free():
    drawn = dataclasses.replace(SQUARE, size="small", background="navy")
    target = crisp_target(render(drawn).frames, SQUARE)  # the spec says large on black
    assert tuple(target[0, 0, 0]) == BACKGROUND_PALETTE["navy"]
    assert analyze(target).size == "small"


def test_a_sample_with_a_frame_without_an_object_has_no_target():
    frames = render(SQUARE).frames.copy()
    frames[5] = BACKGROUND_PALETTE["black"]
    assert crisp_target(frames, SQUARE) is None


def test_a_short_tuning_run_lowers_the_decoders_loss_on_its_pairs(tmp_path):
    torch.manual_seed(0)
    ae = FrameAutoencoder(dataclasses.replace(AUTOENCODER_PRESETS["tiny"], temporal_decoder=True))
    circles = [render(dataclasses.replace(SQUARE, shape="circle", seed=s)).frames for s in range(4)]
    squares = [crisp_target(c, SQUARE) for c in circles]
    with torch.no_grad():
        latents = ae.encode(video_to_tensor(np.stack(circles)))  # (4, C, F, h, w); latent_scale is 1
    targets = video_to_tensor(np.stack(squares)).transpose(1, 2)  # (4, F, 3, H, W)
    pairs = Pairs(latents, targets, torch.ones(*targets.shape[:2], 1, *targets.shape[3:]))

    def loss() -> float:
        with torch.no_grad():
            decoded = ae.decode(pairs.latents).transpose(1, 2)
        return weighted_error(decoded, pairs.targets, pairs.weights).item()

    before = loss()
    config = TuneConfig(minutes=10, max_steps=40, lr=3e-3, clips_per_step=2, rendered_per_step=1)
    assert tune(ae, pairs, config, tmp_path)["step"] == 40
    assert loss() < 0.7 * before
    assert (tmp_path / "decoder_tuning.pt").exists()  # resumable
