"""One job, stage by stage: CHECKING, ENCODING, DENOISING, AUDIO, PACKAGING, PUBLISHING.

The pipeline only orchestrates: the models run in the other services, reached through
`ServiceClients`, packaging runs in `Packager`, and every failure is a KinoError that the runner
records on the job.

The model makes short clips of a fixed length (ModelInfo.frame_counts); every mode is a plan of such
clips and the conditioning each gets:

* TEXT_TO_VIDEO, IMAGE_TO_VIDEO: one clip, or clip after clip from the last frames made so far for a
  longer video (the uploaded first frame as a known frame, and as the reference image when no cameo
  gives one: the subject keeps its size; a continuation takes the video's first frame as its reference).
* STORYBOARD: one clip per shot, cut together. When the storyboard's prompt names a shared subject,
  the shots after the first take its look from a still of the first shot (the reference image).
* REMIX: the source, decoded from its file, in windows of one clip each; every window is noised to
  the remix strength and denoised under the new prompt, so the motion stays and the prompt's changes
  are made (SDEdit).
* EXTEND: clip after clip, each starting from the last frames made so far (known frames) and keeping
  the source's look (its first frame as the reference image); the result is the source followed by
  the continuation, with the source's own sound kept.

What the loaded model cannot do fails loudly instead of being imitated: a subject path or a camera
move on a model whose ModelInfo does not support it is BACKEND_UNAVAILABLE (backend "denoiser").

A video is stored unpublished by PACKAGING, put into the feed by PUBLISHING, and removed again when
the job does not end SUCCEEDED (failed or cancelled after packaging), so no stored video lacks a job
that names it.

A response from another service is checked like a request (tensor shapes, counts): a malformed one is
a defect in Kino, recorded as INTERNAL_ERROR, never blamed on the caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kino.v1 import audio_pb2, common_pb2, denoiser_pb2, generation_pb2, ranker_pb2, text_encoder_pb2
from services.common.errors import KinoError, internal, invalid_argument, out_of_range, unavailable
from services.common.limits import MAX_AUDIO_PROMPT_CHARS
from services.common.tensors import from_proto, to_proto
from services.common.text import is_blank
from services.gateway import media
from services.gateway.cameos import CameoRegistry, UsableCameo
from services.gateway.clients import AUDIO, DENOISER, TEXT_ENCODER, ServiceClients
from services.gateway.images import decode_rgb
from services.gateway.metrics import SEAM_CHECKS
from services.gateway.names import parse_name
from services.gateway.packaging import Packager
from services.gateway.seams import SeamDraws
from services.gateway.validation import shot_prompt
from services.gateway.videos import VideoStore

log = logging.getLogger(__name__)


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
    return [
        Clip(
            shot_prompt(spec.prompt, shot.prompt),
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
    if spec.mode == generation_pb2.GENERATION_MODE_REMIX and round(spec.remix_strength * steps) == 0:
        # Submit cannot tell: the model's default step count is known here, from the model itself.
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"spec.remix_strength {spec.remix_strength:g} runs no denoising step of {steps}: use at least "
            f"{1 / steps:g}, or more steps",
            field="spec.remix_strength",
            value=spec.remix_strength,
            min=1 / steps,
            max=1,
        )
    guidance = spec.guidance_scale if spec.HasField("guidance_scale") else info.default_guidance_scale
    return Geometry(width, height, info.fps, spec.fps or info.fps, steps, guidance)


def retime(frames: np.ndarray, fps: float, output_fps: float) -> np.ndarray:
    """The same clip at output_fps, by repeating or dropping frames (no interpolation): its duration
    stays the same. frames (F, H, W, 3) -> (round(F * output_fps / fps), H, W, 3)."""
    if output_fps == fps:
        return frames
    count = max(1, round(len(frames) * output_fps / fps))
    return frames[np.minimum((np.arange(count) * fps / output_fps).astype(np.int64), len(frames) - 1)]


# Frames of the video so far that each extension clip starts from: enough to carry position and
# velocity across the seam (the path planner continues the subject's path from them), while most of
# the clip is new. The DiT's tokens each span two frames (2x4x4 patches). Sampled on one token grid,
# v9 moved its subject less inside a token than across (x1.38, docs/model/NOTES.md), so with an even
# number of known frames every seam was an across-token step: chains of the three report prompts
# continued 6 times from 2 seeds kept 44% of seams within 2x the clip's median step with 4 frames,
# 97% with 3 and 94% with 5 (the sweeps before had only tried 2, 4 and 8). Sampled on alternating grids
# (the default since), the motion is even and parity no longer matters much: 81% with 3, 78% with 4,
# 78% with 5 on the same chains. On four token grids the report's sweep (2 chains) read 4 as better on
# velocity; 72 rendered continuations as the gateway makes them (`python -m training.seam_probe --clips
# 72 --seed 7 --context N --continuations-only`) gave seams within 2x 96% with 3 and 97% with 4, shape
# kept 93% and 90%, flicker-free 92% and 93%: no difference beyond a clip or two, so 3 stays.
# docs/modes/REPORT.md sweeps it on every run.
EXTEND_CONTEXT_FRAMES = 3


@dataclass(frozen=True)
class SourceVideo:
    """A remix's or extension's source: its frames at the model's rate and size, and its sound."""

    frames: np.ndarray  # uint8 (F, H, W, 3) at the model's fps and resolution
    fps: float  # the file's own frame rate
    data: bytes  # the file, for its sound


