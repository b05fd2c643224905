"""The pipeline's stages over real gRPC, with scaffold services where the real ones are not deployed.

Packaging is the real thing (ffmpeg, watermark, C2PA signing); the frames it packages come from the
test-only SlowDenoiser, so these tests check the job machinery and the file format, not a model.
"""

from __future__ import annotations

import hashlib

import grpc
import numpy as np
import pytest

from kino.v1 import common_pb2, denoiser_pb2, generation_pb2
from services.common.errors import KinoError
from services.common.limits import MAX_AUDIO_PROMPT_CHARS
from services.common.tensors import from_proto
from services.gateway import media
from services.gateway.packaging import viewing_size
from services.gateway.pipeline import (
    EXTEND_CONTEXT_FRAMES,
    choose_geometry,
    clip_path,
    plan_clips,
    remix_windows,
    retime,
)
from services.gateway.validation import DEFAULT_REMIX_STRENGTH
from tests.gateway.helpers import encoded_image, job_error, wait_terminal
from tests.gateway.scaffold import (
    FeedRankerLosingReplies,
    RecordingFeedRanker,
    ScaffoldTextEncoder,
    SilentAudio,
    SlowDenoiser,
)
from tests.gateway.test_jobs import submit_request

SUCCEEDED, FAILED = generation_pb2.JOB_STATE_SUCCEEDED, generation_pb2.JOB_STATE_FAILED


async def download(stub, name: str) -> bytes:
    return b"".join(
        [c.chunk async for c in stub.DownloadVideo(generation_pb2.DownloadVideoRequest(name=name))]
    )


async def video_making_gateway(start_gateway, start_scaffold, **services):
    """A gateway over scaffold services that make frames and sound (and `services`, e.g. a ranker)."""
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(),
        denoiser=SlowDenoiser(steps=2, step_seconds=0.0, finish="frames"),
        audio=SilentAudio(),
        **services,
    )
    return backends, await start_gateway(backends.address)


def mp4_files(gateway) -> list:
    return list(gateway.settings.asset_dir.glob("*.mp4")) if gateway.settings.asset_dir.exists() else []


async def test_a_job_that_gets_frames_and_sound_becomes_a_signed_published_video(
    start_gateway, start_scaffold
):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(),
        denoiser=SlowDenoiser(steps=4, step_seconds=0.0, finish="frames"),
        audio=SilentAudio(),
        ranker=RecordingFeedRanker(),
    )
    gateway = await start_gateway(backends.address)
    job = await gateway.stub.Submit(submit_request(seed=7, publish_to_feed=True, duration_seconds=1))
    job = await wait_terminal(gateway.stub, job.name, timeout=60)
    assert job.state == SUCCEEDED, job.error
    result = job.result
    assert result.video.startswith("videos/") and result.download_uri == f"kino://{result.video}"
    assert (result.seed, result.num_frames, result.fps) == (7, 8, 8.0)
    assert (result.width, result.height) == (256, 256)
    assert result.provenance.c2pa_signed and result.provenance.watermark == result.video
    assert result.provenance.job == job.name and result.provenance.model == "scaffold-slow-denoiser"
    assert job.progress.fraction == 1.0 and job.progress.stage == generation_pb2.JOB_STAGE_PUBLISHING

    video = await gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=result.video))
    assert video.published and video.job == job.name and video.mime_type == "video/mp4"
    data = await download(gateway.stub, result.video)
    assert len(data) == video.size_bytes and hashlib.sha256(data).hexdigest() == video.sha256
    info = media.probe(data)
    assert (info.video.width, info.video.height, info.video.num_frames) == (256, 256, 8)
    assert info.audio is not None and info.audio.sample_rate == 48000

    verdict = await gateway.stub.Verify(generation_pb2.VerifyRequest(file=data))
    assert verdict.manifest_present and verdict.manifest_valid, verdict.manifest_issues
    assert verdict.watermark_found and verdict.watermark_video == result.video
    assert verdict.provenance.job == job.name

    (upsert,) = backends.ranker.upserts
    (item,) = upsert.items
    assert (item.video, item.creator, item.prompt) == (result.video, "alice", "a red ball bounces")
    assert "ai-generated" in item.labels
    embedding = from_proto(item.content_embedding, field="content_embedding")
    assert embedding.shape == (16,) and abs(float(np.linalg.norm(embedding)) - 1) < 1e-5
    (audio_request,) = backends.audio.requests
    assert audio_request.fps == 8.0 and audio_request.seed == 7


