"""Flow-matching Euler sampler: pure math, no per-run state.

The model is trained on the straight path x_t = (1 - t) * x_0 + t * noise, t in [0, 1], and predicts
the velocity v = noise - x_0. Sampling integrates dx/dt = v from t = 1 down to t = 0 on a fixed grid of
`num_steps + 1` times (shifted towards the noisy end, as in SD3). `step` takes the step index as an
argument, one per batch row if need be, so that one sampler serves requests that are at different
steps of their runs in the same batch.

Remix (SDEdit) starts part-way: `start_index(strength)` is the first step to run and
`add_noise(source, noise, index)` is the point on the path where that step begins.

Restart (`restart_steps` r): the last r of the `num_steps` run the end of the schedule again. The main
schedule of num_steps - r steps ends at t = 0 as usual; at `restart_index`, its last step, the caller
takes the clean estimate through the autoencoder (decode, then encode), noises it afresh to the time r
steps before the end (`add_noise(clean, restart_noise(...), restart_index + 1)`), and the sampler's
last r steps take it back to t = 0. Errors the first pass laid down (a frame whose subject swells for
one frame) are noised over and drawn again. The round trip is what makes that work: restarted from its
own latents the shipped model drew the same flicker again (docs/model/NOTES.md); our reading is that
its samples drift off the latents the encoder makes, the only ones it was trained on. The cost is
one decode and one encode; the step count, and so the DiT's work, stays `num_steps`. It applies when the
main schedule keeps at least twice the steps it runs again (num_steps >= 3 r); below that every step is
a main step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplerStep:
    prev_sample: torch.Tensor  # (B, C, F, H, W): latents at the next, less noisy time
    pred_original: torch.Tensor  # (B, C, F, H, W): the current estimate of the clean latents (previews)


class FlowMatchEulerSampler:
    def __init__(self, num_steps: int, shift: float = 1.0, restart_steps: int = 0):
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        if restart_steps < 0:
            raise ValueError(f"restart_steps must be at least 0, got {restart_steps}")
        self.num_steps = num_steps
        self.shift = shift
        self.restart_steps = restart_steps if num_steps >= 3 * restart_steps else 0
        self.main_steps = num_steps - self.restart_steps
        s = torch.linspace(1.0, 0.0, self.main_steps + 1, dtype=torch.float64)
        main = (shift * s / (1 + (shift - 1) * s)).float()  # (main_steps + 1,), 1 -> 0
        # The step that ends the main schedule; None without a restart.
        self.restart_index: int | None = None
        if self.restart_steps:
            self.restart_index = self.main_steps - 1
            # The main schedule up to its last step's start, then its last restart_steps steps again.
            self.sigmas = torch.cat([main[: self.main_steps], main[self.main_steps - self.restart_steps :]])
            self.next_sigmas = self.sigmas[1:].clone()
            self.next_sigmas[self.restart_index] = 0.0  # the main schedule's last step ends at t = 0
        else:
            self.sigmas = main
            self.next_sigmas = main[1:]
        # sigmas: (num_steps + 1,), the time each step starts from (and the end, 0); next_sigmas:
        # (num_steps,), the time each step ends at.

    def timesteps(self, t_index: int | torch.Tensor) -> torch.Tensor:
        """The model's time input at step t_index: (B,) for an index tensor, () for an int."""
        return self.sigmas[t_index]

    def step(self, velocity: torch.Tensor, t_index: int | torch.Tensor, latents: torch.Tensor) -> SamplerStep:
        """One Euler step from sigmas[t_index] to next_sigmas[t_index] (sigmas[t_index + 1] but at
        `restart_index`, whose step ends at t = 0: its prev_sample is the clean estimate to restart from).

        velocity, latents: (B, C, F, H, W). t_index: an int, or a (B,) long tensor with one index per row.
        """
        return euler_step(velocity, latents, self.sigmas[t_index], self.next_sigmas[t_index])

    def restarts_after(self, t_index: int) -> bool:
        """Whether step t_index ends the main schedule: its result goes through the autoencoder and is
        noised again to sigmas[t_index + 1] before the next step (see the module docstring)."""
        return t_index == self.restart_index

    def start_index(self, strength: float) -> int:
        """First step to run for a remix: strength 1 runs every step (the source is ignored), 0 none."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if self.restart_steps:
            raise ValueError("a remix starts part-way through a schedule without a restart")
        return self.num_steps - int(round(strength * self.num_steps))

    def known_frames_start(self, strength: float) -> int:
        """First step of a run whose new frames start from its last known frame
        (`PipelineConfig.known_frames_strength`): strength 1 runs every step from noise, as a run
        without known frames does. Counted like a remix's start, but a restart later in the schedule
        is kept, so the start stays within the main schedule; and a run always takes one step at least."""
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        index = min(self.num_steps - int(round(strength * self.num_steps)), self.num_steps - 1)
        return index if self.restart_index is None else min(index, self.restart_index)

    def add_noise(
        self, clean: torch.Tensor, noise: torch.Tensor, t_index: int | torch.Tensor
    ) -> torch.Tensor:
        """The point on the flow path at sigmas[t_index]: (1 - sigma) * clean + sigma * noise."""
        sigma = _per_row(self.sigmas[t_index], clean)
        return (1 - sigma) * clean + sigma * noise


def run_sampler(num_steps: int, *, shift: float, restart_steps: int, remix: bool) -> FlowMatchEulerSampler:
    """The sampler of one run of a model whose config asks for `restart_steps`: a remix keeps the plain
    schedule (it is a partial schedule already, and its strength counts steps of a plain one)."""
    return FlowMatchEulerSampler(num_steps, shift=shift, restart_steps=0 if remix else restart_steps)


def restart_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise a restart draws for a run started from `seed`: the second draw of the seed's CPU
    generator after the start noise, the same shape (so the pipeline, which keeps drawing from one
    generator, and the engine, which keeps no generator between steps, draw the same)."""
    generator = torch.Generator().manual_seed(seed)
    torch.randn(shape, generator=generator)  # the start noise
    return torch.randn(shape, generator=generator)


def frame_init_noise(
    noise: torch.Tensor, last_known: torch.Tensor, seed: int, cutoff: float, noise_share: float
) -> torch.Tensor:
    """The start noise of a run with known first frames with its low frequencies taken from the last
    known frame (FrameInit, as ConsistI2V does it), so that the new frames start laid out like it.

    noise: (..., C, F, h, w), the run's start noise; last_known: (..., C, 1, h, w), the last known
    frame's latents. The last known frame, in every frame, is noised with the seed's third draw (after
    the start and restart noise) to `noise_share`; a Gaussian low-pass over frames, rows and columns
    (`cutoff` a fraction of the highest frequency) takes that part of it and the rest of `noise`."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):  # the start noise and the restart noise
        torch.randn(noise.shape, generator=generator)
    noised = (1 - noise_share) * last_known.expand_as(noise) + noise_share * torch.randn(
        noise.shape, generator=generator
    )
    dims = (-3, -2, -1)
    f, h, w = (torch.fft.fftfreq(n) / 0.5 for n in noise.shape[-3:])  # 1 at the highest frequency
    distance = f[:, None, None] ** 2 + h[None, :, None] ** 2 + w[None, None, :] ** 2  # (F, h, w)
    low = torch.exp(-distance / (2 * cutoff**2))
    mixed = torch.fft.fftn(noised, dim=dims) * low + torch.fft.fftn(noise, dim=dims) * (1 - low)
    return torch.fft.ifftn(mixed, dim=dims).real.to(noise.dtype)


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
