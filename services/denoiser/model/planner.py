"""The path planner: where the subject goes, from the prompt, before the DiT draws it.

Text-to-video in two stages, as layout-guided video diffusion does it: a small flow-matching model
samples the subject's path (its centre in each frame, `(F, 2)` fractions of the frame) from the prompt,
and the DiT renders the clip along that path through its path input (`paths.py`). Left to invent the
layout itself from pure noise, the DiT broke the object into fragments that each went their own way;
given a path it draws one object that follows it. The planner is the part that knows what "bouncing on
the floor" looks like as a trajectory, and it is cheap: an MLP over 32 numbers.

* Input: the noisy path `(B, F, 2)` flattened, the flow time, and the prompt's mean-pooled token
  embeddings (a learned null vector stands for a dropped prompt, for guidance).
* Output: the flow-matching velocity of the path, as the DiT's (`sampler.py` integrates it).

Used only where the request leaves the layout free: no path of its own, no known first frames, no
source video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from services.denoiser.model.sampler import FlowMatchEulerSampler


@dataclass(frozen=True)
class PathPlannerConfig:
    num_frames: int = 16
    text_dim: int = 384
    hidden_size: int = 256
    depth: int = 4
    steps: int = 20  # Euler steps when sampling a path
    guidance_scale: float = 2.0


class ResidualBlock(nn.Module):
    """LayerNorm, MLP, residual; modulated by the time and text embedding (AdaLN, as the DiT)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 3 * hidden))
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(c).chunk(3, dim=-1)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class PathPlanner(nn.Module):
    def __init__(self, config: PathPlannerConfig):
        super().__init__()
        self.config = config
        D, P = config.hidden_size, 2 * config.num_frames
        self.frequencies = nn.Parameter(
            torch.exp(-math.log(1000) * torch.arange(32) / 32), requires_grad=False
        )
        self.time_embed = nn.Sequential(nn.Linear(64, D), nn.SiLU(), nn.Linear(D, D))
        self.text_norm = nn.LayerNorm(config.text_dim, elementwise_affine=False)
        self.text_embed = nn.Sequential(nn.Linear(config.text_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.null_text = nn.Parameter(torch.zeros(config.text_dim))
        self.path_in = nn.Linear(P, D)
        self.blocks = nn.ModuleList([ResidualBlock(D) for _ in range(config.depth)])
        self.out = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, P))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def pooled_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, text_dim), mask bool (B, L) -> (B, text_dim), the mean of the real tokens."""
        weights = mask.unsqueeze(-1).float()
        return (self.text_norm(tokens) * weights).sum(1) / weights.sum(1).clamp(min=1)

    def forward(self, path: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """path (B, F, 2) noisy, t (B,) in [0, 1], text (B, text_dim) pooled -> velocity (B, F, 2)."""
        B = path.shape[0]
        args = t.float()[:, None] * 1000 * self.frequencies[None]  # (B, 32)
        c = self.time_embed(torch.cat([args.sin(), args.cos()], dim=1)) + self.text_embed(text)  # (B, D)
        h = self.path_in(path.reshape(B, -1))  # (B, D)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h).view_as(path)

    @torch.inference_mode()
    def sample(self, tokens: np.ndarray, seed: int) -> np.ndarray:
        """A path for one prompt: tokens float (L, text_dim) -> float32 (F, 2), clipped to the frame.
        Seeded: the same prompt and seed give the same path."""
        cfg = self.config
        text = self.pooled_text(
            torch.tensor(np.asarray(tokens, np.float32))[None],
            torch.ones(1, len(tokens), dtype=torch.bool),
        )
        null = self.text_norm(self.null_text)[None]
        # Paths live around the frame's centre: the flow runs on (path - 0.5) * 4, about unit scale.
        x = torch.randn((1, cfg.num_frames, 2), generator=torch.Generator().manual_seed(seed))
        sampler = FlowMatchEulerSampler(cfg.steps)
        for i in range(cfg.steps):
            t = sampler.timesteps(i).expand(2)
            v_cond, v_null = self.forward(torch.cat([x, x]), t, torch.cat([text, null])).chunk(2)
            v = v_null + cfg.guidance_scale * (v_cond - v_null)
            x = sampler.step(v, i, x).prev_sample
        return (x[0] / 4 + 0.5).clamp(0.0, 1.0).numpy().astype(np.float32)


def to_flow_space(path: torch.Tensor) -> torch.Tensor:
    """(B, F, 2) fractions of the frame -> the planner's flow space (unit scale around the centre)."""
    return (path - 0.5) * 4