@dataclass(frozen=True)
class Frames:
    """What the denoising stage made: frames at the model's rate, and the model that made them."""

    frames: np.ndarray  # uint8 (F, H, W, 3)
    fps: float
    model: str


def is_camera_move(camera: common_pb2.CameraMove) -> bool:
    return camera.motion not in (common_pb2.CAMERA_MOTION_UNSPECIFIED, common_pb2.CAMERA_MOTION_STATIC)


def check_capabilities(
    spec: generation_pb2.GenerationSpec, clips: list[Clip], info: denoiser_pb2.ModelInfo
) -> None:
    """A path or a camera move the model cannot perform fails the job: it is never approximated."""
    if spec.subject_path and not info.supports_subject_path:
        raise unavailable(
            "BACKEND_UNAVAILABLE",
            f"the video model {info.model} cannot make a subject follow a path (it has no trajectory "
            "conditioning); deploy a model with ModelInfo.supports_subject_path",
            backend=DENOISER,
            detail="subject_path",
        )
    if any(is_camera_move(clip.camera) for clip in clips) and not info.supports_camera:
        raise unavailable(
            "BACKEND_UNAVAILABLE",
            f"the video model {info.model} cannot move the camera (it has no camera conditioning); "
            "deploy a model with ModelInfo.supports_camera",
            backend=DENOISER,
            detail="camera",
        )


def clip_path(points, start_seconds: float, duration_seconds: float) -> list[common_pb2.TrajectoryPoint]:
    """The part of a video's subject path that falls in one clip, in the clip's own time: the points
    inside it plus where the path is at the clip's start and end (interpolated, or held before the first
    point and after the last), so that every clip of a long video sees its stretch of the path."""
    if not points:
        return []
    ordered = sorted(points, key=lambda p: p.time_seconds)
    times = np.array([p.time_seconds for p in ordered])
    xs, ys = np.array([p.x for p in ordered]), np.array([p.y for p in ordered])
    end = start_seconds + duration_seconds

    def at(time: float) -> common_pb2.TrajectoryPoint:
        x, y = float(np.interp(time, times, xs)), float(np.interp(time, times, ys))
        clip_time = min(max(time - start_seconds, 0.0), duration_seconds)  # no float spill past the clip
        return common_pb2.TrajectoryPoint(time_seconds=clip_time, x=x, y=y)

    inside = [
        common_pb2.TrajectoryPoint(time_seconds=p.time_seconds - start_seconds, x=p.x, y=p.y)
        for p in ordered
        if start_seconds < p.time_seconds < end
    ]
    return [at(start_seconds), *inside, at(end)]


