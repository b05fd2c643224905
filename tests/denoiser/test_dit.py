import dataclasses

import pytest
import torch

from services.denoiser.model.autoencoder import AUTOENCODER_PRESETS, FrameAutoencoder
from services.denoiser.model.dit import VIDEO_DIT_PRESETS, VideoDiT, grow_depth
from services.denoiser.model.weights import IncompatibleWeightsError, load_weights, save_weights

TINY = VIDEO_DIT_PRESETS["tiny"]


def _inputs(batch=2, seed=0, text_len=5):
    g = torch.Generator().manual_seed(seed)
    C, Fr, S = TINY.latent_channels, TINY.num_frames, TINY.latent_size
    x = torch.randn(batch, C, Fr, S, S, generator=g)
    t = torch.rand(batch, generator=g)
    tokens = torch.randn(batch, text_len, TINY.text_dim, generator=g)
    mask = torch.ones(batch, text_len, dtype=torch.bool)
    return x, t, tokens, mask


def _perturbed(model: VideoDiT) -> VideoDiT:
    """AdaLN-Zero makes a fresh model output zeros; give every parameter a little signal."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_fresh_model_predicts_zero_velocity_because_outputs_start_at_zero(tiny_dit):
    x, t, tokens, mask = _inputs()
    assert torch.count_nonzero(tiny_dit(x, t, tokens, mask)) == 0


def test_forward_keeps_the_latent_shape(tiny_dit):
    x, t, tokens, mask = _inputs(batch=3)
    assert tiny_dit(x, t, tokens, mask).shape == x.shape


def test_numeric_slice_is_pinned_for_a_fixed_seed(tiny_dit):
    model = _perturbed(tiny_dit)
    x, t, tokens, mask = _inputs()
    with torch.no_grad():
        out = model(x, t, tokens, mask)
    expected = torch.tensor(EXPECTED_SLICE)
    assert torch.allclose(out[0, 0, 0].flatten()[:16], expected, atol=1e-4), (
        out[0, 0, 0].flatten()[:16].tolist()
    )


def test_same_seed_and_inputs_give_identical_outputs():
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = _perturbed(VideoDiT(TINY)).eval()
        with torch.no_grad():
            outs.append(model(*_inputs()))
    assert torch.equal(outs[0], outs[1])


def test_padding_tokens_do_not_change_the_prediction(tiny_dit):
    model = _perturbed(tiny_dit)
    x, t, tokens, mask = _inputs(batch=1, text_len=4)
    padded = torch.cat([tokens, torch.randn(1, 3, TINY.text_dim)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(x, t, tokens, mask), model(x, t, padded, padded_mask), atol=1e-5)


def test_reference_only_matters_for_rows_that_have_one(tiny_dit):
    model = _perturbed(tiny_dit)
    x, t, tokens, mask = _inputs()
    ref = torch.randn(2, TINY.latent_channels, TINY.latent_size, TINY.latent_size)
    with torch.no_grad():
        plain = model(x, t, tokens, mask)
        with_ref = model(x, t, tokens, mask, reference=ref, reference_mask=torch.tensor([True, False]))
    assert not torch.allclose(plain[0], with_ref[0], atol=1e-5)
    assert torch.allclose(plain[1], with_ref[1], atol=1e-5)


def test_a_grown_model_computes_what_it_grew_from_with_a_reference_and_known_frames(tiny_dit):
    model = _perturbed(tiny_dit).eval()
    grown = grow_depth(model, TINY.depth + 3).eval()
    x, t, tokens, mask = _inputs()
    conditioning = {
        "known_latents": torch.randn_like(x),
        "known_mask": torch.ones(x.shape[0], 1, x.shape[2], 1, 1),
        "reference": torch.randn(x.shape[0], TINY.latent_channels, TINY.latent_size, TINY.latent_size),
        "reference_mask": torch.tensor([True, False]),
    }
    with torch.no_grad():
        before, after = model(x, t, tokens, mask, **conditioning), grown(x, t, tokens, mask, **conditioning)
    assert grown.config.depth == TINY.depth + 3 and len(grown.blocks) == TINY.depth + 3
    assert torch.allclose(before, after, atol=1e-6)


def test_the_new_blocks_of_a_grown_model_learn_from_their_first_step(tiny_dit):
    grown = grow_depth(_perturbed(tiny_dit), TINY.depth + 1)
    x, t, tokens, mask = _inputs()
    grown(x, t, tokens, mask).square().mean().backward()
    new_block = grown.blocks[1]  # interleaved: the first old block, then a new one
    assert new_block.adaLN_modulation[-1].weight.grad.abs().sum() > 0
    assert new_block.cross_attn.proj.weight.grad.abs().sum() > 0


def test_the_shifted_token_grid_pairs_other_frames_and_returns_the_clips_own_frames(tiny_dit):
    model = _perturbed(tiny_dit).eval()
    x, t, tokens, mask = _inputs()
    with torch.no_grad():
        usual, shifted = model(x, t, tokens, mask), model(x, t, tokens, mask, shift_tokens=True)
        # Frames 1 and 2 share a token on the shifted grid only: a change to frame 2 alone reaches
        # frame 1's output through that token's own patch there, and through attention alone on the
        # usual grid, so it moves frame 1 far more on the shifted grid.
        nudged = x.clone()
        nudged[:, :, 2] += 1.0
        moved_usual = (model(nudged, t, tokens, mask) - usual)[:, :, 1].abs().mean()
        moved_shifted = (model(nudged, t, tokens, mask, shift_tokens=True) - shifted)[:, :, 1].abs().mean()
    assert shifted.shape == x.shape and torch.isfinite(shifted).all()
    assert moved_shifted > 2 * moved_usual


def test_tokens_of_an_odd_number_of_frames_have_no_shifted_grid():
    model = VideoDiT(dataclasses.replace(TINY, patch_size=(1, 2, 2)))
    with pytest.raises(ValueError, match="no half-token shift"):
        model(*_inputs(), shift_tokens=True)


def test_the_space_shifted_grid_pairs_other_columns_and_returns_the_clips_own_pixels(tiny_dit):
    model = _perturbed(tiny_dit).eval()
    x, t, tokens, mask = _inputs()
    with torch.no_grad():
        usual = model(x, t, tokens, mask)
        shifted = model(x, t, tokens, mask, shift_space=True)
        both = model(x, t, tokens, mask, shift_tokens=True, shift_space=True)
        # Latent columns 1 and 2 share a token on the space-shifted grid only (2x2 patches).
        nudged = x.clone()
        nudged[..., 2] += 1.0
        moved_usual = (model(nudged, t, tokens, mask) - usual)[..., 1].abs().mean()
        moved_shifted = (model(nudged, t, tokens, mask, shift_space=True) - shifted)[..., 1].abs().mean()
    for out in (shifted, both):
        assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(shifted, usual) and not torch.allclose(both, shifted)
    assert moved_shifted > 2 * moved_usual


def test_on_the_space_shifted_grid_a_reference_is_cut_on_the_frames_grid(tiny_dit):
    model = _perturbed(tiny_dit).eval()
    x, t, tokens, mask = _inputs()
    reference = torch.randn(2, TINY.latent_channels, TINY.latent_size, TINY.latent_size)
    with torch.no_grad():
        reference_tokens = []
        model.ref_embedder.register_forward_hook(lambda module, args, out: reference_tokens.append(out))
        with_reference = model(
            x, t, tokens, mask, reference=reference, reference_mask=torch.ones(2, dtype=torch.bool),
            shift_space=True,
        )  # fmt: skip
    grid = TINY.latent_size // TINY.patch_size[1] + 1  # one more row and column of tokens
    assert reference_tokens[0].shape[-2:] == (grid, grid)
    assert with_reference.shape == x.shape and torch.isfinite(with_reference).all()


def test_tokens_of_an_odd_number_of_latent_pixels_have_no_space_shifted_grid():
    model = VideoDiT(dataclasses.replace(TINY, latent_size=9, patch_size=(2, 3, 3)))
    x, t, tokens, mask = _inputs()
    x = torch.nn.functional.pad(x, (0, 1, 0, 1))  # 9x9 latents
    with pytest.raises(ValueError, match="no half-token shift"):
        model(x, t, tokens, mask, shift_space=True)


def test_growing_to_fewer_blocks_is_refused(tiny_dit):
    with pytest.raises(ValueError, match="cannot grow a model of depth 2 to depth 1"):
        grow_depth(tiny_dit, 1)


def test_guidance_scale_one_is_the_conditional_prediction(tiny_dit):
    model = _perturbed(tiny_dit)
    x, t, tokens, mask = _inputs()
    with torch.no_grad():
        assert torch.allclose(
            model.forward_with_cfg(x, t, tokens, mask, 1.0), model(x, t, tokens, mask), atol=1e-5
        )


def test_loading_weights_of_another_config_names_the_parameter_and_both_shapes(tmp_path, tiny_dit):
    save_weights(tiny_dit, tmp_path / "dit.safetensors")
    wider = VideoDiT(dataclasses.replace(TINY, hidden_size=48))
    with pytest.raises(IncompatibleWeightsError) as raised:
        load_weights(wider, tmp_path / "dit.safetensors")
    error = raised.value
    assert error.parameter in str(error)
    assert 48 in error.expected and 32 in error.found
    assert str(error.expected) in str(error) and str(error.found) in str(error)


def test_loading_weights_with_a_missing_parameter_is_refused(tmp_path, tiny_dit):
    save_weights(tiny_dit, tmp_path / "dit.safetensors")
    deeper = VideoDiT(dataclasses.replace(TINY, depth=3))
    with pytest.raises(IncompatibleWeightsError, match="blocks.2") as raised:
        load_weights(deeper, tmp_path / "dit.safetensors")
    assert raised.value.found is None


def test_autoencoder_compresses_eight_times_and_decodes_back_to_the_frame_shape():
    ae = FrameAutoencoder(AUTOENCODER_PRESETS["tiny"])
    video = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    latents = ae.encode(video)
    assert latents.shape == (2, 4, 16, 8, 8)
    assert ae.decode(latents).shape == video.shape


def test_a_short_training_run_lowers_the_flow_matching_loss():
    from training.train_video import TrainConfig, flow_matching_loss

    torch.manual_seed(0)
    model = VideoDiT(dataclasses.replace(TINY, num_frames=4, latent_size=4))
    g = torch.Generator().manual_seed(0)
    # A learnable toy task: every clip is a constant whose sign the caption gives away.
    sign = torch.tensor([1.0, -1.0]).repeat(4)
    batch = {
        "latents": sign.view(8, 1, 1, 1, 1).expand(8, 4, 4, 4, 4).clone(),
        "references": torch.zeros(8, 4, 4, 4),
        "tokens": sign.view(8, 1, 1).expand(8, 3, TINY.text_dim).clone(),
        "token_mask": torch.ones(8, 3, dtype=torch.bool),
        "generic_tokens": torch.zeros(8, 3, TINY.text_dim),
        "generic_mask": torch.ones(8, 3, dtype=torch.bool),
        "paths": torch.full((8, 4, 2), 0.5),
    }
    config = TrainConfig(caption_dropout=0.0, reference_prob=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = flow_matching_loss(model, batch, g, config)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def _zero_batch(rows: int, frames: int, size: int, path: float) -> dict[str, torch.Tensor]:
    """A training batch of all-zero clips (rows, 4, frames, size, size) whose subject path stays at
    (path, path): what the loss-weight tests feed `flow_matching_loss`."""
    return {
        "latents": torch.zeros(rows, 4, frames, size, size),
        "references": torch.zeros(rows, 4, size, size),
        "tokens": torch.zeros(rows, 3, TINY.text_dim),
        "token_mask": torch.ones(rows, 3, dtype=torch.bool),
        "generic_tokens": torch.zeros(rows, 3, TINY.text_dim),
        "generic_mask": torch.ones(rows, 3, dtype=torch.bool),
        "paths": torch.full((rows, frames, 2), path),
    }


class _OffByOne(torch.nn.Module):
    """A stand-in predictor for clips of zeros: exact (noise = x_t / t) except one latent cell, off by 1."""

    def __init__(self, cell: tuple[int, int]):
        super().__init__()
        self.cell = cell

    def null_text_tokens(self, batch: int, length: int):
        return torch.zeros(batch, length, TINY.text_dim), torch.ones(batch, length, dtype=torch.bool)

    def forward(self, xt, t, *args, **kwargs):
        v = xt / t.view(-1, 1, 1, 1, 1)
        v[..., self.cell[0], self.cell[1]] += 1.0
        return v


def test_the_subject_loss_weight_counts_the_subject_cells_more_than_the_backdrop():
    from training.train_video import TrainConfig, flow_matching_loss

    batch = _zero_batch(2, 4, 8, path=0.5 + 0.5 / 8)  # the path at the centre of latent cell (4, 4)
    plain = TrainConfig(caption_dropout=0.0, reference_prob=0.0, known_frames_prob=0.0, path_prob=0.0)
    weighted = dataclasses.replace(plain, subject_loss_weight=4.0)

    def loss(model, config):
        return flow_matching_loss(model, batch, torch.Generator().manual_seed(0), config).item()

    on_subject, on_backdrop = _OffByOne((4, 4)), _OffByOne((0, 0))
    # The plain mean: one wrong cell of 64 costs 1/64 wherever it is.
    assert loss(on_subject, plain) == pytest.approx(1 / 64, rel=1e-4)
    assert loss(on_backdrop, plain) == pytest.approx(1 / 64, rel=1e-4)
    # Weighted: the same error costs more on the subject than on the backdrop.
    assert loss(on_subject, weighted) > 3 * loss(on_backdrop, weighted)


def test_seam_frames_are_the_first_two_after_the_known_ones_and_none_without_known_frames():
    from training.train_video import seam_frames

    marks = seam_frames(torch.tensor([0, 1, 3, 7]), 8)
    assert marks.tolist() == [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ]


class _OffByOneFrame(_OffByOne):
    """Exact except one frame, off by 1 everywhere in it."""

    def __init__(self, frame: int):
        super().__init__((0, 0))
        self.frame = frame

    def forward(self, xt, t, *args, **kwargs):
        v = xt / t.view(-1, 1, 1, 1, 1)
        v[:, :, self.frame] += 1.0
        return v


def test_the_seam_loss_weight_counts_the_frames_after_known_ones_more_than_later_frames():
    from training.train_video import TrainConfig, flow_matching_loss

    batch = _zero_batch(64, 8, 4, path=0.5)
    plain = TrainConfig(caption_dropout=0.0, reference_prob=0.0, known_frames_prob=1.0, path_prob=0.0)
    weighted = dataclasses.replace(plain, seam_loss_weight=4.0)

    def loss(model, config):
        return flow_matching_loss(model, batch, torch.Generator().manual_seed(0), config).item()

    # Rows know 1..4 of the 8 frames, so frame 4 is always made and often right after the known ones;
    # frame 7 is always made and never a seam frame.
    at_seam, late = _OffByOneFrame(4), _OffByOneFrame(7)
    assert loss(at_seam, plain) == pytest.approx(loss(late, plain), rel=1e-4)
    assert loss(at_seam, weighted) > 1.5 * loss(late, weighted)


# model(...)[0, 0, 0].flatten()[:16] for the perturbed tiny model above, seed 0.
EXPECTED_SLICE = [
    0.20969,
    -0.37747,
    -0.27178,
    -0.47323,
    -0.42066,
    -0.34312,
    -0.01388,
    -0.5037,
    0.1586,
    0.10985,
    0.26606,
    0.01662,
    0.35557,
    0.12962,
    0.46462,
    0.02246,
]


def test_the_subject_path_is_an_input_and_a_model_without_one_refuses_it(tiny_dit):
    from services.denoiser.model.paths import path_heatmap

    model = _perturbed(tiny_dit)
    x, t, tokens, mask = _inputs()
    B, _, Fr, H, _ = x.shape
    path = path_heatmap(torch.full((B, Fr, 2), 0.25), H)  # (B, 1, F, H, W)
    with torch.no_grad():
        assert not torch.equal(model(x, t, tokens, mask), model(x, t, tokens, mask, path_map=path))
        # No path is the same as an all-zero map: rows without one in a batch are unaffected.
        assert torch.equal(
            model(x, t, tokens, mask), model(x, t, tokens, mask, path_map=torch.zeros_like(path))
        )
    blind = VideoDiT(dataclasses.replace(TINY, path_input=False))
    with pytest.raises(ValueError, match="no path input"):
        blind(x, t, tokens, mask, path_map=path)


def test_guiding_towards_the_path_leaves_it_out_of_the_unconditional_half(tiny_dit):
    from services.denoiser.model.paths import path_heatmap

    model = _perturbed(tiny_dit)
    x, t, tokens, mask = _inputs()
    B, _, Fr, H, _ = x.shape
    path = path_heatmap(torch.full((B, Fr, 2), 0.25), H)  # (B, 1, F, H, W)
    null_tokens, null_mask = model.null_text_tokens(B, tokens.shape[1])
    with torch.no_grad():
        v_cond = model(x, t, tokens, mask, path_map=path)
        v_uncond = model(x, t, null_tokens, null_mask)  # neither prompt nor path
        guided = model.forward_with_cfg(x, t, tokens, mask, 3.0, guide_path=True, path_map=path)
        in_both = model.forward_with_cfg(x, t, tokens, mask, 3.0, path_map=path)
    torch.testing.assert_close(guided, v_uncond + 3.0 * (v_cond - v_uncond), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(guided, in_both)
