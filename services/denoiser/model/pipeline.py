"""Text (and optional pictures) to video with Kino's shipped model: the entry point for the denoiser.

The numbered steps of `VideoPipeline.generate` follow diffusers: check inputs, conditioning, timesteps,
initial latents, the denoising loop, decode. The model (`dit.py`), the sampler (`sampler.py`) and the
autoencoder (`autoencoder.py`) are separate components; this class only orchestrates them for one
request. The step-batching engine drives the same components itself, one step at a time.

Weights live in one directory: `config.json`, `dit.safetensors`, `autoencoder.safetensors`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from services.denoiser.model.autoencoder import (
    FrameAutoencoder,
    FrameAutoencoderConfig,
    Precision,
    resolve_precision,
    tensor_to_video,
    video_to_tensor,
)
from services.denoiser.model.camera import CameraMotion, apply_camera
from services.denoiser.model.dit import VideoDiT, VideoDiTConfig
from services.denoiser.model.paths import default_path, path_heatmap, stays_still
from services.denoiser.model.planner import PathPlanner, PathPlannerConfig
from services.denoiser.model.sampler import (
    FlowMatchEulerSampler,
    frame_init_noise,
    restart_noise,
    run_sampler,
)
from services.denoiser.model.weights import load_weights, save_weights

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


@dataclass(frozen=True)
class PipelineConfig:
    dit: VideoDiTConfig
    autoencoder: FrameAutoencoderConfig
    name: str = "kino-shapes-dit"
    version: str = "1"
    fps: float = 8.0
    default_steps: int = 20
    max_steps: int = 100
    default_guidance_scale: float = 4.0
    sampler_shift: float = 1.0
    # The last this many of a run's steps run the end of the schedule again from the first pass's
    # result taken through the autoencoder and noised afresh (`sampler.py`); a remix never restarts.
    restart_steps: int = 0
    # With known first frames (image-to-video, extend), the new frames start from the last known frame
    # noised to this strength (`FlowMatchEulerSampler.known_frames_start`) instead of from noise at the
    # first step. From noise the DiT draws a subject at rest a fifth smaller in the first new frame and
    # grows it back, a jump at every extension's seam; 0.9 removed those jumps but cost bouncing
    # subjects some shape and tracking (docs/model/NOTES.md). 1 starts from noise. The shipped config
    # sets 0.9 with `known_frames_start_still_only`.
    known_frames_strength: float = 1.0
    # Only where the subject path (given or planned) keeps the subject at rest over the new frames
    # (`paths.stays_still`): the case the part-way start fixes, without its cost to moving subjects.
    known_frames_start_still_only: bool = False
    # With known first frames and no source video, the start noise's low frequencies come from the last
    # known frame noised to `frame_init_noise_share` (`sampler.frame_init_noise`; FrameInit), under a
    # Gaussian low-pass of this cutoff (a fraction of the highest frequency); 0 leaves the noise as drawn.
    # At 0.5 / 0.5 it removed resting subjects' seam jumps and lost moving subjects (docs/model/NOTES.md).
    frame_init_cutoff: float = 0.0
    frame_init_noise_share: float = 0.5
    # Odd sampling steps run the DiT on the token grid shifted by half a token (`VideoDiT.forward`'s
    # shift_tokens): sampled on one grid, the DiT moves its subject once per two-frame token.
    alternate_token_grid: bool = False
    # Every other pair of steps also runs on the grid shifted half a token in space (`VideoDiT.forward`'s
    # shift_space), so no token boundary stays where the subject is drawn.
    alternate_space_grid: bool = False
    # The subject path (given or planned) in the conditional half of guidance only, as the reference
    # image is (`VideoDiT.forward_with_cfg`'s guide_path): guidance then pushes the subject onto its path
    # as well as towards the prompt. Training drops the path from 70% of rows, so the DiT knows both
    # halves. On 30 chains of a minute it kept every segment's look in 29 chains against 23, and
    # small subjects no longer faded (docs/model/NOTES.md); it costs nothing, the halves are run anyway.
    path_guidance: bool = False
    planner: PathPlannerConfig | None = None  # plans the subject's path where a request leaves it free
    training: dict = field(default_factory=dict)  # how the weights were made, for the record

    def token_grid(self, step_index: int) -> TokenGrid:
        """The token grid sampling step `step_index` runs the DiT on."""
        return token_grid(
            step_index,
            alternate_token_grid=self.alternate_token_grid,
            alternate_space_grid=self.alternate_space_grid,
        )

    @property
    def downsample(self) -> int:
        return self.autoencoder.downsample

    @property
    def frame_size(self) -> int:
        return self.dit.latent_size * self.downsample

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PipelineConfig:
        data = dict(data)
        dit = dict(data.pop("dit"))
        dit["patch_size"] = tuple(dit["patch_size"])
        autoencoder = dict(data.pop("autoencoder"))
        autoencoder["widths"] = tuple(autoencoder["widths"])
        planner = data.pop("planner", None)
        return cls(
            dit=VideoDiTConfig(**dit),
            autoencoder=FrameAutoencoderConfig(**autoencoder),
            planner=None if planner is None else PathPlannerConfig(**planner),
            **data,
        )


class GenerationCancelled(Exception):
    """`should_cancel` returned True; no more steps were run."""


@dataclass(frozen=True)
class StepInfo:
    """What the per-step callback sees after each step."""

    step: int  # steps done in this run, 1..total_steps
    total_steps: int
    pred_original: torch.Tensor  # (1, C, F, h, w): the current estimate of the clean latents

    def preview(self, pipeline: VideoPipeline) -> np.ndarray:
        """uint8 (F, H, W, 3): the current estimate decoded, for previews."""
        return pipeline.decode(self.pred_original)[0]


@dataclass(frozen=True)
class VideoPipelineOutput:
    frames: np.ndarray  # uint8 (F, H, W, 3), RGB
    fps: float
    model: str


def known_frames_first_step(
    config: PipelineConfig, sampler: FlowMatchEulerSampler, path: np.ndarray | None, known_frames: int
) -> int:
    """The first step of a run with `known_frames` known first frames and no source video: part-way
    (`FlowMatchEulerSampler.known_frames_start` of `config.known_frames_strength`), or 0 where
    `config.known_frames_start_still_only` asks for a subject at rest and `path` does not keep it
    (`paths.stays_still`). The pipeline and the servicer both decide here."""
    if config.known_frames_start_still_only and not stays_still(path, known_frames):
        return 0
    return sampler.known_frames_start(config.known_frames_strength)


class VideoPipeline:
    def __init__(
        self,
        config: PipelineConfig,
        dit: VideoDiT,
        autoencoder: FrameAutoencoder,
        planner: PathPlanner | None = None,
        *,
        autoencoder_precision: Precision = "auto",
    ):
        """Takes the components over for sampling: the autoencoder runs in `autoencoder_precision`
        (`autoencoder.resolve_precision`; "auto" is bfloat16 on a CPU with bfloat16 units), converted
        in place, so code that trains or saves the autoencoder loads it with "float32"."""
        self.config = config
        self.dit = dit.eval()
        self.autoencoder = autoencoder.for_inference(resolve_precision(autoencoder_precision))
        self.planner = None if planner is None else planner.eval().requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls, weights_dir: str | Path = DEFAULT_WEIGHTS_DIR, *, autoencoder_precision: Precision = "auto"
    ) -> VideoPipeline:
        """Loads config.json and the two safetensors files; refuses weights that do not fit the config
        with `IncompatibleWeightsError`."""
        weights_dir = Path(weights_dir)
        config = PipelineConfig.from_json(json.loads((weights_dir / "config.json").read_text()))
        dit = VideoDiT(config.dit)
        load_weights(dit, weights_dir / "dit.safetensors")
        autoencoder = FrameAutoencoder(config.autoencoder)
        load_weights(autoencoder, weights_dir / "autoencoder.safetensors")
        planner = None
        if config.planner is not None:
            planner = PathPlanner(config.planner)
            load_weights(planner, weights_dir / "planner.safetensors")
        logger.info(
            "loaded %s v%s from %s: DiT %.2fM parameters, autoencoder %.2fM",
            config.name,
            config.version,
            weights_dir,
            sum(p.numel() for p in dit.parameters()) / 1e6,
            sum(p.numel() for p in autoencoder.parameters()) / 1e6,
        )
        return cls(config, dit, autoencoder, planner, autoencoder_precision=autoencoder_precision)

    @property
    def model_name(self) -> str:
        return f"{self.config.name}-v{self.config.version}"

    def sampler(self, num_steps: int, remix: bool = False) -> FlowMatchEulerSampler:
        """The sampler of a run with the model's shift and restart (`sampler.run_sampler`)."""
        cfg = self.config
        return run_sampler(num_steps, shift=cfg.sampler_shift, restart_steps=cfg.restart_steps, remix=remix)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(C, F, h, w) of one clip's latents."""
        d = self.config.dit
        return (d.latent_channels, d.num_frames, d.latent_size, d.latent_size)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (F, H, W, 3) -> latents (1, C, F, h, w)."""
        return self.autoencoder.encode(video_to_tensor(frames[None]))

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents (B, C, F, h, w) -> uint8 (B, F, H, W, 3)."""
        return tensor_to_video(self.autoencoder.decode(latents)).numpy()

    @torch.inference_mode()
    def generate(
        self,
        text_tokens: np.ndarray,
        *,
        seed: int,
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        first_frames: np.ndarray | None = None,
        reference_image: np.ndarray | None = None,
        source_video: np.ndarray | None = None,
        strength: float = 0.7,
        subject_path: np.ndarray | None = None,
        camera: tuple[CameraMotion, float] | None = None,
        plan_path: bool = True,
        on_step: Callable[[StepInfo], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> VideoPipelineOutput:
        """One clip from a prompt's token embeddings.

        text_tokens: float32 (L, 384), the text encoder's tokens for the prompt.
        first_frames: uint8 (K, H, W, 3), K < F: frames the clip starts with (image-to-video, extend).
        reference_image: uint8 (H, W, 3): the subject's appearance (cameo).
        source_video: uint8 (F, H, W, 3): remix it; strength 0 keeps it, 1 ignores it.
        subject_path: float (F, 2): where the subject should be in each frame, fractions of the frame.
        camera: (motion, amount): a camera move over the generated scene (`camera.py`).
        plan_path: where the request sends no subject path, choose one: a remix follows its source's
        (`paths.default_path`); otherwise the planner plans it (`planner.py`; after first frames,
        continuing from them), if the model has one.
        on_step: called after every step. should_cancel: checked before every step; True raises
        GenerationCancelled.
        """
        # 1. Inputs.
        cfg = self.config
        num_steps = cfg.default_steps if num_steps is None else num_steps
        guidance_scale = cfg.default_guidance_scale if guidance_scale is None else guidance_scale
        C, Fr, h, w = self.latent_shape
        size = cfg.frame_size
        if text_tokens.ndim != 2 or text_tokens.shape[1] != cfg.dit.text_dim:
            raise ValueError(f"text_tokens must be (L, {cfg.dit.text_dim}), got {text_tokens.shape}")
        if not 1 <= num_steps <= cfg.max_steps:
            raise ValueError(f"num_steps must be in 1..{cfg.max_steps}, got {num_steps}")
        for name, array, frames in (("first_frames", first_frames, None), ("source_video", source_video, Fr)):
            if array is not None and (array.ndim != 4 or array.shape[1:] != (size, size, 3)):
                raise ValueError(f"{name} must be (K, {size}, {size}, 3) uint8, got {array.shape}")
            if array is not None and frames is not None and array.shape[0] != frames:
                raise ValueError(f"{name} must have {frames} frames, got {array.shape[0]}")
        if first_frames is not None and not 1 <= first_frames.shape[0] < Fr:
            raise ValueError(f"first_frames must hold 1..{Fr - 1} frames, got {first_frames.shape[0]}")
        if subject_path is not None and (
            subject_path.shape != (Fr, 2) or not np.all((subject_path >= 0) & (subject_path <= 1))
        ):
            raise ValueError(f"subject_path must be ({Fr}, 2) fractions in [0, 1], got {subject_path.shape}")
        if subject_path is not None and not cfg.dit.path_input:
            raise ValueError("this model has no subject path input")
        if reference_image is not None and reference_image.shape != (size, size, 3):
            raise ValueError(
                f"reference_image must be ({size}, {size}, 3) uint8, got {reference_image.shape}"
            )

        # 2. Conditioning.
        tokens = torch.tensor(np.asarray(text_tokens, dtype=np.float32))[None]  # (1, L, 384), a copy
        token_mask = torch.ones(tokens.shape[:2], dtype=torch.bool)  # (1, L)
        conditioning: dict[str, torch.Tensor | None] = {}
        if first_frames is not None:
            known = torch.zeros(1, C, Fr, h, w)
            k = first_frames.shape[0]
            known[:, :, :k] = self.encode(first_frames)  # (1, C, K, h, w)
            known_mask = (torch.arange(Fr) < k).float().view(1, 1, Fr, 1, 1)  # (1, 1, F, 1, 1)
            conditioning.update(known_latents=known, known_mask=known_mask)
        if reference_image is not None:
            reference = self.autoencoder.encode_image(video_to_tensor(reference_image[None, None])[:, :, 0])
            conditioning.update(
                reference=reference, reference_mask=torch.ones(1, dtype=torch.bool)
            )  # (1, C, h, w)

        if subject_path is None and plan_path:
            subject_path = default_path(
                self.planner,
                text_tokens,
                seed,
                path_input=cfg.dit.path_input,
                first_frames=first_frames,
                source_video=source_video,
            )
        if subject_path is not None:
            path = torch.as_tensor(subject_path, dtype=torch.float32)[None]  # (1, F, 2)
            conditioning.update(path_map=path_heatmap(path, h))  # (1, 1, F, h, w)

        # 3. Timesteps.
        sampler = self.sampler(num_steps, remix=source_video is not None)
        first_step = 0
        if source_video is not None:
            first_step = sampler.start_index(strength)
        elif first_frames is not None:
            first_step = known_frames_first_step(cfg, sampler, subject_path, first_frames.shape[0])

        # 4. Initial latents: noise, the source video noised to where the remix starts, or the last
        # known frame in every frame noised to where the run starts.
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, C, Fr, h, w), generator=generator)  # (1, C, F, h, w)
        if first_frames is not None and source_video is None and cfg.frame_init_cutoff:
            noise = frame_init_noise(
                noise, known[:, :, k - 1 : k], seed, cfg.frame_init_cutoff, cfg.frame_init_noise_share
            )
        latents = noise
        if source_video is not None:
            latents = sampler.add_noise(self.encode(source_video), noise, first_step)
        elif first_step:
            latents = sampler.add_noise(known[:, :, k - 1 : k].expand(-1, -1, Fr, -1, -1), noise, first_step)

        # 5. Denoising loop.
        for i in range(first_step, num_steps):
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled(f"cancelled before step {i + 1} of {num_steps}")
            if first_frames is not None:
                latents = hold_known_frames(latents, known[:, :, :k], noise[:, :, :k], sampler, i)
            t = sampler.timesteps(i).expand(1)  # (1,)
            grid = cfg.token_grid(i)._asdict()
            if guidance_scale == 1.0:
                velocity = self.dit(latents, t, tokens, token_mask, **grid, **conditioning)
            else:
                velocity = self.dit.forward_with_cfg(
                    latents,
                    t,
                    tokens,
                    token_mask,
                    guidance_scale,
                    guide_path=cfg.path_guidance,
                    **grid,
                    **conditioning,
                )
            result = sampler.step(velocity, i, latents)
            latents = result.prev_sample
            if sampler.restarts_after(i):
                latents = sampler.add_noise(
                    self.autoencoder.round_trip(latents), restart_noise(seed, noise.shape), i + 1
                )
            if on_step is not None:
                on_step(
                    StepInfo(
                        step=i + 1 - first_step,
                        total_steps=num_steps - first_step,
                        pred_original=result.pred_original,
                    )
                )

        # 6. Decode; known frames come back as given.
        if first_frames is not None:
            latents = torch.where(conditioning["known_mask"].bool(), conditioning["known_latents"], latents)
        frames = self.decode(latents)[0]
        if first_frames is not None:
            frames[: first_frames.shape[0]] = first_frames
        if camera is not None:
            frames = apply_camera(frames, *camera)
        return VideoPipelineOutput(frames=frames, fps=cfg.fps, model=self.model_name)


