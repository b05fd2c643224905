"""Kino's frame autoencoder: the latent space the video DiT works in.

Each frame is encoded on its own by a small convolutional network that compresses 4x in height and
width (64x64x3 -> 16x16x4, 12x fewer numbers). Diffusion in this space costs a fraction of pixel space for the same clip,
and the DiT only has to learn what moves where. There is no KL term: the latents are scaled by a
constant measured after training (`latent_scale`) so that they have unit variance, and small noise
is added during training so the decoder forgives the denoiser's small errors.

A decoder may also look across frames (`temporal_decoder`): a residual 3D convolution after each of its
residual blocks, as video models add temporal layers to an image decoder to stop flicker. It is tuned
on the DiT's own samples (`training/tune_decoder.py`), where one frame alone is ambiguous (a rippling
square reads as a circle) and its neighbours are not. Without it each frame decodes on its own.

Pixels are float in [-1, 1]; latents are `(B, C, F, h, w)`, like the DiT's input.

Inference may run in bfloat16 (`for_inference`, `resolve_precision`): the network is convolutions and
SiLUs only, no norms, so it loses little there, and a CPU with bfloat16 units (AMX, AVX512-BF16) decodes
a clip several times faster than in float32. Whatever the precision, `encode` and `decode` take and give
float32, so callers never see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FrameAutoencoderConfig:
    image_channels: int = 3
    latent_channels: int = 4
    widths: tuple[int, ...] = (32, 64, 64)  # channels at 1/2, 1/4, 1/8 of the frame size
    latent_scale: float = 1.0  # latents are multiplied by this after encoding; set after training
    temporal_decoder: bool = False  # a TemporalBlock after each decoder ResBlock

    @property
    def downsample(self) -> int:
        return 2 ** len(self.widths)


AUTOENCODER_PRESETS = {
    "tiny": FrameAutoencoderConfig(latent_channels=4, widths=(8, 8, 8)),
    # 8x: four numbers for every 8x8 pixels could not hold a small object's shape (the round trip read
    # shape right 64% of the time) and the DiT's small errors broke objects into fragments.
    "f8": FrameAutoencoderConfig(latent_channels=4, widths=(32, 64, 64)),
    # 4x, what Kino ships: four numbers for every 4x4 pixels.
    "f4": FrameAutoencoderConfig(latent_channels=4, widths=(48, 96)),
}


Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16), where oneDNN's
    bfloat16 convolutions are fast; elsewhere they are emulated and slower than float32."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype the autoencoder runs in for a precision setting. "auto" is bfloat16 on a CPU with
    bfloat16 units, where it was measured to pay, and float32 elsewhere: on other CPUs, where bfloat16
    convolutions are emulated and slower, and on a GPU, where it has not been measured. ValueError
    names the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"autoencoder precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        native = torch.device(device).type == "cpu" and cpu_has_bfloat16_units()
        return torch.bfloat16 if native else torch.float32
    return getattr(torch, precision)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class TemporalBlock(nn.Module):
    """Mixes each feature with the same place in the neighbouring frames (3x3x3 kernels), residually. The
    last convolution starts at zero, so a decoder gains the block without changing its output."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, F, h, w) -> the same shape."""
        if self.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d):
            x = x.contiguous(memory_format=torch.channels_last_3d)  # see FrameAutoencoder.channels_last
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class FrameAutoencoder(nn.Module):
    def __init__(self, config: FrameAutoencoderConfig):
        super().__init__()
        self.config = config
        w = config.widths
        # The first 2x comes from folding 2x2 pixel blocks into channels, so no convolution runs at
        # full resolution: the frames are flat colour and lose nothing by it, and it halves the cost.
        unshuffled = config.image_channels * 4
        encoder: list[nn.Module] = [
            nn.PixelUnshuffle(2),
            nn.Conv2d(unshuffled, w[0], 3, padding=1),
            ResBlock(w[0]),
        ]
        for i in range(1, len(w)):
            encoder += [nn.Conv2d(w[i - 1], w[i], 4, stride=2, padding=1), ResBlock(w[i])]
        encoder += [nn.SiLU(), nn.Conv2d(w[-1], config.latent_channels, 1)]
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [nn.Conv2d(config.latent_channels, w[-1], 3, padding=1), ResBlock(w[-1])]
        for i in reversed(range(1, len(w))):
            decoder += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(w[i], w[i - 1], 3, padding=1),
                ResBlock(w[i - 1]),
            ]
        decoder += [nn.SiLU(), nn.Conv2d(w[0], unshuffled, 3, padding=1), nn.PixelShuffle(2)]
        self.decoder = nn.Sequential(*decoder)
        # Keyed by the index of the decoder layer each block follows; empty for a per-frame decoder, whose
        # weights stay what they were before temporal blocks existed.
        self.temporal = nn.ModuleDict(
            {
                str(i): TemporalBlock(layer.conv1.in_channels)
                for i, layer in enumerate(decoder)
                if config.temporal_decoder and isinstance(layer, ResBlock)
            }
        )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the network computes in: float32, or what `for_inference` set."""
        return self.encoder[1].weight.dtype

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, F, H, W) in [-1, 1] -> float32 latents (B, C, F, H/d, W/d), d the config's
        downsample, unit variance."""
        B, C, Fr, H, W = video.shape
        video = video.to(self.dtype)
        frames = video.permute(0, 2, 1, 3, 4).reshape(B * Fr, C, H, W)  # (B*F, 3, H, W)
        z = self.encoder(frames).float() * self.config.latent_scale  # (B*F, c, h, w)
        return z.reshape(B, Fr, *z.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, c, F, h, w)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, C, F, h, w) -> float32 video (B, 3, F, H, W), roughly in [-1, 1]."""
        B, C, Fr, h, w = latents.shape
        z = latents.permute(0, 2, 1, 3, 4).reshape(B * Fr, C, h, w) / self.config.latent_scale
        frames = self.decode_frames(z.to(self.dtype), Fr).float()  # (B*F, 3, H, W)
        return frames.reshape(B, Fr, *frames.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, 3, F, H, W)

    def decode_frames(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Unscaled latents (B*F, C, h, w), clip by clip, -> frames (B*F, 3, H, W)."""
        if not self.temporal:
            return self.decoder(z)
        x = z
        for i, layer in enumerate(self.decoder):
            x = layer(x)
            if str(i) in self.temporal:
                clips = x.reshape(-1, num_frames, *x.shape[1:]).transpose(1, 2)  # (B, c, F, h', w')
                x = self.temporal[str(i)](clips).transpose(1, 2).reshape(x.shape)
        return x

    def channels_last(self) -> FrameAutoencoder:
        """Stores every convolution's weights channels-last (in place), for inference: oneDNN's CPU
        convolutions run faster on that layout (on a 2-core Xeon a clip's decode took 53 ms against 71,
        its encode 19 against 22, measured side by side), and the results differ from the default
        layout's in the last bits only (about 1e-6). The temporal blocks then take their input
        channels-last too."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
            elif isinstance(module, nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
        return self

    def for_inference(self, dtype: torch.dtype = torch.float32) -> FrameAutoencoder:
        """Readies the network for sampling, in place: evaluation mode, channels-last weights, and its
        parameters in `dtype` (`resolve_precision`). In bfloat16 on a 2-core Xeon with AMX a clip's
        decode took 11-26 ms against 55-66 in float32, and its pixels moved by 0.1-0.2 of an 8-bit
        level on average, 3 at most (docs/model/NOTES.md). Weights cast to bfloat16 are not the weights of
        record: train and save a float32 copy."""
        return self.eval().channels_last().to(dtype)

    def round_trip(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, C, F, h, w) -> the latents the encoder makes of the frames the decoder draws from
        them (clamped to the pixel range, not rounded to 8 bits: a rounding flip from a last-bit
        difference would grow through later steps). A sampler's restart starts from these
        (`sampler.py`)."""
        return self.encode(self.decode(latents).clamp(-1, 1))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) -> latents (B, C, h, w)."""
        return self.encode(image[:, :, None])[:, :, 0]


def video_to_tensor(frames) -> torch.Tensor:
    """uint8 (B, F, H, W, 3) array or tensor -> float (B, 3, F, H, W) in [-1, 1]."""
    t = torch.as_tensor(frames)
    return t.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def tensor_to_video(video: torch.Tensor) -> torch.Tensor:
    """float (B, 3, F, H, W) in [-1, 1] -> uint8 (B, F, H, W, 3)."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)