async def test_storyboard_denoises_one_clip_per_shot_and_joins_them(start_gateway, start_scaffold):
    backends, gateway = await video_making_gateway(start_gateway, start_scaffold)
    request = generation_pb2.SubmitRequest(
        requester="alice",
        spec=generation_pb2.GenerationSpec(
            mode=generation_pb2.GENERATION_MODE_STORYBOARD,
            prompt="pastel colors",
            seed=100,
            width=64,
            height=64,
            shots=[generation_pb2.Shot(prompt=f"shot {i}", duration_seconds=1 + i) for i in range(3)],
        ),
    )
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(request)).name, timeout=60)
    assert job.state == SUCCEEDED, job.error
    requests = backends.denoiser.requests
    # The 3-second shot is longer than a clip: a second call continues it from its last frames.
    assert [r.seed for r in requests] == [100, 101, 102, 103]
    assert [r.num_frames for r in requests] == [8, 16, 16, 16]
    assert [r.first_frames.shape for r in requests] == [[], [], [], [EXTEND_CONTEXT_FRAMES, 32, 32, 3]]
    # The shared prompt names the subject: later shots take its look from the first shot.
    assert [r.HasField("reference_image") for r in requests] == [False, True, True, True]
    assert (job.result.num_frames, job.result.width, job.result.height) == (48, 64, 64)
    assert not job.publish_to_feed
    assert job.progress.stage == generation_pb2.JOB_STAGE_PACKAGING
    video = await gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=job.result.video))
    assert not video.published


async def test_a_long_storyboard_reaches_the_audio_service_within_its_limits(start_gateway, start_scaffold):
    """Shot prompts joined pass the audio service's prompt limit, and frame rounding ends the video
    before a line placed near its requested end: the job must still get its sound."""
    backends, gateway = await video_making_gateway(start_gateway, start_scaffold)
    shots = [
        generation_pb2.Shot(prompt=f"shot {i} " + "rolls " * 150, duration_seconds=seconds)
        for i, seconds in enumerate([0.5, 0.5, 0.55])  # 4 + 4 + 4 frames at 8 fps: 1.5 s, not 1.55
    ]
    request = generation_pb2.SubmitRequest(
        requester="alice",
        spec=generation_pb2.GenerationSpec(
            mode=generation_pb2.GENERATION_MODE_STORYBOARD,
            shots=shots,
            dialogue=[common_pb2.DialogueLine(speaker="ann", text="the end", start_seconds=1.52)],
        ),
    )
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(request)).name, timeout=60)
    assert job.state == SUCCEEDED, job.error
    (audio_request,) = backends.audio.requests
    assert len(audio_request.prompt) == MAX_AUDIO_PROMPT_CHARS
    assert audio_request.prompt.startswith(shots[0].prompt)
    (line,) = audio_request.dialogue
    assert (line.speaker, line.text) == ("ann", "the end")
    assert line.start_seconds == 11 / 8  # the last of the 12 frames made


async def test_a_video_longer_than_a_clip_continues_with_its_first_frame_as_the_reference(
    start_gateway, start_scaffold
):
    backends, gateway = await video_making_gateway(start_gateway, start_scaffold)
    job = await gateway.stub.Submit(submit_request(duration_seconds=3, width=64, height=64))
    job = await wait_terminal(gateway.stub, job.name, timeout=60)
    assert job.state == SUCCEEDED, job.error
    first, then = backends.denoiser.requests
    assert not first.HasField("reference_image") and then.first_frames.shape[0] == EXTEND_CONTEXT_FRAMES
    reference = from_proto(then.reference_image, field="reference_image", dtype=np.uint8, ndim=3)
    assert reference.shape == (32, 32, 3) and (reference == 128).all()  # the scaffold's first frame


async def test_without_an_audio_service_the_job_fails_at_audio(start_gateway, start_scaffold):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=2, step_seconds=0.0, finish="frames")
    )
    gateway = await start_gateway(backends.address)
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(submit_request())).name)
    error = job_error(job)
    assert (job.state, error.reason, error.metadata["backend"]) == (FAILED, "BACKEND_UNAVAILABLE", "audio")
    assert job.progress.stage == generation_pb2.JOB_STAGE_AUDIO
    assert mp4_files(gateway) == []