def hold_known_frames(
    latents: torch.Tensor,
    known: torch.Tensor,
    known_noise: torch.Tensor,
    sampler: FlowMatchEulerSampler,
    step_index: int,
) -> torch.Tensor:
    """latents (..., C, F, h, w) with their first K frames set to the known frames' clean latents
    (..., C, K, h, w) noised to step `step_index`'s time along their start noise (..., C, K, h, w): where
    the flow's straight path puts them.

    Training put every frame of the DiT's noisy input on that path, known frames included, and left the
    known frames out of the loss, so the DiT's velocity there is untrained: integrated like the others,
    they wandered off the frames they stand for, and the first new frame, drawn to agree with them,
    jumped at an extension's seam. Holding them, the seam steps within 2x a normal step went from 83% to
    92% of 144 continued clips of the shapes world with the planner's path, and from 90% to 94% with the
    true path (`python -m training.seam_probe --clips 72`, seeds 7 and 11)."""
    held = latents.clone()
    held[..., : known.shape[-3], :, :] = sampler.add_noise(known, known_noise, step_index)
    return held


# Steps after which `token_grid` repeats itself, whatever the alternations.
TOKEN_GRID_CYCLE = 4


class TokenGrid(NamedTuple):
    """The token grid one sampling step runs the DiT on: `VideoDiT.forward`'s shifts, as keywords."""

    shift_tokens: bool = False  # half a token later in time
    shift_space: bool = False  # half a token in height and width


