"""The executor: runs one step of the video DiT for every request of a plan, in one batched call.

`run(plan)` stacks the requests' latents, gives each row its own flow time (requests at different
steps share the call), and puts the unconditional rows of guided requests in the same batch:
classifier-free guidance doubles the batch, not the calls. Then each request takes its own sampler
step with its own step index; final frames are decoded (in the step, or by `decode_final` in the
engine's decode stage beside the next steps), previews drawn straight from the latents
(`model/preview.py`: a fitted linear map, for a fraction of a decode).

Where it runs: `DenoiserSettings.device`, "cpu" or "cuda[:N]". The DiT, the autoencoder and the
previewer live on that device, and so do a request's latents between steps; the per-row inputs are
assembled on the host and copied over once per step, seeded noise is drawn by a CPU generator (a seed
starts from the same noise on any device), and previews and frames come back as numpy. On CUDA a step
ends with a synchronize, so its measured time (which the scheduler plans with) is the device's. The
path planner, used once per request before it is queued, stays on the CPU.

Same seed, same output, whether a request ran alone or in a batch. On the CPU the stated tolerance is
zero: every request's tensors keep the same shapes whatever batch it is in (prompts are padded to a
fixed bucket length, masked); the DiT's token-wise layers, attention and norms are row-wise in the
batch; the layers whose kernel depends on the batch size (convolutions, linear layers on per-sample
vectors: a 1e-6 difference that a few steps grow to 1e-5) run one row at a time
(`make_batch_invariant`); guidance, the sampler step and previews are elementwise; the autoencoder
decodes one request at a time. Latents and frames are bit-identical alone and batched, and the tests
hold it to that (torch 2.13, x86 CPU). A BLAS that blocked (B*L, D) products differently for
different B would break it; the tests would say so. On CUDA the layers are not wrapped: one row at a
time would throw away what a GPU is for, and cuBLAS/cuDNN pick kernels by batch size anyway. There the
tolerance is measured instead, not promised: the bench runs one seeded request alone and beside eight
others and records the largest difference of its final latents and frames (`bench.batch_invariance`,
`results.json`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from services.common.settings import MIB, DenoiserSettings
from services.denoiser.engine.plan import StepPlan, StepResult
from services.denoiser.engine.request import EngineRequest, SamplerState, ShapeBucket
from services.denoiser.model.autoencoder import (
    FrameAutoencoder,
    Precision,
    resolve_precision,
    tensor_to_video,
    video_to_tensor,
)
from services.denoiser.model.camera import apply_camera
from services.denoiser.model.dit import VideoDiT
from services.denoiser.model.paths import path_heatmap
from services.denoiser.model.pipeline import (
    DEFAULT_WEIGHTS_DIR,
    TOKEN_GRID_CYCLE,
    PipelineConfig,
    TokenGrid,
    VideoPipeline,
    hold_known_frames,
    known_frames_first_step,
    token_grid,
)
from services.denoiser.model.planner import PathPlanner
from services.denoiser.model.preview import LatentPreviewer
from services.denoiser.model.sampler import (
    FlowMatchEulerSampler,
    euler_step,
    frame_init_noise,
    restart_noise,
    run_sampler,
)

log = logging.getLogger(__name__)

TEXT_BUCKETS = (32, 64, 128, 256)  # prompts are padded to the first of these that holds them
PREVIEW_DOWNSCALE = 4  # previews are H/4 x W/4


class RowwiseModule(torch.nn.Module):
    """Runs the wrapped layer one batch row at a time, so that a row's output never depends on its batch.

    Only for layers whose kernel choice depends on the batch size: convolutions (oneDNN picks the
    algorithm) and linear layers on (B, D) inputs (small matrices take another BLAS path). A linear
    layer on (B, L, D) tokens multiplies B*L rows that the BLAS blocks the same way whatever B is.
    """

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, torch.nn.Linear) and x.dim() > 2:
            return self.layer(x)
        return torch.cat([self.layer(row[None]) for row in x])


class DeviceUnavailableError(RuntimeError):
    """`DenoiserSettings.device` names a device this process cannot use."""


def resolve_device(name: str) -> torch.device:
    """The torch device of a setting ("cpu", "cuda", "cuda:N"); DeviceUnavailableError when torch here
    cannot run on it, so the service fails at load and says why, not at the first request."""
    device = torch.device(name)
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceUnavailableError(
            f"denoiser.device {name!r}: only 'cpu', 'cuda' and 'cuda:N' are supported"
        )
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"denoiser.device is {name!r}, but torch {torch.__version__} sees no CUDA device here "
            f"(CUDA build: {torch.version.cuda or 'no'}). Set denoiser.device (KINO_DENOISER__DEVICE) "
            "to 'cpu', or run where a GPU and a CUDA build of torch are installed."
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"denoiser.device is {name!r}, but only {torch.cuda.device_count()} CUDA device(s) are visible"
        )
    return torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)


def make_batch_invariant(model: torch.nn.Module) -> torch.nn.Module:
    """Wraps every linear and convolution layer of `model` (in place) in a RowwiseModule."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear | torch.nn.Conv2d | torch.nn.Conv3d):
                setattr(parent, name, RowwiseModule(child))
    return model


