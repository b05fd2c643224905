"""One job, stage by stage: CHECKING, ENCODING, DENOISING, AUDIO, PACKAGING, PUBLISHING.

The pipeline only orchestrates: the models run in the other services, reached through
`ServiceClients`, packaging runs in `Packager`, and every failure is a KinoError that the runner
records on the job. What is not built yet fails loudly instead of being imitated: decoding a source
video (REMIX, EXTEND) answers BACKEND_UNAVAILABLE with backend "media".

A video is stored unpublished by PACKAGING, put into the feed by PUBLISHING, and removed again when
the job does not end SUCCEEDED (failed or cancelled after packaging), so no stored video lacks a job
that names it.

A response from another service is checked like a request (tensor shapes, counts): a malformed one is
a defect in Kino, recorded as INTERNAL_ERROR, never blamed on the caller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kino.v1 import audio_pb2, common_pb2, denoiser_pb2, generation_pb2, ranker_pb2, text_encoder_pb2
from services.common.errors import KinoError, internal, out_of_range, unavailable
from services.common.tensors import from_proto, to_proto
from services.gateway.cameos import CameoRegistry, UsableCameo
from services.gateway.clients import AUDIO, DENOISER, TEXT_ENCODER, ServiceClients
from services.gateway.images import decode_rgb
from services.gateway.names import parse_name
from services.gateway.packaging import Packager
from services.gateway.videos import VideoStore


class ProgressReporter(Protocol):
    async def stage(self, stage: int) -> None: ...

    async def advance(self, within_stage: float, step: int = 0, total_steps: int = 0) -> None: ...

    async def preview(self, frames: common_pb2.Tensor) -> None: ...


@dataclass(frozen=True)
class Clip:
    """One stretch of video made by one denoising run: the whole job, or one storyboard shot."""

    prompt: str
    duration_seconds: float
    camera: common_pb2.CameraMove


@dataclass(frozen=True)
class Geometry:
    """The denoiser settings a job resolves to, from its spec and the loaded model."""

    width: int
    height: int
    # The model makes frames at its native rate; the video is re-timed to output_fps afterwards.
    model_fps: float
    output_fps: float
    num_steps: int
    guidance_scale: float


def plan_clips(spec: generation_pb2.GenerationSpec) -> list[Clip]:
    """A storyboard is one clip per shot (the top-level prompt, if any, prefixes every shot as shared
    context); every other mode is one clip."""
    if spec.mode != generation_pb2.GENERATION_MODE_STORYBOARD:
        return [Clip(spec.prompt, spec.duration_seconds, spec.camera)]
    shared = spec.prompt.strip()
    return [
        Clip(
            f"{shared}. {shot.prompt}" if shared else shot.prompt,
            shot.duration_seconds,
            shot.camera if shot.HasField("camera") else spec.camera,
        )
        for shot in spec.shots
    ]


def choose_geometry(spec: generation_pb2.GenerationSpec, info: denoiser_pb2.ModelInfo) -> Geometry:
    """Zero in the spec means the model's native value; a requested size becomes the supported
    resolution closest in aspect ratio, then in area (packaging scales to the exact request)."""
    if not info.resolutions:
        raise internal("INTERNAL_ERROR", f"the denoiser ({info.model}) reports no supported resolutions")
    resolutions = [(r.width, r.height) for r in info.resolutions]
    width, height = resolutions[0]
    if spec.width:
        aspect, area = spec.width / spec.height, spec.width * spec.height
        width, height = min(
            resolutions, key=lambda wh: (abs(np.log(wh[0] / wh[1] / aspect)), abs(wh[0] * wh[1] - area))
        )
    steps = spec.num_steps or info.default_steps
    if steps > info.max_steps:
        raise out_of_range("spec.num_steps", steps, 1, info.max_steps)
    guidance = spec.guidance_scale if spec.HasField("guidance_scale") else info.default_guidance_scale
    return Geometry(width, height, info.fps, spec.fps or info.fps, steps, guidance)


def retime(frames: np.ndarray, fps: float, output_fps: float) -> np.ndarray:
    """The same clip at output_fps, by repeating or dropping frames (no interpolation): its duration
    stays the same. frames (F, H, W, 3) -> (round(F * output_fps / fps), H, W, 3)."""
    if output_fps == fps:
        return frames
    count = max(1, round(len(frames) * output_fps / fps))
    return frames[np.minimum((np.arange(count) * fps / output_fps).astype(np.int64), len(frames) - 1)]


def choose_frame_count(duration_seconds: float, fps: float, supported: list[int]) -> int:
    """The supported frame count closest to duration x fps (any count when the model lists none)."""
    wanted = max(1, round(duration_seconds * fps))
    return min(supported, key=lambda count: (abs(count - wanted), count)) if supported else wanted


class Pipeline:
    def __init__(
        self, clients: ServiceClients, cameos: CameoRegistry, videos: VideoStore, packager: Packager
    ) -> None:
        self.clients = clients
        self.cameos = cameos
        self.videos = videos
        self.packager = packager

    async def run(self, job: generation_pb2.Job, progress: ProgressReporter) -> generation_pb2.JobResult:
        spec = job.spec

        await progress.stage(generation_pb2.JOB_STAGE_CHECKING)
        cameo_ids = tuple(parse_name(name, "cameos", "spec.cameos") for name in spec.cameos)
        usable_cameos = await self.cameos.check_use(cameo_ids, job.requester)

        await progress.stage(generation_pb2.JOB_STAGE_ENCODING)
        clips = plan_clips(spec)
        clip_tokens, content_embedding = await self._encode([clip.prompt for clip in clips])

        await progress.stage(generation_pb2.JOB_STAGE_DENOISING)
        info = await self.clients.denoiser_model_info()
        geometry = choose_geometry(spec, info)
        conditioning = await self._conditioning(spec, usable_cameos, geometry)
        clip_frames, fps, model = [], geometry.model_fps, info.model
        for index, (clip, tokens) in enumerate(zip(clips, clip_tokens, strict=True)):
            request = denoiser_pb2.DenoiseRequest(
                text_tokens=tokens,
                num_frames=choose_frame_count(
                    clip.duration_seconds, geometry.model_fps, list(info.frame_counts)
                ),
                height=geometry.height,
                width=geometry.width,
                num_steps=geometry.num_steps,
                guidance_scale=geometry.guidance_scale,
                seed=(spec.seed + index) % (1 << 63),
                subject_path=spec.subject_path,
                camera=clip.camera,
                priority=job.priority,
                tenant=job.requester,
                **conditioning,
            )
            result = await self._denoise(request, index, len(clips), progress)
            clip_frames.append(
                _backend_tensor(result.frames, "DenoiseResult.frames", DENOISER, dtype=np.uint8, ndim=4)
            )
            fps, model = result.fps or fps, result.model or model
        frames = retime(np.concatenate(clip_frames), fps, geometry.output_fps)
        fps = geometry.output_fps
        prompt = "\n".join(clip.prompt for clip in clips)

        await progress.stage(generation_pb2.JOB_STAGE_AUDIO)
        audio = await self.clients.generate_audio(
            audio_pb2.GenerateRequest(
                frames=to_proto(frames), fps=fps, prompt=prompt, dialogue=spec.dialogue, seed=spec.seed
            )
        )
        pcm = _backend_tensor(audio.pcm, "GenerateResponse.pcm", AUDIO, dtype=np.int16, ndim=2)

        await progress.stage(generation_pb2.JOB_STAGE_PACKAGING)
        video = await self.packager.package(job, prompt, frames, fps, pcm, audio.sample_rate, model)
        try:
            if job.publish_to_feed:
                await progress.stage(generation_pb2.JOB_STAGE_PUBLISHING)
                await self._publish(job, video, prompt, content_embedding)
        except BaseException:
            await asyncio.shield(self.videos.remove(video.name.removeprefix("videos/")))
            raise
        return generation_pb2.JobResult(
            video=video.name,
            download_uri=f"kino://{video.name}",
            duration_seconds=video.duration_seconds,
            width=video.width,
            height=video.height,
            fps=video.fps,
            num_frames=video.num_frames,
            seed=spec.seed,
            provenance=video.provenance,
        )

    async def discard(self, result: generation_pb2.JobResult) -> None:
        """Removes the video of a run whose job did not end SUCCEEDED (a Cancel won the race)."""
        await self.videos.remove(result.video.removeprefix("videos/"))

    async def _publish(
        self,
        job: generation_pb2.Job,
        video: generation_pb2.Video,
        prompt: str,
        content_embedding: common_pb2.Tensor,
    ) -> None:
        item = ranker_pb2.FeedItem(
            video=video.name,
            creator=job.requester,
            content_embedding=content_embedding,
            create_time=video.create_time,
            labels=["ai-generated"],
            remix_parent=job.spec.source_video,
            duration_seconds=video.duration_seconds,
            prompt=prompt,
        )
        await self.clients.upsert_items(ranker_pb2.UpsertItemsRequest(items=[item]))
        await self.videos.set_published(video.name.removeprefix("videos/"), True)

    async def _encode(self, prompts: list[str]) -> tuple[list[common_pb2.Tensor], common_pb2.Tensor]:
        """Token embeddings per prompt, and the content vector of the whole video (the normalized mean
        of the prompts' pooled vectors), which the feed ranks by."""
        response = await self.clients.encode(
            text_encoder_pb2.EncodeRequest(texts=prompts, include_tokens=True)
        )
        if len(response.embeddings) != len(prompts):
            raise internal(
                "INTERNAL_ERROR",
                f"the text encoder returned {len(response.embeddings)} embeddings for {len(prompts)} prompts",
                backend=TEXT_ENCODER,
            )
        pooled = []
        for index, embedding in enumerate(response.embeddings):
            field = f"EncodeResponse.embeddings[{index}]"
            _backend_tensor(embedding.tokens, f"{field}.tokens", TEXT_ENCODER, dtype=np.float32, ndim=2)
            pooled.append(
                _backend_tensor(embedding.pooled, f"{field}.pooled", TEXT_ENCODER, dtype=np.float32, ndim=1)
            )
        if len({vector.shape for vector in pooled}) != 1:
            raise internal(
                "INTERNAL_ERROR",
                "the text encoder returned pooled vectors of different sizes",
                backend=TEXT_ENCODER,
            )
        content = np.mean(pooled, axis=0)
        content = content / max(float(np.linalg.norm(content)), 1e-12)
        return [embedding.tokens for embedding in response.embeddings], to_proto(content.astype(np.float32))

    async def _conditioning(
        self, spec: generation_pb2.GenerationSpec, cameos: list[UsableCameo], geometry: Geometry
    ) -> dict[str, common_pb2.Tensor]:
        """The visual inputs of the denoise request: first frame, cameo reference."""
        if spec.mode in (generation_pb2.GENERATION_MODE_REMIX, generation_pb2.GENERATION_MODE_EXTEND):
            raise unavailable(
                "BACKEND_UNAVAILABLE",
                "decoding the source video (REMIX, EXTEND) needs the media part, which is not built yet",
                backend="media",
            )
        conditioning = {}
        if spec.mode == generation_pb2.GENERATION_MODE_IMAGE_TO_VIDEO:
            first = await asyncio.to_thread(
                decode_rgb, spec.first_frame.data, geometry.width, geometry.height
            )
            conditioning["first_frames"] = to_proto(first[None])
        if cameos:
            appearance = await asyncio.to_thread(cameos[0].appearance_path.read_bytes)
            reference = await asyncio.to_thread(decode_rgb, appearance, geometry.width, geometry.height)
            conditioning["reference_image"] = to_proto(reference)
        return conditioning

    async def _denoise(
        self, request: denoiser_pb2.DenoiseRequest, clip: int, clips: int, progress: ProgressReporter
    ) -> denoiser_pb2.DenoiseResult:
        """Runs one clip's denoise stream, turning its steps into progress; returns its result."""
        stream = self.clients.denoise(request)
        try:
            async for event in stream:
                kind = event.WhichOneof("event")
                if kind == "progress":
                    total = max(event.progress.total_steps, 1)
                    within = (clip + event.progress.step / total) / clips
                    await progress.advance(within, event.progress.step, event.progress.total_steps)
                elif kind == "preview":
                    await progress.preview(event.preview.frames)
                elif kind == "result":
                    return event.result
        finally:
            await stream.aclose()
        raise internal("INTERNAL_ERROR", "the denoiser stream ended without a result", backend=DENOISER)


def _backend_tensor(tensor: common_pb2.Tensor, field: str, backend: str, **expect) -> np.ndarray:
    try:
        return from_proto(tensor, field=field, **expect)
    except KinoError as error:
        raise internal(
            "INTERNAL_ERROR",
            f"the {backend} service returned a malformed tensor: {error.message}",
            backend=backend,
            field=field,
        ) from error