def token_grid(
    step_index: int, *, alternate_token_grid: bool = False, alternate_space_grid: bool = False
) -> TokenGrid:
    """The grid of sampling step `step_index`, counted from pure noise (so a remix's first step keeps
    its place in the cycle): with `alternate_token_grid` odd steps are shifted in time, with
    `alternate_space_grid` the second pair of every four is shifted in space, so with both the steps
    take all four grids in turn (`PipelineConfig`)."""
    return TokenGrid(
        shift_tokens=alternate_token_grid and step_index % 2 == 1,
        shift_space=alternate_space_grid and step_index % TOKEN_GRID_CYCLE >= 2,
    )


def save_pipeline(
    out: Path,
    config: PipelineConfig,
    dit: VideoDiT,
    autoencoder: FrameAutoencoder,
    planner: PathPlanner | None = None,
) -> None:
    """Writes what `VideoPipeline.from_pretrained` reads."""
    if autoencoder.dtype != torch.float32:
        raise ValueError(
            f"the autoencoder is in {autoencoder.dtype}, cast for inference; save the float32 weights "
            "of record (VideoPipeline.from_pretrained(..., autoencoder_precision='float32'))"
        )
    out.mkdir(parents=True, exist_ok=True)
    save_weights(dit, out / "dit.safetensors")
    save_weights(autoencoder, out / "autoencoder.safetensors")
    if planner is not None:
        save_weights(planner, out / "planner.safetensors")
    (out / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n")