async def test_a_failed_publish_removes_the_video(start_gateway, start_scaffold):
    backends, gateway = await video_making_gateway(start_gateway, start_scaffold)
    job = await gateway.stub.Submit(submit_request(publish_to_feed=True))
    job = await wait_terminal(gateway.stub, job.name, timeout=60)
    error = job_error(job)
    assert (job.state, error.reason, error.metadata["backend"]) == (
        FAILED,
        "BACKEND_UNAVAILABLE",
        "feed_ranker",
    )
    assert job.progress.stage == generation_pb2.JOB_STAGE_PUBLISHING and not job.HasField("result")
    assert mp4_files(gateway) == []


async def test_a_publish_whose_reply_is_lost_takes_the_video_out_of_the_feed(start_gateway, start_scaffold):
    ranker = FeedRankerLosingReplies()
    backends, gateway = await video_making_gateway(start_gateway, start_scaffold, ranker=ranker)
    job = await gateway.stub.Submit(submit_request(publish_to_feed=True))
    job = await wait_terminal(gateway.stub, job.name, timeout=60)
    assert (job.state, job_error(job).reason) == (FAILED, "BACKEND_UNAVAILABLE")
    (upsert,) = ranker.upserts
    (removal,) = ranker.removals  # the ranker may have kept the item: the video is gone, so is the item
    assert list(removal.videos) == [upsert.items[0].video]
    assert mp4_files(gateway) == []


async def test_a_malformed_tensor_from_a_backend_is_an_internal_error(start_gateway, start_scaffold):
    backends = await start_scaffold(encoder=ScaffoldTextEncoder(malformed=True), denoiser=SlowDenoiser())
    gateway = await start_gateway(backends.address)
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(submit_request())).name)
    error = job_error(job)
    assert (job.state, error.code, error.reason) == (FAILED, grpc.StatusCode.INTERNAL, "INTERNAL_ERROR")
    assert error.metadata["backend"] == "text_encoder" and "tokens" in error.metadata["field"]
    assert backends.denoiser.requests == []


async def test_image_to_video_sends_the_first_frame_at_the_model_resolution_and_as_the_reference(
    start_gateway, start_scaffold
):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=2, step_seconds=0.0)
    )
    gateway = await start_gateway(backends.address)
    request = submit_request(mode=generation_pb2.GENERATION_MODE_IMAGE_TO_VIDEO, width=480, height=320)
    request.spec.first_frame.CopyFrom(common_pb2.Image(data=encoded_image(90, 60, "JPEG")))
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(request)).name)
    assert job_error(job).reason == "BACKEND_UNAVAILABLE"
    (sent,) = backends.denoiser.requests
    assert (sent.width, sent.height) == (48, 32)
    first = from_proto(sent.first_frames, field="first_frames", dtype=np.uint8, ndim=4)
    assert first.shape == (1, 32, 48, 3) and first.std() > 0
    reference = from_proto(sent.reference_image, field="reference_image", dtype=np.uint8, ndim=3)
    assert np.array_equal(reference, first[0])  # the subject's look: the DiT keeps its size


async def test_remix_sends_the_decoded_source_window_by_window_with_its_strength(
    start_gateway, start_scaffold
):
    backends, gateway = await video_making_gateway(start_gateway, start_scaffold)
    storyboard = submit_request(prompt="", mode=generation_pb2.GENERATION_MODE_STORYBOARD)
    storyboard.spec.shots.extend(generation_pb2.Shot(prompt="a ball", duration_seconds=d) for d in (2, 1))
    made = await gateway.stub.Submit(storyboard)
    made = await wait_terminal(gateway.stub, made.name, timeout=60)
    assert made.state == SUCCEEDED, made.error
    request = submit_request(mode=generation_pb2.GENERATION_MODE_REMIX, source_video=made.result.video)
    job = await gateway.stub.Submit(request)
    assert job.spec.remix_strength == np.float32(DEFAULT_REMIX_STRENGTH) and job.spec.duration_seconds == 0
    job = await wait_terminal(gateway.stub, job.name, timeout=60)
    assert job.state == SUCCEEDED, job.error
    remixes = backends.denoiser.requests[2:]
    # 24 source frames in windows of 16: frames 0-15, then 8-23 of which only the last 8 are new.
    assert len(remixes) == 2 and all(r.strength == np.float32(DEFAULT_REMIX_STRENGTH) for r in remixes)
    windows = [from_proto(r.source_video, field="source_video", dtype=np.uint8, ndim=4) for r in remixes]
    assert [w.shape for w in windows] == [(16, 32, 32, 3)] * 2
    # The flat gray source comes back within the watermark's few levels.
    assert np.abs(windows[0].astype(int) - 128).mean() < 2
    assert (job.result.num_frames, job.result.provenance.parent_video) == (24, made.result.video)