@dataclass(frozen=True)
class ModelCard:
    """What the loaded model can do: what GetModelInfo says and what validation checks against."""

    name: str
    text_dim: int
    frame_counts: tuple[int, ...]
    resolutions: tuple[tuple[int, int], ...]  # (height, width)
    fps: float
    max_steps: int
    default_steps: int
    default_guidance_scale: float
    max_text_tokens: int = TEXT_BUCKETS[-1]
    supports_subject_path: bool = False  # the DiT has a path input channel
    supports_camera: bool = False  # camera moves as a view transform (`model/camera.py`)


class ModelExecutor:
    def __init__(
        self,
        dit: VideoDiT,
        autoencoder: FrameAutoencoder,
        card: ModelCard,
        *,
        memory_budget_bytes: int = 4 << 30,
        sampler_shift: float = 1.0,
        restart_steps: int = 0,
        sampling_config: PipelineConfig | None = None,
        token_grid_of_step: Callable[[int], TokenGrid] = token_grid,
        planner: PathPlanner | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = resolve_device(str(device))
        # The previewer is fitted on the CPU, before the autoencoder moves: the same map on any device.
        previewer = LatentPreviewer.fit(autoencoder.eval(), max(max(r) for r in card.resolutions))
        self.previewer = previewer.to(self.device)
        if self.device.type == "cpu":
            dit = make_batch_invariant(dit)
        self.dit = dit.to(self.device).eval()
        self.autoencoder = autoencoder.to(self.device).eval()
        self.card = card
        self.memory_budget_bytes = memory_budget_bytes
        self.lock = threading.Lock()  # one step at a time, whoever calls
        self.downsample = autoencoder.config.downsample
        self.sampler_shift = sampler_shift
        self.restart_steps = restart_steps  # `PipelineConfig.restart_steps`
        # The model config, for how runs with known first frames start (`known_frames_strength`,
        # `known_frames_start_still_only`, `frame_init_cutoff` and `frame_init_noise_share`); the
        # defaults (from noise) without a config.
        self.sampling_config = sampling_config or PipelineConfig()
        # The token grid a row's step runs on (`PipelineConfig.token_grid`; one grid by default).
        self.token_grid_of_step = token_grid_of_step
        self.planner = planner  # chooses the subject's path where a request leaves the layout free
        self._samplers: dict[tuple[int, bool], FlowMatchEulerSampler] = {}

    @classmethod
    def from_pipeline(
        cls,
        pipeline: VideoPipeline,
        *,
        memory_budget_bytes: int = 4 << 30,
        device: torch.device | str = "cpu",
    ) -> ModelExecutor:
        config = pipeline.config
        card = ModelCard(
            name=pipeline.model_name,
            text_dim=config.dit.text_dim,
            frame_counts=(config.dit.num_frames,),
            resolutions=((config.frame_size, config.frame_size),),
            fps=config.fps,
            max_steps=config.max_steps,
            default_steps=config.default_steps,
            default_guidance_scale=config.default_guidance_scale,
            # The shapes world's backdrops are flat, so a view transform is its exact camera; a model
            # that can place its subject can be moved under it.
            supports_subject_path=config.dit.path_input,
            supports_camera=config.dit.path_input,
        )
        return cls(
            pipeline.dit, pipeline.autoencoder, card,
            memory_budget_bytes=memory_budget_bytes, sampler_shift=config.sampler_shift,
            restart_steps=config.restart_steps, sampling_config=config, token_grid_of_step=config.token_grid,
            planner=pipeline.planner, device=device,
        )  # fmt: skip

    @property
    def grid_cycle(self) -> int:
        """How many token grids the model's steps take in turn (1 when it keeps one grid)."""
        return len({self.token_grid_of_step(i) for i in range(TOKEN_GRID_CYCLE)})

    def sampler(self, num_steps: int, remix: bool = False) -> FlowMatchEulerSampler:
        """The (stateless) sampler of a step count; requests with equal counts share it. A remix's has
        no restart (`sampler.run_sampler`)."""
        key = (num_steps, remix)
        if key not in self._samplers:
            self._samplers[key] = run_sampler(
                num_steps, shift=self.sampler_shift, restart_steps=self.restart_steps, remix=remix
            )
        return self._samplers[key]

    def _sampler_of(self, num_steps: int, state: SamplerState) -> FlowMatchEulerSampler:
        return self.sampler(num_steps, remix=state.source is not None)

    def known_frames_start(self, num_steps: int, path: np.ndarray | None, known_frames: int) -> int:
        """The first step of a request with known first frames and no source video, as the pipeline
        starts it (`pipeline.known_frames_first_step`)."""
        return known_frames_first_step(self.sampling_config, self.sampler(num_steps), path, known_frames)

    def restart_index(self, request: EngineRequest) -> int | None:
        """The step after which the request's latents go through the autoencoder (its main schedule's
        last, `FlowMatchEulerSampler.restart_index`); None when its sampling has no restart."""
        return self._sampler_of(request.num_steps, request.sampler).restart_index

    # ---- shapes ------------------------------------------------------------------------------

    def latent_shape(self, bucket: ShapeBucket) -> tuple[int, int, int, int]:
        """(C, F, h, w): one request's latents in this bucket."""
        h, w = bucket.height // self.downsample, bucket.width // self.downsample
        return self.dit.config.latent_channels, bucket.num_frames, h, w

    def bucket(
        self, num_frames: int, height: int, width: int, text_tokens: int, reference: bool = False
    ) -> ShapeBucket:
        padded = next(n for n in TEXT_BUCKETS if n >= text_tokens)
        return ShapeBucket(num_frames, height, width, padded, reference)

    def buckets(self) -> list[ShapeBucket]:
        """The buckets worth profiling at start-up: every shape with the shortest prompt padding."""
        return [self.bucket(f, h, w, 1) for f in self.card.frame_counts for h, w in self.card.resolutions]

    def row_limit(self, bucket: ShapeBucket) -> int:
        """Batch rows whose activations fit the memory budget (one block's peak, in float32)."""
        config = self.dit.config
        tokens = config.num_tokens
        context = bucket.text_tokens + (tokens // config.grid[0] if bucket.reference else 0)
        floats = tokens * config.hidden_size * (config.mlp_ratio + 8) + config.num_heads * tokens * (
            tokens + context
        )
        return max(2, self.memory_budget_bytes // int(4 * floats))

    # ---- one step ----------------------------------------------------------------------------

    def run(self, plan: StepPlan) -> StepResult:
        with self.lock, torch.inference_mode():
            self._synchronize()  # work queued before (a decode) is not this step's
            start = time.perf_counter()
            result = self._run(plan)
            self._synchronize()
            result.duration_seconds = time.perf_counter() - start
            return result

    def _run(self, plan: StepPlan) -> StepResult:
        bucket, items = plan.bucket, plan.items
        samplers = [self._sampler_of(item.num_steps, item.sampler) for item in items]
        latents = [
            self._latents(item.sampler, sampler, bucket, item.step_index)
            for item, sampler in zip(items, samplers, strict=True)
        ]
        rows: list[tuple[int, bool]] = []  # (item index, conditional) per batch row
        # Per item: its conditional row, and its unconditional row (the conditional one when unguided).
        cond_rows, uncond_rows = [], []
        for i, item in enumerate(items):
            cond_rows.append(len(rows))
            rows.append((i, True))
            if item.rows == 2:
                rows.append((i, False))
            uncond_rows.append(len(rows) - 1)
        x = torch.stack([latents[i] for i, _ in rows])  # (B, C, F, h, w), on the device
        t = torch.stack([samplers[i].timesteps(items[i].step_index) for i, _ in rows])  # (B,)
        text, text_mask = self._text_rows(plan, rows, bucket.text_tokens)  # (B, S, D), (B, S)
        known, known_mask = self._known_rows(plan, rows, x)  # (B, C, F, h, w), (B, 1, F, 1, 1)
        reference = reference_mask = None
        if bucket.reference:
            reference = torch.stack([self._on_device(items[i].sampler.reference) for i, _ in rows])
            # The conditional row only, as `VideoDiT.forward_with_cfg`: guidance amplifies the look too.
            reference_mask = self._on_device(torch.tensor([conditional for _, conditional in rows]))
        path_map = self._path_rows(plan, rows, x)  # (B, 1, F, h, w) or None
        # Guidance and every request's own sampler step, for all of them at once: elementwise, so a row's
        # result does not depend on its batch, and a few kernels per step instead of a few per request.
        scales = torch.tensor([item.guidance_scale if item.rows == 2 else 1.0 for item in items])  # (N,)
        sigma = torch.stack(
            [s.sigmas[item.step_index] for s, item in zip(samplers, items, strict=True)]
        )  # (N,)
        sigma_next = torch.stack(
            [s.next_sigmas[item.step_index] for s, item in zip(samplers, items, strict=True)]
        )  # (N,)
        cond_index = self._on_device(torch.tensor(cond_rows))  # (N,)
        uncond_index = self._on_device(torch.tensor(uncond_rows))  # (N,)
        conditioning = {
            "known_latents": known, "known_mask": known_mask, "reference": reference,
            "reference_mask": reference_mask, "path_map": path_map,
        }  # fmt: skip
        velocity, call_rows = self._velocity(
            x, self._on_device(t), text, text_mask, conditioning, items, rows
        )
        v_cond, v_uncond = velocity[cond_index], velocity[uncond_index]  # (N, C, F, h, w)
        v = v_uncond + self._on_device(scales).view(-1, 1, 1, 1, 1) * (v_cond - v_uncond)  # (N, C, F, h, w)
        step = euler_step(v, x[cond_index], self._on_device(sigma), self._on_device(sigma_next))
        result = StepResult(
            latents={item.request_id: step.prev_sample[j] for j, item in enumerate(items)},
            call_rows=call_rows,
        )
        for j, (item, sampler) in enumerate(zip(items, samplers, strict=True)):
            if item.restart_inline and sampler.restarts_after(item.step_index):  # noised afresh
                self._synchronize()
                restart_start = time.perf_counter()
                result.latents[item.request_id] = self._restart(
                    item.sampler, sampler, step.prev_sample[j], item.step_index
                )
                self._synchronize()
                result.restart_seconds += time.perf_counter() - restart_start
                result.restarts += 1
        previews = [j for j, item in enumerate(items) if item.preview and not item.final]
        if previews:  # part of the step's time: a few elementwise kernels and one copy back
            size = bucket.height // PREVIEW_DOWNSCALE
            pictures = self.previewer.batch(step.pred_original[self._on_device(torch.tensor(previews))], size)
            for j, picture in zip(previews, pictures, strict=True):
                result.previews[items[j].request_id] = self._with_camera(items[j].sampler, picture)
        if not plan.decode_finals:
            return result
        for j, item in enumerate(items):
            if not item.final:
                continue
            self._synchronize()
            decode_start = time.perf_counter()
            result.frames[item.request_id] = self._final_frames(item.sampler, step.prev_sample[j])
            result.decodes += 1
            result.decode_seconds += time.perf_counter() - decode_start
        return result

    def _velocity(
        self, x, t, text, text_mask, conditioning: dict, items, rows
    ) -> tuple[torch.Tensor, list[int]]:
        """The DiT's velocity for every batch row (B, C, F, h, w), and the rows of each DiT call. With
        alternating token grids, each row runs on the grid of its own step, as `VideoPipeline.generate`
        runs it: one call when the batch agrees, one per grid when rows at different steps of the cycle
        share it (the scheduler counts those calls: `StepScheduler` with `grid_of_step`)."""
        grids = [self.token_grid_of_step(items[i].step_index) for i, _ in rows]
        if len(set(grids)) == 1:
            return self.dit(x, t, text, text_mask, **grids[0]._asdict(), **conditioning), [len(rows)]
        velocity, call_rows = torch.empty_like(x), []
        for grid in sorted(set(grids)):
            members = [j for j, g in enumerate(grids) if g == grid]
            index = self._on_device(torch.tensor(members))
            part = {k: None if v is None else v[index] for k, v in conditioning.items()}
            velocity[index] = self.dit(
                x[index], t[index], text[index], text_mask[index], **grid._asdict(), **part
            )
            call_rows.append(len(members))
        return velocity, call_rows

    def decode_final(self, sampler: SamplerState) -> np.ndarray:
        """The frames of a request whose steps are done (its final latents in `sampler.latents`).

        The decode stage calls this beside the step loop, so it does not take the step lock: the
        autoencoder shares no state with the DiT, and with one torch thread per caller the decode
        and the next step run on two cores at once. On CUDA both queue on the device's default
        stream, in order; the step that made these latents has synchronized, so they are ready."""
        with torch.inference_mode():
            return self._final_frames(sampler, self._on_device(sampler.latents))

    def restart(self, request: EngineRequest) -> torch.Tensor:
        """The latents a request restarts from, made from the clean ones the step that ended its main
        schedule left in `request.sampler.latents`: what `run` does inside that step when the plan says
        `restart_inline`. The decode stage calls this beside the step loop, without the step lock,
        as it calls `decode_final`."""
        flow = self._sampler_of(request.num_steps, request.sampler)
        with torch.inference_mode():
            clean = self._on_device(request.sampler.latents)
            return self._restart(request.sampler, flow, clean, flow.restart_index)

    def _final_frames(self, sampler: SamplerState, latents: torch.Tensor) -> np.ndarray:
        """Decodes the result; known first frames come back exactly as given, as in the pipeline; then
        the camera moves over the scene."""
        if sampler.known_latents is None:
            return self._with_camera(sampler, self.decode(latents))
        k = sampler.known_latents.shape[1]
        latents = latents.clone()
        latents[:, :k] = self._on_device(sampler.known_latents)
        frames = self.decode(latents)
        frames[:k] = sampler.known_pixels
        return self._with_camera(sampler, frames)

    @staticmethod
    def _with_camera(sampler: SamplerState, frames: np.ndarray) -> np.ndarray:
        return frames if sampler.camera is None else apply_camera(frames, *sampler.camera)

    def _on_device(self, value) -> torch.Tensor:
        """A tensor (or array) on the model's device; host memory is copied without waiting for the
        device's queue (the copy is staged at once)."""
        return torch.as_tensor(value).to(self.device, non_blocking=True)

    def _synchronize(self) -> None:
        """Waits for the device's queued work, so that the clock read next measures it (CUDA runs
        asynchronously; a no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _restart(
        self, state: SamplerState, sampler: FlowMatchEulerSampler, clean: torch.Tensor, step_index: int
    ) -> torch.Tensor:
        """A request's latents after the step that ends its main schedule, as `VideoPipeline.generate`
        makes them: the clean estimate through the autoencoder, noised with the seed's restart noise
        to the time of the next step (`sampler.py`). One request at a time, like every decode."""
        clean = self.autoencoder.round_trip(clean[None])[0]
        noise = self._on_device(restart_noise(state.seed, tuple(clean.shape)))
        return sampler.add_noise(clean, noise, step_index + 1)

    def _latents(
        self, sampler: SamplerState, flow: FlowMatchEulerSampler, bucket: ShapeBucket, step_index: int
    ) -> torch.Tensor:
        if sampler.latents is not None:
            latents = self._on_device(sampler.latents)
        else:
            shape = self.latent_shape(bucket)
            # Drawn on the CPU whatever the device: a seed gives the same start noise everywhere.
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(sampler.seed))
            cutoff = self.sampling_config.frame_init_cutoff
            if cutoff and sampler.known_latents is not None and sampler.source is None:
                last = torch.as_tensor(sampler.known_latents)[:, -1:].cpu()
                share = self.sampling_config.frame_init_noise_share
                noise = frame_init_noise(noise, last, sampler.seed, cutoff, share)
            latents = self._on_device(noise)
            if sampler.source is not None:  # remix: the source, noised to the time its first step starts from
                latents = flow.add_noise(self._on_device(sampler.source), latents, step_index)
            elif sampler.known_latents is not None and step_index:
                # Known frames starting part-way (`known_frames_start`): the last known frame in every
                # frame, noised to that time, as in VideoPipeline.generate.
                last = self._on_device(sampler.known_latents[:, -1:])
                latents = flow.add_noise(last.expand_as(latents), latents, step_index)
            if sampler.known_latents is not None:
                # Kept where the latents are, so later steps copy nothing for it.
                sampler.known_noise = self._on_device(noise[:, : sampler.known_latents.shape[1]])
        if sampler.known_latents is None:
            return latents
        # Known first frames stay on the flow's path at this step's time, as in VideoPipeline.generate.
        known = self._on_device(sampler.known_latents)
        return hold_known_frames(latents, known, sampler.known_noise, flow, step_index)

    def _text_rows(self, plan: StepPlan, rows, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts padded to the bucket's length, assembled on the host and copied over in one go; the
        null prompt (a parameter, on the device) goes into the unconditional rows there."""
        tokens = np.zeros((len(rows), length, self.card.text_dim), np.float32)  # (B, S, D)
        masks = np.zeros((len(rows), length), bool)  # (B, S)
        unconditional = []
        for row, (i, conditional) in enumerate(rows):
            if not conditional:
                unconditional.append(row)
                continue
            text = plan.items[i].sampler.text  # (L, D), read-only: copied into the batch, never wrapped
            tokens[row, : text.shape[0]] = text
            masks[row, : text.shape[0]] = True
        tokens, masks = self._on_device(torch.from_numpy(tokens)), self._on_device(torch.from_numpy(masks))
        if unconditional:
            null_tokens, null_mask = self.dit.null_text_tokens(1, length)  # (1, S, D), (1, S)
            index = self._on_device(torch.tensor(unconditional))
            tokens[index] = null_tokens
            masks[index] = null_mask
        return tokens, masks

    def _known_rows(self, plan: StepPlan, rows, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Known first frames as the DiT takes them; rows without any get zeros and a zero mask."""
        B, C, Fr, h, w = x.shape
        known = torch.zeros_like(x)
        mask = torch.zeros(B, 1, Fr, 1, 1)
        for row, (i, _) in enumerate(rows):
            frames = plan.items[i].sampler.known_latents
            if frames is not None:
                k = frames.shape[1]
                known[row, :, :k] = self._on_device(frames)
                mask[row, :, :k] = 1.0
        return known, self._on_device(mask)

    def _path_rows(self, plan: StepPlan, rows, x: torch.Tensor) -> torch.Tensor | None:
        """Subject paths as the DiT takes them: a guided request's conditional row gets its path, and
        its unconditional row too unless the model guides towards the path
        (`PipelineConfig.path_guidance`, as `VideoDiT.forward_with_cfg`); None when no request of the
        plan has one."""
        if not self.dit.config.path_input or all(plan.items[i].sampler.path is None for i, _ in rows):
            return None
        B, _, Fr, h, w = x.shape
        maps = torch.zeros(B, 1, Fr, h, w)
        for row, (i, conditional) in enumerate(rows):
            path = plan.items[i].sampler.path
            if path is not None and (conditional or not self.sampling_config.path_guidance):
                maps[row] = path_heatmap(torch.as_tensor(path)[None], h)[0]
        return self._on_device(maps)

    # ---- pixels <-> latents ------------------------------------------------------------------

    def decode(self, latents: torch.Tensor, downscale: int = 1) -> np.ndarray:
        """(C, F, h, w) latents -> uint8 (F, H/downscale, W/downscale, 3), one request per call."""
        video = self.autoencoder.decode(latents[None])  # (1, 3, F, H, W)
        if downscale > 1:
            video = F.avg_pool3d(video, kernel_size=(1, downscale, downscale))
        return tensor_to_video(video)[0].cpu().numpy()

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (K, H, W, 3) -> (C, K, h, w) latents on the model's device, one request per call (like
        decode)."""
        with torch.inference_mode():
            return self.autoencoder.encode(self._on_device(video_to_tensor(np.array(frames)[None])))[0]

    # ---- warm-up -----------------------------------------------------------------------------

    def profile_decode(self, bucket: ShapeBucket) -> float:
        """Seconds one final decode of this bucket takes."""
        with self.lock, torch.inference_mode():
            self._synchronize()
            start = time.perf_counter()
            latents = torch.zeros(self.latent_shape(bucket), device=self.device)
            self.decode(latents)  # the copy back waits for the device
            return time.perf_counter() - start

    def profile_restart(self, bucket: ShapeBucket) -> float:
        """Seconds one restart's round trip through the autoencoder takes in this bucket; 0 for a
        model that samples without one."""
        if not self.restart_steps:
            return 0.0
        with self.lock, torch.inference_mode():
            latents = torch.zeros((1, *self.latent_shape(bucket)), device=self.device)
            self._synchronize()
            start = time.perf_counter()
            self.autoencoder.round_trip(latents)
            self._synchronize()
            return time.perf_counter() - start

    def profile(self, bucket: ShapeBucket, rows: int, grids: int = 1) -> float:
        """Seconds of one step of `rows` guided rows of this bucket, on throwaway requests; with
        `grids` > 1 the requests are spread over that many steps of the model's token-grid cycle, as
        when requests at different steps share a step (one DiT call per grid)."""
        from services.denoiser.engine.plan import StepItem

        items = [
            StepItem(
                request_id=f"profile-{i}",
                step_index=i % grids,
                num_steps=max(2, grids),
                guidance_scale=2.0 if rows - 2 * i >= 2 else 1.0,
                rows=min(2, rows - 2 * i),
                sampler=SamplerState(seed=i, text=np.zeros((1, self.card.text_dim), np.float32)),
                preview=False,
                final=False,
            )  # fmt: skip
            for i in range((rows + 1) // 2)
        ]
        plan = StepPlan(
            step_id=-1, bucket=bucket, items=items, num_rows=rows, preempted_ids=[], finished_ids=[]
        )
        return self.run(plan).duration_seconds


WEIGHT_FILES = ("config.json", "dit.safetensors", "autoencoder.safetensors")


def resolve_autoencoder_precision(settings: DenoiserSettings, device: torch.device) -> Precision:
    """The autoencoder precision for the device the model runs on: "auto" is decided for that device,
    not for the CPU the weights load on."""
    return (
        "bfloat16"
        if resolve_precision(settings.autoencoder_precision, device) == torch.bfloat16
        else "float32"
    )


def load_executor(settings: DenoiserSettings) -> ModelExecutor:
    """The executor over the shipped weights, on `settings.device`; FileNotFoundError names what is
    missing and how to fix it, DeviceUnavailableError a device this process cannot use."""
    weights_dir = Path(settings.weights_dir or DEFAULT_WEIGHTS_DIR)
    missing = [name for name in WEIGHT_FILES if not (weights_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"VideoDenoiser weights not found: {', '.join(str(weights_dir / name) for name in missing)} "
            "missing. Set denoiser.weights_dir (KINO_DENOISER__WEIGHTS_DIR) to a directory holding "
            f"{', '.join(WEIGHT_FILES)}."
        )
    device = resolve_device(settings.device)  # before the weights load: a wrong device fails at once
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    pipeline = VideoPipeline.from_pretrained(
        weights_dir, autoencoder_precision=resolve_autoencoder_precision(settings, device)
    )
    return ModelExecutor.from_pipeline(
        pipeline, memory_budget_bytes=settings.memory_budget_mb * MIB, device=device
    )