def fit_dialogue(lines, num_frames: int, fps: float) -> list[common_pb2.DialogueLine]:
    """The dialogue placed in the clip as it was made: a line starting after the clip's last frame
    starts on it instead.

    Submit holds every line before the requested duration, but the clip is a whole number of frames
    (at the model's rate, then re-timed to the output rate), which can end a fraction of a frame
    earlier; a line asked for in that sliver would fail the job at the audio stage."""
    last = (num_frames - 1) / fps
    fitted = []
    for line in lines:
        placed = common_pb2.DialogueLine()
        placed.CopyFrom(line)
        placed.start_seconds = min(line.start_seconds, last)
        fitted.append(placed)
    return fitted


def remix_windows(num_frames: int, window: int) -> list[tuple[int, int]]:
    """(start, keep_from) of the windows that cover num_frames source frames, window frames each:
    back to back, the last one moved back to end at the last frame (keeping only its new frames).
    A source shorter than one window is one window (padded by the caller)."""
    if num_frames <= window:
        return [(0, 0)]
    starts = list(range(0, num_frames - window + 1, window))
    windows = [(start, 0) for start in starts]
    covered = starts[-1] + window
    if covered < num_frames:
        windows.append((num_frames - window, covered - (num_frames - window)))
    return windows


class Pipeline:
    def __init__(
        self,
        clients: ServiceClients,
        cameos: CameoRegistry,
        videos: VideoStore,
        packager: Packager,
        seam_redraws: int = 0,
    ) -> None:
        self.clients = clients
        self.cameos = cameos
        self.videos = videos
        self.packager = packager
        self.seam_redraws = seam_redraws

    async def run(self, job: generation_pb2.Job, progress: ProgressReporter) -> generation_pb2.JobResult:
        spec = job.spec

        await progress.stage(generation_pb2.JOB_STAGE_CHECKING)
        cameo_ids = tuple(parse_name(name, "cameos", "spec.cameos") for name in spec.cameos)
        usable_cameos = await self.cameos.check_use(cameo_ids, job.requester)
        if spec.source_video:  # the likenesses a remix or an extension carries on from its source
            source_id = parse_name(spec.source_video, "videos", "spec.source_video")
            await self.cameos.check_carried(source_id, spec.source_video, cameo_ids, job.requester)

        await progress.stage(generation_pb2.JOB_STAGE_ENCODING)
        clips = plan_clips(spec)
        clip_tokens, content_embedding = await self._encode([clip.prompt for clip in clips])

        await progress.stage(generation_pb2.JOB_STAGE_DENOISING)
        info = await self.clients.denoiser_model_info()
        check_capabilities(spec, clips, info)
        geometry = choose_geometry(spec, info)
        source = await self._source(spec, geometry) if spec.source_video else None
        if source is not None and not spec.fps:
            geometry = dataclasses.replace(geometry, output_fps=source.fps)
        reference = await self._reference(usable_cameos, geometry)
        plan = DenoisePlan(self.clients, job, info, geometry, progress, self.seam_redraws)
        if spec.mode == generation_pb2.GENERATION_MODE_REMIX:
            made = await plan.remix(clips[0], clip_tokens[0], source, reference)
        elif spec.mode == generation_pb2.GENERATION_MODE_EXTEND:
            made = await plan.extend(clips[0], clip_tokens[0], source, reference)
        else:
            first = await self._first_frame(spec, geometry)
            made = await plan.clips(clips, clip_tokens, first, reference)
        frames = retime(made.frames, made.fps, geometry.output_fps)
        fps, model = geometry.output_fps, made.model
        prompt = "\n".join(clip.prompt for clip in clips)
        kept = 0
        if spec.mode == generation_pb2.GENERATION_MODE_EXTEND:
            kept = len(retime(source.frames, made.fps, fps))
            if len(frames) <= kept:
                # At a low output rate a short continuation rounds to no frame: it gets one, as any
                # clip does, rather than leaving the audio stage nothing to score.
                frames = np.concatenate([frames, made.frames[-1:]])

        await progress.stage(generation_pb2.JOB_STAGE_AUDIO)
        scored = frames[kept:]
        audio = await self.clients.generate_audio(
            audio_pb2.GenerateRequest(
                frames=to_proto(scored),
                fps=fps,
                prompt=prompt[:MAX_AUDIO_PROMPT_CHARS],
                dialogue=fit_dialogue(spec.dialogue, len(scored), fps),
                seed=spec.seed,
            )
        )
        pcm = _backend_tensor(audio.pcm, "GenerateResponse.pcm", AUDIO, dtype=np.int16, ndim=2)
        if kept:
            pcm = await asyncio.to_thread(_source_sound_then, source.data, kept / fps, pcm, audio.sample_rate)

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
        try:
            await self.clients.upsert_items(ranker_pb2.UpsertItemsRequest(items=[item]))
            await self.videos.set_published([video.name.removeprefix("videos/")], True)
        except BaseException:
            # The ranker may hold the item even when the call failed here (a lost reply, a cancel in
            # flight): the video is about to be deleted, so it must not stay in anyone's feed.
            await asyncio.shield(self._withdraw_from_feed(video.name))
            raise

    async def _withdraw_from_feed(self, name: str) -> None:
        try:
            await self.clients.remove_items(ranker_pb2.RemoveItemsRequest(videos=[name]))
        except KinoError as error:
            log.warning("could not take %s out of the feed after a failed publish: %s", name, error)

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

    async def _source(self, spec: generation_pb2.GenerationSpec, geometry: Geometry) -> SourceVideo:
        """The source video decoded to the model's size and re-timed to its rate; a REMIX with a
        duration keeps only that much of it."""
        video, data = await self.videos.load(spec.source_video, "spec.source_video")
        decoded = await asyncio.to_thread(media.decode_frames, data, (geometry.width, geometry.height))
        frames = retime(decoded, video.fps, geometry.model_fps)
        if spec.mode == generation_pb2.GENERATION_MODE_REMIX and spec.duration_seconds:
            frames = frames[: max(1, round(spec.duration_seconds * geometry.model_fps))]
        return SourceVideo(frames, video.fps, data)

    async def _first_frame(
        self, spec: generation_pb2.GenerationSpec, geometry: Geometry
    ) -> np.ndarray | None:
        if spec.mode != generation_pb2.GENERATION_MODE_IMAGE_TO_VIDEO:
            return None
        return await asyncio.to_thread(decode_rgb, spec.first_frame.data, geometry.width, geometry.height)

    async def _reference(self, cameos: list[UsableCameo], geometry: Geometry) -> np.ndarray | None:
        """The cameo's appearance at the model's size, the subject's reference image."""
        if not cameos:
            return None
        appearance = await asyncio.to_thread(cameos[0].appearance_path.read_bytes)
        return await asyncio.to_thread(decode_rgb, appearance, geometry.width, geometry.height)


