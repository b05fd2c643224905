"""Flow-matching Euler sampler: pure math, no per-run state.

The model is trained on the straight path x_t = (1 - t) * x_0 + t * noise, t in [0, 1], and predicts
the velocity v = noise - x_0. Sampling integrates dx/dt = v from t = 1 down to t = 0 on a fixed grid of
`num_steps + 1` times (shifted towards the noisy end, as in SD3). `step` takes the step index as an
argument, one per batch row if need be, so that one sampler serves requests that are at different
steps of their runs in the same batch.

Remix (SDEdit) starts part-way: `start_index(strength)` is the first step to run and
`add_noise(source, noise, index)` is the point on the path where that step begins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplerStep:
    prev_sample: torch.Tensor  # (B, C, F, H, W): latents at the next, less noisy time
    pred_original: torch.Tensor  # (B, C, F, H, W): the current estimate of the clean latents (previews)


class FlowMatchEulerSampler:
    def __init__(self, num_steps: int, shift: float = 1.0):
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        self.num_steps = num_steps
        self.shift = shift
        s = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
        self.sigmas = (shift * s / (1 + (shift - 1) * s)).float()  # (num_steps + 1,), 1 -> 0

    def timesteps(self, t_index: int | torch.Tensor) -> torch.Tensor:
        """The model's time input at step t_index: (B,) for an index tensor, () for an int."""
        return self.sigmas[t_index]

    def step(self, velocity: torch.Tensor, t_index: int | torch.Tensor, latents: torch.Tensor) -> SamplerStep:
        """One Euler step from sigmas[t_index] to sigmas[t_index + 1].

        velocity, latents: (B, C, F, H, W). t_index: an int, or a (B,) long tensor with one index per row.
        """
        return euler_step(velocity, latents, self.sigmas[t_index], self.sigmas[torch.as_tensor(t_index) + 1])

    def start_index(self, strength: float) -> int:
        """First step to run for a remix: strength 1 runs every step (the source is ignored), 0 none."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        return self.num_steps - int(round(strength * self.num_steps))

    def add_noise(
        self, clean: torch.Tensor, noise: torch.Tensor, t_index: int | torch.Tensor
    ) -> torch.Tensor:
        """The point on the flow path at sigmas[t_index]: (1 - sigma) * clean + sigma * noise."""
        sigma = _per_row(self.sigmas[t_index], clean)
        return (1 - sigma) * clean + sigma * noise


def euler_step(
    velocity: torch.Tensor, latents: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> SamplerStep:
    """One Euler step from sigma to sigma_next: () tensors, or (B,) with one time per row, so that rows
    of one batch can be at different steps of grids of different lengths.

    velocity, latents: (B, C, F, H, W)."""
    sigma, sigma_next = _per_row(sigma, latents), _per_row(sigma_next, latents)
    return SamplerStep(
        prev_sample=latents + (sigma_next - sigma) * velocity,
        pred_original=latents - sigma * velocity,
    )


def _per_row(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    sigma = sigma.to(like.device, like.dtype)
    return sigma.view(-1, *([1] * (like.dim() - 1))) if sigma.dim() else sigma
