"""The VideoDenoiser without its transport: DenoiseRequest in, a stream of DenoiseResponse out.

A request is validated against what the loaded model can do (ModelInfo), turned into an
`EngineRequest` and handed to the step-level engine, where it shares forward passes with whatever
else is running. The engine's events come back as progress, previews and the result; an engine
error (cancelled, deadline passed, refused at admission) is raised as the KinoError it carries, and
the server's interceptor turns it into a status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import numpy as np

from kino.v1 import common_pb2, denoiser_pb2
from services.common.errors import invalid_argument, out_of_range, require_in_range, require_known_enum
from services.common.settings import DenoiserSettings
from services.common.tensors import from_proto, to_proto
from services.denoiser.engine.engine import DenoiseEngine
from services.denoiser.engine.executor import ModelCard, ModelExecutor, load_executor
from services.denoiser.engine.plan import DenoiseEvent, EventKind
from services.denoiser.engine.request import EngineRequest, Priority, SamplerState
from services.denoiser.engine.scheduler import SchedulerConfig, StepScheduler
from services.denoiser.engine.step_times import StepTimes
from services.denoiser.model.camera import CameraMotion
from services.denoiser.model.paths import default_path, resample_path

MAX_GUIDANCE = 20.0
MAX_TENANT_CHARS = 128
MAX_PATH_POINTS = 256
# Text encoders' token embeddings stay within tens. Far larger values are garbage that the DiT's layer
# norm squares past float32 (from about 1e18 on): the video would come back black, not refused.
MAX_TOKEN_MAGNITUDE = 1e4
_PRIORITIES = {
    common_pb2.PRIORITY_UNSPECIFIED: Priority.INTERACTIVE,
    common_pb2.PRIORITY_INTERACTIVE: Priority.INTERACTIVE,
    common_pb2.PRIORITY_BATCH: Priority.BATCH,
}


class DenoiserCore:
    def __init__(self, executor: ModelExecutor, settings: DenoiserSettings) -> None:
        self.executor = executor
        self.card: ModelCard = executor.card
        self.settings = settings
        config = SchedulerConfig(
            max_rows=settings.max_rows,
            max_queued=settings.max_queued,
            aging_seconds=settings.aging_seconds,
            interactive_slowdown=settings.interactive_slowdown,
            batch_step_limit=settings.batch_step_limit,
            policy=settings.policy,
            pipelined_decodes=settings.pipelined_decodes,
        )
        scheduler = StepScheduler(
            config,
            StepTimes(),
            row_limit=executor.row_limit,
            grid_of_step=executor.token_grid_of_step,
            restart_index_of=executor.restart_index,
        )
        self.engine = DenoiseEngine(scheduler, executor)

    @classmethod
    def from_settings(cls, settings: DenoiserSettings) -> DenoiserCore:
        """Loads the shipped model; raises FileNotFoundError naming the missing weights."""
        return cls(load_executor(settings), settings)

    async def warmup(self) -> None:
        """Measures step times of every supported shape, so admission estimates from the first request."""
        await asyncio.to_thread(self.engine.profile, self.executor.buckets())
        self.engine.start()

    async def close(self) -> None:
        await self.engine.close()

    def model_info(self) -> denoiser_pb2.ModelInfo:
        card = self.card
        return denoiser_pb2.ModelInfo(
            model=card.name,
            text_dim=card.text_dim,
            frame_counts=list(card.frame_counts),
            resolutions=[denoiser_pb2.Resolution(height=h, width=w) for h, w in card.resolutions],
            fps=card.fps,
            max_steps=card.max_steps,
            default_steps=card.default_steps,
            default_guidance_scale=card.default_guidance_scale,
            supports_subject_path=card.supports_subject_path,
            supports_camera=card.supports_camera,
        )

    async def denoise(
        self, request: denoiser_pb2.DenoiseRequest, timeout_seconds: float | None = None
    ) -> AsyncIterator[denoiser_pb2.DenoiseResponse]:
        """Streams the request's events; `timeout_seconds` is what is left of the caller's deadline."""
        # Off the event loop: planning a path and encoding pictures run the model (tens of ms).
        engine_request = await asyncio.to_thread(self._prepare, request)
        if timeout_seconds is not None:
            engine_request.deadline = self.engine.clock() + timeout_seconds
        stream = self.engine.submit(engine_request)
        async for event in stream:
            yield self._response(event)

    def _prepare(self, request: denoiser_pb2.DenoiseRequest) -> EngineRequest:
        """The validated engine request with its pictures encoded into latents."""
        engine_request, pictures = self.to_engine_request(request)
        if any(p is not None for p in pictures.values()):
            self._encode_pictures(engine_request, **pictures)
        return engine_request

    def to_engine_request(self, request: denoiser_pb2.DenoiseRequest) -> tuple[EngineRequest, dict]:
        """Validates the request against the model; raises INVALID_ARGUMENT with a reason.

        Returns the engine request and the pictures still to encode into latents
        (first_frames, reference_image, source_video; None where absent).
        """
        card = self.card
        if not request.HasField("text_tokens") or not request.text_tokens.shape:
            raise invalid_argument("FIELD_REQUIRED", "text_tokens is required", field="text_tokens")
        tokens = from_proto(request.text_tokens, field="text_tokens", dtype=np.float32, ndim=2)
        if tokens.shape[1] != card.text_dim or not 1 <= tokens.shape[0] <= card.max_text_tokens:
            detail = f"expected (L, {card.text_dim}) with 1 <= L <= {card.max_text_tokens}, got shape {tokens.shape}"
            raise invalid_argument(
                "INVALID_TENSOR", f"text_tokens: {detail}", field="text_tokens", detail=detail
            )
        largest = float(np.abs(tokens).max())
        if largest > MAX_TOKEN_MAGNITUDE:
            limit = f"{MAX_TOKEN_MAGNITUDE:g}"
            detail = f"values must lie within [-{limit}, {limit}], got one of magnitude {largest:g}"
            raise invalid_argument(
                "INVALID_TENSOR", f"text_tokens: {detail}", field="text_tokens", detail=detail
            )
        if request.num_frames not in card.frame_counts:
            raise _not_supported("num_frames", request.num_frames, card.frame_counts)
        if (request.height, request.width) not in card.resolutions:
            sizes = [f"{h}x{w}" for h, w in card.resolutions]
            raise _not_supported("height x width", f"{request.height}x{request.width}", sizes)
        require_in_range("num_steps", request.num_steps, 1, card.max_steps)
        require_in_range("guidance_scale", request.guidance_scale, 0.0, MAX_GUIDANCE)  # NaN fails too
        require_in_range("seed", request.seed, 0, 2**63 - 1)
        require_in_range("preview_every", request.preview_every, 0, card.max_steps)
        require_known_enum("priority", common_pb2.Priority, request.priority)
        if len(request.tenant) > MAX_TENANT_CHARS:
            raise out_of_range("tenant length", len(request.tenant), 0, MAX_TENANT_CHARS)
        pictures = self._pictures(request)
        start_step = 0
        if pictures["source_video"] is not None:
            start_step = self.executor.sampler(request.num_steps, remix=True).start_index(request.strength)
            if start_step == request.num_steps:
                raise out_of_range("strength", request.strength, 1.0 / request.num_steps, 1.0)
        path = self._path(request, tokens, pictures)
        known = pictures["first_frames"]
        if known is not None and pictures["source_video"] is None:
            start_step = self.executor.known_frames_start(request.num_steps, path, known.shape[0])
        return (
            EngineRequest(
                request_id=uuid.uuid4().hex,
                bucket=self.executor.bucket(
                    request.num_frames,
                    request.height,
                    request.width,
                    tokens.shape[0],
                    reference=pictures["reference_image"] is not None,
                ),  # fmt: skip
                num_steps=request.num_steps,
                guidance_scale=float(request.guidance_scale),
                sampler=SamplerState(
                    seed=request.seed,
                    text=np.array(tokens, dtype=np.float32),
                    path=path,
                    camera=self._camera(request),
                ),
                priority=_PRIORITIES[request.priority],
                tenant=request.tenant,
                preview_every=request.preview_every or self.settings.preview_every,
                start_step=start_step,
                steps_done=start_step,
            ),
            pictures,
        )

    def _path(
        self, request: denoiser_pb2.DenoiseRequest, tokens: np.ndarray, pictures: dict[str, np.ndarray | None]
    ) -> np.ndarray | None:
        """The subject path as (F, 2) positions, one per frame: the request's, or where it sends none
        the source's (a remix) or the model's planner's (`paths.default_path`); None without any."""
        if not request.subject_path:
            return default_path(
                self.executor.planner,
                tokens,
                request.seed,
                path_input=self.card.supports_subject_path,
                first_frames=pictures["first_frames"],
                source_video=pictures["source_video"],
            )
        if not self.card.supports_subject_path:
            raise _unsupported_control("subject_path", self.card.name)
        if len(request.subject_path) > MAX_PATH_POINTS:
            raise out_of_range("subject_path length", len(request.subject_path), 1, MAX_PATH_POINTS)
        duration = request.num_frames / self.card.fps
        for i, point in enumerate(request.subject_path):
            require_in_range(f"subject_path[{i}].time_seconds", point.time_seconds, 0.0, duration)
            require_in_range(f"subject_path[{i}].x", point.x, 0.0, 1.0)
            require_in_range(f"subject_path[{i}].y", point.y, 0.0, 1.0)
        times = np.array([p.time_seconds for p in request.subject_path])
        xy = np.array([(p.x, p.y) for p in request.subject_path])
        return resample_path(times, xy, request.num_frames, self.card.fps)

    def _camera(self, request: denoiser_pb2.DenoiseRequest) -> tuple[CameraMotion, float] | None:
        if not request.HasField("camera"):
            return None
        motion = request.camera.motion
        require_known_enum("camera.motion", common_pb2.CameraMotion, motion)
        # Checked for every motion, as the gateway does: a static camera with a NaN amount is a bad request.
        require_in_range("camera.amount", request.camera.amount, 0.0, 1.0)
        if motion in (common_pb2.CAMERA_MOTION_UNSPECIFIED, common_pb2.CAMERA_MOTION_STATIC):
            return None
        if not self.card.supports_camera:
            raise _unsupported_control("camera", self.card.name)
        return camera_motion(motion), float(request.camera.amount)

    def _pictures(self, request: denoiser_pb2.DenoiseRequest) -> dict[str, np.ndarray | None]:
        """Validates the visual conditioning: sizes must match the requested clip."""
        h, w, frames = request.height, request.width, request.num_frames
        pictures: dict[str, np.ndarray | None] = dict.fromkeys(
            ("first_frames", "reference_image", "source_video")
        )
        if request.HasField("first_frames"):
            array = from_proto(request.first_frames, field="first_frames", dtype=np.uint8, ndim=4)
            if array.shape[1:] != (h, w, 3) or not 1 <= array.shape[0] < frames:
                raise _bad_picture("first_frames", f"(K, {h}, {w}, 3) with 1 <= K < {frames}", array.shape)
            pictures["first_frames"] = array
        if request.HasField("reference_image"):
            array = from_proto(request.reference_image, field="reference_image", dtype=np.uint8, ndim=3)
            if array.shape != (h, w, 3):
                raise _bad_picture("reference_image", f"({h}, {w}, 3)", array.shape)
            pictures["reference_image"] = array
        if request.HasField("source_video"):
            array = from_proto(request.source_video, field="source_video", dtype=np.uint8, ndim=4)
            if array.shape != (frames, h, w, 3):
                raise _bad_picture("source_video", f"({frames}, {h}, {w}, 3)", array.shape)
            pictures["source_video"] = array
            require_in_range("strength", request.strength, 0.0, 1.0)
        elif request.strength:
            raise invalid_argument(
                "INVALID_FOR_MODE",
                "strength applies to a remix: send source_video with it",
                mode="text-to-video",
                field="strength",
            )
        if pictures["first_frames"] is not None and pictures["source_video"] is not None:
            raise invalid_argument(
                "INVALID_FOR_MODE",
                "first_frames and source_video cannot be combined",
                mode="remix",
                field="first_frames",
            )
        return pictures

    def _encode_pictures(self, request: EngineRequest, first_frames, reference_image, source_video) -> None:
        sampler = request.sampler
        if first_frames is not None:
            sampler.known_latents = self.executor.encode(first_frames)
            sampler.known_pixels = np.array(first_frames)
        if reference_image is not None:
            sampler.reference = self.executor.encode(reference_image[None])[:, 0]
        if source_video is not None:
            sampler.source = self.executor.encode(source_video)

    def _response(self, event: DenoiseEvent) -> denoiser_pb2.DenoiseResponse:
        if event.kind == EventKind.PROGRESS:
            return denoiser_pb2.DenoiseResponse(
                progress=denoiser_pb2.DenoiseProgress(
                    step=event.step, total_steps=event.total_steps, queue_seconds=event.queue_seconds
                )
            )
        if event.kind == EventKind.PREVIEW:
            return denoiser_pb2.DenoiseResponse(
                preview=denoiser_pb2.DenoisePreview(step=event.step, frames=to_proto(event.frames))
            )
        if event.kind == EventKind.RESULT:
            return denoiser_pb2.DenoiseResponse(
                result=denoiser_pb2.DenoiseResult(
                    frames=to_proto(event.frames), fps=self.card.fps, model=self.card.name
                )
            )
        raise event.error


def _not_supported(field: str, value, allowed) -> Exception:
    allowed = ", ".join(map(str, allowed))
    return invalid_argument(
        "OUT_OF_RANGE",
        f"{field} {value} is not supported; the model does {allowed}",
        field=field,
        value=value,
        allowed=allowed,
    )


def _bad_picture(field: str, expected: str, shape) -> Exception:
    detail = f"expected shape {expected}, got {tuple(shape)}"
    return invalid_argument("INVALID_TENSOR", f"{field}: {detail}", field=field, detail=detail)


def camera_motion(value: int) -> CameraMotion:
    """The model's camera move for a kino.v1.CameraMotion number (CAMERA_MOTION_PAN_LEFT -> PAN_LEFT)."""
    return CameraMotion[common_pb2.CameraMotion.Name(value).removeprefix("CAMERA_MOTION_")]


def _unsupported_control(field: str, model: str) -> Exception:
    """subject_path or camera sent to a model whose ModelInfo.supports_<field> is false."""
    return invalid_argument(
        "INVALID_FOR_MODE",
        f"{field} is not supported by {model}: its ModelInfo.supports_{field} is false",
        mode="text-to-video",
        field=field,
    )