async def denoise_clip(
    clients: ServiceClients,
    request: denoiser_pb2.DenoiseRequest,
    clip: int,
    clips: int,
    progress: ProgressReporter,
) -> denoiser_pb2.DenoiseResult:
    """Runs one clip's denoise stream, turning its steps into progress; returns its result."""
    stream = clients.denoise(request)
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


class DenoisePlan:
    """The denoise calls one job's mode asks for, run one after another with their conditioning.

    The model makes clips of a fixed length. A stretch longer than one clip (a long text-to-video
    clip, a long shot, an extension) is continued clip after clip, each starting from the last
    EXTEND_CONTEXT_FRAMES frames made so far; every stretch is cut to its exact length. A continuation
    whose subject jumps at its seam is drawn again, up to `seam_redraws` times (`seams`). Call i of a
    job, redraws counted, uses the seed spec.seed + i.
    """

    def __init__(
        self,
        clients: ServiceClients,
        job: generation_pb2.Job,
        info: denoiser_pb2.ModelInfo,
        geometry: Geometry,
        progress: ProgressReporter,
        seam_redraws: int = 0,
    ) -> None:
        self.clients = clients
        self.job = job
        self.info = info
        self.geometry = geometry
        self.progress = progress
        self.seam_redraws = seam_redraws
        self.model = info.model
        self.fps = geometry.model_fps
        self.calls_done = 0
        self.calls_total = 1

    def _length(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    def _first_clip_frames(self, wanted: int) -> int:
        """The clip length to start a stretch of `wanted` frames with: the shortest supported one that
        holds it, else the longest (and the stretch is continued); any length when none is listed."""
        counts = list(self.info.frame_counts)
        return min((c for c in counts if c >= wanted), default=max(counts)) if counts else wanted

    def _continuation(self, made: int) -> tuple[int, int]:
        """(clip frames, context frames) of the calls that continue a stretch `made` frames long."""
        counts = list(self.info.frame_counts)
        window = max(counts) if counts else EXTEND_CONTEXT_FRAMES + 1
        return window, max(1, min(EXTEND_CONTEXT_FRAMES, window - 1, made))

    def _calls_to_continue(self, made: int, wanted: int) -> int:
        window, context = self._continuation(made)
        return math.ceil(max(0, wanted - made) / (window - context))

    async def clips(
        self,
        clips: list[Clip],
        clip_tokens: list[common_pb2.Tensor],
        first_frame: np.ndarray | None,
        reference: np.ndarray | None,
    ) -> Frames:
        """Text-, image-to-video and storyboards: one stretch per clip, cut together."""
        spec = self.job.spec
        carry_subject = spec.mode == generation_pb2.GENERATION_MODE_STORYBOARD and not is_blank(spec.prompt)
        if reference is None and first_frame is not None:
            # The uploaded frame is the subject's look as well as the clip's start. As the reference image
            # too, the DiT keeps the subject's size, where from the first frame alone it drew the size it
            # draws for the prompt (96 held-out prompts: size read right 88% -> 98%, flickering clips
            # 15% -> 8%, shape 92% -> 88%), as an extension takes its source's first frame.
            reference = first_frame
        wanted = [self._length(clip.duration_seconds) for clip in clips]
        self.calls_total = sum(1 + self._calls_to_continue(self._first_clip_frames(n), n) for n in wanted)
        made, start = [], 0.0
        for index, (clip, tokens, length) in enumerate(zip(clips, clip_tokens, wanted, strict=True)):
            frames = await self._run(
                tokens,
                self._first_clip_frames(length),
                clip=clip,
                start_seconds=start,
                first_frames=None if first_frame is None or index else first_frame[None],
                reference=reference,
            )
            frames = await self._continue(frames, length, tokens, clip, start, reference)
            if carry_subject and reference is None:
                reference = frames[len(frames) // 2]
            made.append(frames)
            start += clip.duration_seconds
        return Frames(np.concatenate(made), self.fps, self.model)

    async def remix(
        self, clip: Clip, tokens: common_pb2.Tensor, source: SourceVideo, reference: np.ndarray | None
    ) -> Frames:
        """The source, window by window, noised to the remix strength and denoised under the new prompt."""
        counts = list(self.info.frame_counts)
        window = max(counts) if counts else len(source.frames)
        frames = source.frames
        if len(frames) < window:
            frames = np.concatenate([frames, np.repeat(frames[-1:], window - len(frames), axis=0)])
        windows = remix_windows(len(frames), window)
        self.calls_total = len(windows)
        made = []
        for start, keep_from in windows:
            out = await self._run(
                tokens,
                window,
                clip=clip,
                start_seconds=start / self.fps,
                source_video=frames[start : start + window],
                reference=reference,
            )
            made.append(out[keep_from:])
        return Frames(np.concatenate(made)[: len(source.frames)], self.fps, self.model)

    async def extend(
        self, clip: Clip, tokens: common_pb2.Tensor, source: SourceVideo, reference: np.ndarray | None
    ) -> Frames:
        """The source followed by its continuation (its first frame the subject's reference, see
        `_continue`)."""
        wanted = len(source.frames) + self._length(clip.duration_seconds)
        self.calls_total = self._calls_to_continue(len(source.frames), wanted)
        return Frames(
            await self._continue(source.frames, wanted, tokens, clip, 0.0, reference), self.fps, self.model
        )

    async def _continue(
        self,
        frames: np.ndarray,
        wanted: int,
        tokens: common_pb2.Tensor,
        clip: Clip,
        start_seconds: float,
        reference: np.ndarray | None,
    ) -> np.ndarray:
        """frames (F, H, W, 3) continued clip by clip from their last frames, cut to `wanted` frames.

        Without a reference image (a cameo's appearance, a storyboard's subject) the first frame is the
        subject's reference, so a long chain of clips keeps the look it started with: from its last frames
        alone the DiT drifted to the size the prompt gets without them (16 chains of six calls in process:
        the first segment's size kept in 83% of segments, 95% with the first frame as the reference; shape
        91% either way)."""
        reference = frames[0] if reference is None else reference
        while len(frames) < wanted:
            window, context = self._continuation(len(frames))
            draw = functools.partial(
                self._run,
                tokens,
                window,
                clip=clip,
                start_seconds=start_seconds + (len(frames) - context) / self.fps,
                first_frames=frames[-context:],
                reference=reference,
            )
            frames = np.concatenate([frames, await self._without_seam_jump(frames, context, draw)])
        return frames[:wanted]

    async def _without_seam_jump(
        self, frames: np.ndarray, context: int, draw: Callable[[], Awaitable[np.ndarray]]
    ) -> np.ndarray:
        """The new frames of one continuation call, drawn again (the next calls' seeds, up to
        `seam_redraws` times) while the subject jumps at the seam or is lost in some new frame; every
        draw failing, the smoothest is kept. Where the known frames show no subject, the first draw is
        taken as it is (`seams.SeamDraws`)."""
        draws = SeamDraws(frames)
        for attempt in range(1 + self.seam_redraws):
            if attempt:
                self.calls_total += 1
            # Off the event loop: the subject is found on every pixel of the call's frames.
            if await asyncio.to_thread(draws.take, (await draw())[context:]):
                break
            log.info(
                "job %s: draw %d of %d of call %d jumps at its seam or loses its subject (%s)",
                self.job.name,
                attempt + 1,
                1 + self.seam_redraws,
                self.calls_done,
                "no subject in some frame"
                if draws.last_ratio is None
                else f"{draws.last_ratio:.1f}x the subject's step",
            )
        SEAM_CHECKS.labels(draws.outcome).inc()
        return draws.kept

    async def _run(
        self,
        tokens: common_pb2.Tensor,
        num_frames: int,
        *,
        clip: Clip,
        start_seconds: float,
        first_frames: np.ndarray | None = None,
        reference: np.ndarray | None = None,
        source_video: np.ndarray | None = None,
    ) -> np.ndarray:
        """One denoise call, the next of this job's; returns its frames (F, H, W, 3)."""
        job, geometry, index = self.job, self.geometry, self.calls_done
        request = denoiser_pb2.DenoiseRequest(
            text_tokens=tokens,
            num_frames=num_frames,
            height=geometry.height,
            width=geometry.width,
            num_steps=geometry.num_steps,
            guidance_scale=geometry.guidance_scale,
            seed=(job.spec.seed + index) % (1 << 63),
            subject_path=clip_path(job.spec.subject_path, start_seconds, num_frames / self.fps),
            priority=job.priority,
            tenant=job.requester,
        )
        if is_camera_move(clip.camera):
            request.camera.CopyFrom(clip.camera)
        if first_frames is not None:
            request.first_frames.CopyFrom(to_proto(np.ascontiguousarray(first_frames)))
        if reference is not None:
            request.reference_image.CopyFrom(to_proto(np.ascontiguousarray(reference)))
        if source_video is not None:
            request.source_video.CopyFrom(to_proto(np.ascontiguousarray(source_video)))
            request.strength = job.spec.remix_strength
        count = max(self.calls_total, index + 1)
        result = await denoise_clip(self.clients, request, index, count, self.progress)
        self.calls_done += 1
        frames = _backend_tensor(result.frames, "DenoiseResult.frames", DENOISER, dtype=np.uint8, ndim=4)
        if frames.shape != (num_frames, geometry.height, geometry.width, 3):
            raise internal(
                "INTERNAL_ERROR",
                f"the denoiser returned frames of shape {frames.shape} for a request of "
                f"{(num_frames, geometry.height, geometry.width, 3)}",
                backend=DENOISER,
            )
        self.fps, self.model = result.fps or self.fps, result.model or self.model
        return frames


def _source_sound_then(data: bytes, seconds: float, pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """The source file's own sound for its `seconds` (silence if it had none), then pcm int16 (S, C)."""
    kept = round(seconds * sample_rate)
    source = media.decode_pcm(data, sample_rate, pcm.shape[1])
    if source is None:
        source = np.zeros((0, pcm.shape[1]), np.int16)
    return np.concatenate([media.fit_pcm(source, kept), pcm])


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