def test_plan_clips_and_geometry():
    spec = generation_pb2.GenerationSpec(
        mode=generation_pb2.GENERATION_MODE_STORYBOARD,
        prompt="noir",
        camera=common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_PAN_LEFT, amount=0.5),
        shots=[
            generation_pb2.Shot(prompt="a", duration_seconds=1),
            generation_pb2.Shot(
                prompt="b",
                duration_seconds=2,
                camera=common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_ZOOM_IN),
            ),
        ],
    )
    clips = plan_clips(spec)
    assert [c.prompt for c in clips] == ["noir. a", "noir. b"]
    assert [c.camera.motion for c in clips] == [
        common_pb2.CAMERA_MOTION_PAN_LEFT,
        common_pb2.CAMERA_MOTION_ZOOM_IN,
    ]

    info = denoiser_pb2.ModelInfo(
        model="m",
        resolutions=[
            denoiser_pb2.Resolution(width=64, height=64),
            denoiser_pb2.Resolution(width=96, height=64),
        ],
        fps=8,
        max_steps=50,
        default_steps=20,
        default_guidance_scale=4.0,
    )
    native = choose_geometry(generation_pb2.GenerationSpec(), info)
    assert (native.width, native.height, native.model_fps, native.output_fps) == (64, 64, 8, 8)
    assert (native.num_steps, native.guidance_scale) == (20, 4.0)
    wide_spec = generation_pb2.GenerationSpec(width=1920, height=1080, fps=24, num_steps=30, guidance_scale=0)
    wide = choose_geometry(wide_spec, info)
    assert (wide.width, wide.height, wide.model_fps, wide.output_fps) == (96, 64, 8, 24)
    assert (wide.num_steps, wide.guidance_scale) == (30, 0.0)
    with pytest.raises(KinoError) as caught:
        choose_geometry(generation_pb2.GenerationSpec(num_steps=60), info)
    assert (caught.value.reason, caught.value.metadata["max"]) == ("OUT_OF_RANGE", "50")
    remix = generation_pb2.GENERATION_MODE_REMIX
    with pytest.raises(KinoError) as caught:  # 0.02 of 20 steps rounds to none
        choose_geometry(generation_pb2.GenerationSpec(mode=remix, remix_strength=0.02), info)
    assert (caught.value.reason, caught.value.metadata["field"]) == ("OUT_OF_RANGE", "spec.remix_strength")
    assert (
        choose_geometry(generation_pb2.GenerationSpec(mode=remix, remix_strength=0.05), info).num_steps == 20
    )
    frames = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert [int(f[0, 0, 0]) for f in retime(frames, 8, 24)] == [i // 3 for i in range(24)]
    assert [int(f[0, 0, 0]) for f in retime(frames, 8, 4)] == [0, 2, 4, 6]
    assert retime(frames, 8, 8) is frames
    assert remix_windows(10, 16) == [(0, 0)]
    assert remix_windows(32, 16) == [(0, 0), (16, 0)]
    assert remix_windows(40, 16) == [(0, 0), (16, 0), (24, 8)]
    assert viewing_size(generation_pb2.GenerationSpec(), 32, 48) == (256, 384)
    assert viewing_size(generation_pb2.GenerationSpec(), 512, 512) == (512, 512)
    assert viewing_size(generation_pb2.GenerationSpec(width=100, height=60), 32, 32) == (100, 60)


def test_each_clip_gets_its_stretch_of_the_path_with_the_ends_interpolated():
    path = [common_pb2.TrajectoryPoint(time_seconds=t, x=x, y=0.5) for t, x in ((0.0, 0.2), (3.0, 0.8))]
    first, second = clip_path(path, 0.0, 2.0), clip_path(path, 2.0, 2.0)
    assert [(p.time_seconds, round(p.x, 3)) for p in first] == [(0.0, 0.2), (2.0, 0.6)]
    assert [(p.time_seconds, round(p.x, 3)) for p in second] == [(0.0, 0.6), (1.0, 0.8), (2.0, 0.8)]
    assert clip_path([], 0.0, 2.0) == []
