"""The decoder's temporal blocks: a decoder gains them without changing, and with them a frame's
pixels depend on its neighbours' latents, not on far frames'."""

import dataclasses

import pytest
import torch

from services.denoiser.model.autoencoder import AUTOENCODER_PRESETS, FrameAutoencoder
from services.denoiser.model.weights import IncompatibleWeightsError, load_weights, save_weights

PER_FRAME = AUTOENCODER_PRESETS["tiny"]
TEMPORAL = dataclasses.replace(PER_FRAME, temporal_decoder=True)


def _latents(frames: int = 8) -> torch.Tensor:
    return torch.randn(2, PER_FRAME.latent_channels, frames, 4, 4, generator=torch.Generator().manual_seed(0))


def test_a_decoder_gains_temporal_blocks_without_changing_its_output():
    torch.manual_seed(0)
    per_frame = FrameAutoencoder(PER_FRAME).eval()
    temporal = FrameAutoencoder(TEMPORAL).eval()
    missing = temporal.load_state_dict(per_frame.state_dict(), strict=False).missing_keys
    assert missing and all(key.startswith("temporal.") for key in missing)
    with torch.no_grad():
        assert torch.equal(temporal.decode(_latents()), per_frame.decode(_latents()))


def test_with_temporal_blocks_a_frame_depends_on_its_neighbours_and_not_on_far_frames():
    torch.manual_seed(0)
    ae = FrameAutoencoder(TEMPORAL).eval()
    for block in ae.temporal.values():  # trained blocks are not zero
        torch.nn.init.normal_(block.conv2.weight, std=0.05)
    z = _latents(frames=16)
    changed = z.clone()
    changed[:, :, 3] += 1.0
    with torch.no_grad():
        before, after = ae.decode(z), ae.decode(changed)
    moved = (after - before).abs().amax(dim=(0, 1, 3, 4))  # (F,)
    assert moved[4] > 0 and moved[2] > 0  # neighbours
    reach = 2 * len(ae.temporal)  # each block's two 3-frame convolutions reach two frames each way
    assert moved[3 + reach] > 0 and moved[3 + reach + 1 :].max() == 0
    per_frame = FrameAutoencoder(PER_FRAME).eval()
    with torch.no_grad():
        alone = (per_frame.decode(changed) - per_frame.decode(z)).abs().amax(dim=(0, 1, 3, 4))
    assert alone[4] == 0 and alone[3] > 0


def test_temporal_decoder_weights_do_not_load_into_a_per_frame_config(tmp_path):
    save_weights(FrameAutoencoder(TEMPORAL), tmp_path / "ae.safetensors")
    with pytest.raises(IncompatibleWeightsError, match="temporal"):
        load_weights(FrameAutoencoder(PER_FRAME), tmp_path / "ae.safetensors")


def test_channels_last_weights_give_the_same_frames_and_latents_to_float_rounding():
    torch.manual_seed(0)
    plain = FrameAutoencoder(TEMPORAL).eval()
    with torch.no_grad():
        for parameter in plain.parameters():  # the temporal blocks start at zero: make them count
            parameter.add_(0.05 * torch.randn_like(parameter))
    fast = FrameAutoencoder(TEMPORAL).eval()
    fast.load_state_dict(plain.state_dict())
    fast.channels_last()
    assert all(
        m.weight.is_contiguous(memory_format=torch.channels_last_3d)
        for m in fast.modules()
        if isinstance(m, torch.nn.Conv3d)
    )
    with torch.no_grad():
        video = plain.decode(_latents())
        torch.testing.assert_close(fast.decode(_latents()), video, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast.encode(video), plain.encode(video), atol=1e-5, rtol=1e-5)
