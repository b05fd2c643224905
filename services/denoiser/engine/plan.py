"""The dataclasses at the engine's three seams.

    plan = scheduler.schedule()          # StepPlan: which requests advance by one step, in which bucket
    result = executor.run(plan)          # StepResult: their new latents, previews and final frames
    events = scheduler.update(plan, result)   # DenoiseEvent list: what each caller is told
    for request in scheduler.take_decodes():  # pipelined decodes: beside the next steps
        event = scheduler.decoded(request, executor.decode_final(request.sampler), seconds)

Everything here is plain data. The plan carries handles to the requests' sampler state because the
executor runs in the same process; nothing in it is a shared sampler object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import KinoError
from services.denoiser.engine.request import SamplerState, ShapeBucket


@dataclass(frozen=True)
class StepItem:
    """One request advanced by one step in this plan."""

    request_id: str
    step_index: int  # the sampler step this request takes now, 0..num_steps-1
    num_steps: int
    guidance_scale: float
    rows: int  # batch rows it occupies: 2 with classifier-free guidance, else 1
    sampler: SamplerState  # read by the executor; the new latents come back in StepResult
    preview: bool  # decode a low-resolution preview after this step
    final: bool  # this is its last step: decode the frames
    # If this step ends its main schedule, take it through the autoencoder inside the step; False when
    # the decode stage does it (a batch request, with pipelined decodes), and its latents come back clean.
    restart_inline: bool = True


@dataclass
class StepPlan:
    step_id: int  # increasing per schedule() call that runs the model
    bucket: ShapeBucket | None  # the one shape every item shares; None when nothing runs
    items: list[StepItem]  # [num_requests] the requests this step advances, in batch order
    num_rows: int  # model batch size: sum(item.rows), at most the bucket's row limit
    preempted_ids: list[str]  # started requests left out of this step by more urgent ones
    finished_ids: list[str]  # requests that left before this step: cancelled or past their deadline
    # Decode final frames inside this step; False when a decode stage beside the step loop does it
    # (`SchedulerConfig.pipelined_decodes`), and the result carries no frames.
    decode_finals: bool = True

    @classmethod
    def make_empty(cls) -> StepPlan:
        return cls(step_id=-1, bucket=None, items=[], num_rows=0, preempted_ids=[], finished_ids=[])

    @property
    def runs_model(self) -> bool:
        return bool(self.items)


@dataclass
class StepResult:
    latents: dict[str, Any]  # request_id -> new (C, F, h, w) latents, for every item of the plan
    previews: dict[str, Any] = field(default_factory=dict)  # request_id -> uint8 (F, h', w', 3)
    frames: dict[str, Any] = field(default_factory=dict)  # request_id -> uint8 (F, H, W, 3), final items
    # (when the plan decodes finals; otherwise the final latents in `latents` go to the decode stage)
    duration_seconds: float = 0.0  # wall time of executor.run, decoding included
    decodes: int = 0  # final frames decoded in this step (previews come from the latents, for little)
    decode_seconds: float = 0.0  # the part of duration_seconds spent decoding them
    # The part of duration_seconds spent taking restarting requests through the autoencoder (the step
    # that ends a request's main schedule, `model/sampler.py`): like a decode, not the DiT's time.
    restart_seconds: float = 0.0
    restarts: int = 0  # requests taken through the autoencoder in this step
    # Batch rows of each DiT call the step made: one call when its rows share a token grid, one per
    # grid when rows at different places in the model's grid cycle shared the step.
    call_rows: list[int] = field(default_factory=list)

    @classmethod
    def make_empty(cls) -> StepResult:
        return cls(latents={})


class EventKind(enum.Enum):
    PROGRESS = "progress"  # after every step
    PREVIEW = "preview"  # every preview_every steps
    RESULT = "result"  # once, last
    FAILED = "failed"  # once, last: cancelled, deadline passed, executor error


@dataclass(frozen=True)
class DenoiseEvent:
    request_id: str
    kind: EventKind
    step: int  # steps of this run done when the event was made (a remix counts from its first step)
    total_steps: int  # steps this run takes
    queue_seconds: float  # from arrival to its first step (0 before the first step)
    frames: Any = None  # uint8 array for PREVIEW (F, h', w', 3) and RESULT (F, H, W, 3)
    error: KinoError | None = None  # FAILED only

    @property
    def last(self) -> bool:
        return self.kind in (EventKind.RESULT, EventKind.FAILED)
