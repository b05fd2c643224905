"""A denoising request as the engine sees it: what it asks for, where it stands, and its sampler state.

One rule drives everything: a request carries `steps_done` and `num_steps`, and each engine step
advances every request the scheduler picked by exactly one step. Being queued, running, pre-empted,
cancelled or past its deadline are statuses of the same object, not separate code paths.

The sampler state (the noise seed, the current latents, the text conditioning) lives here, with the
request, and never in a shared sampler object: that is what lets requests at different steps share a
batch. The scheduler never looks inside it; only the executor does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Priority(enum.IntEnum):
    """Scheduling class; lower is more urgent (kino.v1.Priority maps onto it)."""

    INTERACTIVE = 0
    BATCH = 1


class RequestStatus(enum.IntEnum):
    """Lifecycle, ordered: `status >= FINISHED_DONE` means the request has left the engine."""

    WAITING = 0  # admitted, no step taken yet
    RUNNING = 1  # advanced by the latest step
    PREEMPTED = 2  # started, but left out of the latest step (a more urgent request took its rows)
    DECODING = 3  # all steps done, its frames with the decode stage; it holds no rows any more
    # Its main schedule done, its latents with the decode stage for the restart's round trip through the
    # autoencoder (`model/sampler.py`); it holds no rows until they come back
    RESTARTING = 4
    FINISHED_DONE = 10  # all steps done, frames decoded
    FINISHED_CANCELLED = 11  # the caller went away; its rows were freed at the next step
    FINISHED_DEADLINE = 12  # its deadline passed before it finished
    FINISHED_FAILED = 13  # the executor raised while running it

    @property
    def finished(self) -> bool:
        return self >= RequestStatus.FINISHED_DONE


@dataclass(frozen=True, order=True)
class ShapeBucket:
    """Requests with equal buckets can share one forward pass: their latents stack along the batch axis."""

    num_frames: int
    height: int
    width: int
    text_tokens: (
        int  # the prompt's tokens padded to this length, so a request's shapes never depend on its batch
    )
    reference: bool = False  # a reference image adds cross-attention tokens

    def __str__(self) -> str:
        return f"{self.num_frames}x{self.height}x{self.width}/L{self.text_tokens}{'+ref' if self.reference else ''}"


@dataclass
class SamplerState:
    """Per-request sampler state; opaque to the scheduler, read and replaced by the executor."""

    seed: int  # seed of the initial noise
    text: Any  # float32 (L, D) text token embeddings
    known_latents: Any = None  # (C, K, h, w) latents of the K known first frames (image-to-video, extend)
    known_pixels: Any = None  # uint8 (K, H, W, 3) the same frames, returned as given
    reference: Any = None  # (C, h, w) latents of an appearance reference (cameo)
    source: Any = None  # (C, F, h, w) latents of a video to remix; the first step noises it
    path: Any = None  # float32 (F, 2): where the subject should be in each frame, fractions of the frame
    camera: Any = None  # (CameraMotion, amount): a camera move applied to the decoded frames
    latents: Any = None  # the executor's (C, F, h, w) latents; None until the first step draws the noise
    # (C, K, h, w) the known frames' start noise, drawn with the rest at the first step (on the device)
    known_noise: Any = None


@dataclass(eq=False)
class EngineRequest:
    request_id: str
    bucket: ShapeBucket
    num_steps: int
    guidance_scale: float  # 1 means no classifier-free guidance: one batch row instead of two
    sampler: SamplerState
    priority: Priority = Priority.INTERACTIVE
    tenant: str = ""
    preview_every: int = 0  # a preview after every this many steps; 0 means none
    arrival: float = 0.0  # engine clock, seconds
    deadline: float | None = None  # engine clock, seconds; None means no deadline

    start_step: int = 0  # a remix starts part-way through the sampler's steps
    steps_done: int = 0  # starts at start_step
    status: RequestStatus = RequestStatus.WAITING
    first_step_at: float | None = None  # engine clock when its first step started
    last_step_at: float | None = None  # engine clock when it last advanced (arrival until then)
    displaced_seconds: float = 0.0  # time spent waiting while more urgent requests ran (drives aging)
    promoted: bool = False  # aged enough to be ranked with interactive requests
    cancel_requested: bool = False
    seq: int = field(default=0, compare=False)  # admission order, the final tie-breaker

    @property
    def uses_guidance(self) -> bool:
        return self.guidance_scale != 1.0

    @property
    def rows(self) -> int:
        """Batch rows one step of this request takes: classifier-free guidance doubles the batch."""
        return 2 if self.uses_guidance else 1

    @property
    def remaining_steps(self) -> int:
        return self.num_steps - self.steps_done

    @property
    def started(self) -> bool:
        return self.steps_done > self.start_step
