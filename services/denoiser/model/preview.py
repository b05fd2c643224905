"""Previews straight from latents, without the decoder.

A preview only has to show where things are and what colour they are, at a quarter of the frame's size.
The autoencoder's latents already are a small picture (one latent pixel per `downsample` x
`downsample` pixels), so a per-pixel linear map from the latent channels to RGB makes a preview for the
price of a matrix product, where running the decoder on 16 frames costs as much as several denoising
steps. The map is fitted once, when the model loads, by least squares from the latents of synthetic
pictures (flat backdrops with a few flat-coloured boxes and discs) to the same pictures averaged over
each latent pixel's area: it belongs to the autoencoder it was fitted to.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from services.denoiser.model.autoencoder import FrameAutoencoder


def synthetic_pictures(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (count, size, size, 3): random flat backdrops with one to three flat boxes or discs."""
    pictures = np.empty((count, size, size, 3), np.uint8)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    for picture in pictures:
        picture[:] = rng.integers(0, 256, 3)
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(0, size, 2)
            r = rng.uniform(size / 16, size / 4)
            inside = (np.abs(xs - cx) <= r) & (np.abs(ys - cy) <= r)
            if rng.random() < 0.5:
                inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
            picture[inside] = rng.integers(0, 256, 3)
    return pictures


class LatentPreviewer:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight = weight  # (3, C)
        self.bias = bias  # (3,)

    @classmethod
    @torch.inference_mode()
    def fit(cls, autoencoder: FrameAutoencoder, size: int, count: int = 48, seed: int = 0) -> LatentPreviewer:
        """Least squares from latents to area-averaged pixels, over `count` synthetic pictures."""
        pictures = torch.from_numpy(synthetic_pictures(count, size, np.random.default_rng(seed)))
        images = pictures.permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
        device = next(autoencoder.parameters()).device
        latents = autoencoder.encode_image(images.to(device)).cpu()  # (N, C, h, w)
        targets = F.avg_pool2d(images, autoencoder.config.downsample)  # (N, 3, h, w)
        C = latents.shape[1]
        inputs = latents.permute(0, 2, 3, 1).reshape(-1, C)  # (N*h*w, C)
        inputs = torch.cat([inputs, torch.ones(len(inputs), 1)], dim=1)  # (N*h*w, C + 1)
        outputs = targets.permute(0, 2, 3, 1).reshape(-1, 3)  # (N*h*w, 3)
        solution = torch.linalg.lstsq(inputs.double(), outputs.double()).solution.float()  # (C + 1, 3)
        return cls(solution[:C].T.contiguous(), solution[C].contiguous())

    def to(self, device: torch.device | str) -> LatentPreviewer:
        return LatentPreviewer(self.weight.to(device), self.bias.to(device))

    def __call__(self, latents: torch.Tensor, size: int) -> np.ndarray:
        """(C, F, h, w) latents -> uint8 (F, size, size, 3) preview frames."""
        return self.batch(latents[None], size)[0]

    @torch.inference_mode()
    def batch(self, latents: torch.Tensor, size: int) -> np.ndarray:
        """(N, C, F, h, w) latents -> uint8 (N, F, size, size, 3): previews of N clips, one copy back
        from the device. The map is written out channel by channel, elementwise, so a clip's preview
        does not depend on the clips beside it (a matrix product's blocking would)."""
        N, C, Fr, h, w = latents.shape
        rgb = self.bias.view(1, 3, 1, 1, 1).expand(N, 3, Fr, h, w)  # (N, 3, F, h, w)
        for c in range(C):
            rgb = rgb + self.weight[:, c].view(1, 3, 1, 1, 1) * latents[:, c : c + 1].float()
        rgb = rgb.transpose(1, 2).reshape(N * Fr, 3, h, w)  # (N*F, 3, h, w)
        if w != size:
            rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
        pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (N*F, 3, size, size)
        return pixels.permute(0, 2, 3, 1).reshape(N, Fr, size, size, 3).cpu().numpy()
