"""The VideoDenoiser over real gRPC on loopback, served by the step-level engine with a tiny model."""

import asyncio
import dataclasses

import grpc
import numpy as np
import pytest
import pytest_asyncio
import torch
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from kino.v1 import common_pb2, denoiser_pb2, denoiser_pb2_grpc
from services.common.errors import KinoError, error_info
from services.common.server import KinoServer
from services.common.settings import load_settings
from services.common.tensors import from_proto, to_proto
from services.denoiser.core import DenoiserCore
from services.denoiser.engine.executor import DeviceUnavailableError
from services.denoiser.servicer import registration
from tests.denoiser.engine.helpers import TEXT_DIM, TINY_CONFIG, prompt, save_tiny_weights, tiny_executor


async def serve(**denoiser):
    settings = load_settings(env={}, server={"port": 0, "metrics_port": -1}, denoiser=denoiser)
    core = DenoiserCore(tiny_executor(), settings.denoiser)
    server = KinoServer(settings.server, [registration(settings, core)])
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    return server, channel, core


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a shared 2-core machine OpenMP threads waiting on each other make the tiny model crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served():
    server, channel, core = await serve(preview_every=2)
    yield denoiser_pb2_grpc.VideoDenoiserStub(channel), core
    await channel.close()
    await server.stop(0)


def make_request(seed=1, **fields) -> denoiser_pb2.DenoiseRequest:
    values = dict(
        text_tokens=to_proto(prompt(seed)), num_frames=16, height=64, width=64,
        num_steps=4, guidance_scale=3.0, seed=seed,
    )  # fmt: skip
    values.update(fields)
    return denoiser_pb2.DenoiseRequest(**values)


async def responses(stub, request, **kwargs):
    return [r async for r in stub.Denoise(request, **kwargs)]


async def responses_of(call):
    """The rest of a call's responses, read with the read() API (a call may not mix it with iteration)."""
    out = []
    while (response := await call.read()) != grpc.aio.EOF:
        out.append(response)
    return out


def frames_of(responses) -> np.ndarray:
    return from_proto(responses[-1].result.frames, field="frames", dtype=np.uint8, ndim=4)


async def test_model_info_describes_the_loaded_model(served):
    stub, _ = served
    info = await stub.GetModelInfo(denoiser_pb2.GetModelInfoRequest())
    assert info.model == "kino-shapes-dit-tiny-random-v1"
    assert (info.text_dim, list(info.frame_counts), info.fps) == (TEXT_DIM, [16], 8.0)
    assert [(r.height, r.width) for r in info.resolutions] == [(64, 64)]
    assert (info.max_steps, info.default_steps, info.default_guidance_scale) == (50, 4, 3.0)


async def test_denoise_streams_progress_previews_then_frames(served):
    stub, _ = served
    stream = await responses(stub, make_request(num_steps=5))
    assert [r.WhichOneof("event") for r in stream] == [
        "progress", "progress", "preview", "progress", "progress", "preview", "progress", "result",
    ]  # fmt: skip
    assert [r.progress.step for r in stream if r.HasField("progress")] == [1, 2, 3, 4, 5]
    assert {r.progress.total_steps for r in stream if r.HasField("progress")} == {5}
    preview = from_proto(stream[2].preview.frames, field="preview", dtype=np.uint8, ndim=4)
    assert preview.shape == (16, 16, 16, 3) and stream[2].preview.step == 2
    frames = frames_of(stream)
    assert frames.shape == (16, 64, 64, 3) and frames.std() > 0
    assert (stream[-1].result.fps, stream[-1].result.model) == (8.0, "kino-shapes-dit-tiny-random-v1")


async def test_same_request_and_seed_give_the_same_video_bit_for_bit_even_when_batched(served):
    stub, core = served
    alone = frames_of(await responses(stub, make_request(seed=7)))
    crowd = [make_request(seed=s, num_steps=6, priority=common_pb2.PRIORITY_BATCH) for s in (8, 9, 10)]
    mine = make_request(seed=7, priority=common_pb2.PRIORITY_BATCH)  # batch requests always share steps
    results = await asyncio.gather(*(responses(stub, r) for r in [*crowd, mine]))
    assert np.array_equal(alone, frames_of(results[-1]))
    assert not np.array_equal(alone, frames_of(results[0]))


async def test_engine_metrics_are_exported(served):
    stub, _ = served
    batch = common_pb2.PRIORITY_BATCH
    before = REGISTRY.get_sample_value("kino_denoiser_batch_size_rows_count") or 0
    await asyncio.gather(*(responses(stub, make_request(seed=s, priority=batch)) for s in range(3)))
    assert REGISTRY.get_sample_value("kino_denoiser_batch_size_rows_count") - before >= 4
    assert REGISTRY.get_sample_value("kino_denoiser_step_duration_seconds_count") > 0
    assert REGISTRY.get_sample_value("kino_denoiser_latency_seconds_count", {"priority": "batch"}) >= 3
    assert (
        REGISTRY.get_sample_value("kino_denoiser_time_to_first_preview_seconds_count", {"priority": "batch"})
        >= 3
    )
    assert REGISTRY.get_sample_value("kino_denoiser_queue_depth_requests", {"priority": "batch"}) == 0


def bad(field, value):
    """A change to a valid request: clear the field (value None), or set it."""

    def change(request):
        if value is None:
            request.ClearField(field)
        elif isinstance(value, Message):
            getattr(request, field).CopyFrom(value)
        else:
            setattr(request, field, value)
        return request

    return change


NAN_TOKENS = prompt(1)
NAN_TOKENS[2, 3] = np.nan
INF_TOKENS = prompt(1)
INF_TOKENS[0, 0] = np.inf
BAD_REQUESTS = {
    "missing text": (bad("text_tokens", None), "FIELD_REQUIRED"),
    "wrong embedding width": (bad("text_tokens", to_proto(np.zeros((4, 100), np.float32))), "INVALID_TENSOR"),
    "integer tokens": (bad("text_tokens", common_pb2.Tensor(dtype=common_pb2.DTYPE_INT32, shape=[2, TEXT_DIM], data=bytes(8 * TEXT_DIM))), "INVALID_TENSOR"),
    "short tensor bytes": (bad("text_tokens", common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=[2, TEXT_DIM], data=b"\0" * 12)), "INVALID_TENSOR"),
    "NaN in tokens": (bad("text_tokens", to_proto(NAN_TOKENS)), "INVALID_TENSOR"),
    "Inf in tokens": (bad("text_tokens", to_proto(INF_TOKENS)), "INVALID_TENSOR"),
    "tokens too large to normalize": (bad("text_tokens", to_proto(prompt(1) * np.float32(1e30))), "INVALID_TENSOR"),
    "frame count": (bad("num_frames", 17), "OUT_OF_RANGE"),
    "size": (bad("height", 48), "OUT_OF_RANGE"),
    "zero steps": (bad("num_steps", 0), "OUT_OF_RANGE"),
    "too many steps": (bad("num_steps", 51), "OUT_OF_RANGE"),
    "guidance too high": (bad("guidance_scale", 20.5), "OUT_OF_RANGE"),
    "negative guidance": (bad("guidance_scale", -1.0), "OUT_OF_RANGE"),
    "NaN guidance": (bad("guidance_scale", float("nan")), "OUT_OF_RANGE"),
    "negative seed": (bad("seed", -1), "OUT_OF_RANGE"),
    "unknown priority": (bad("priority", 9), "UNKNOWN_ENUM_VALUE"),
    "first frames of another size": (bad("first_frames", to_proto(np.zeros((1, 32, 32, 3), np.uint8))), "INVALID_TENSOR"),
    "as many first frames as the clip": (bad("first_frames", to_proto(np.zeros((16, 64, 64, 3), np.uint8))), "INVALID_TENSOR"),
    "reference as float": (bad("reference_image", to_proto(np.zeros((64, 64, 3), np.float32))), "INVALID_TENSOR"),
    "strength without a source": (bad("strength", 0.5), "INVALID_FOR_MODE"),
    "camera amount above 1": (bad("camera", common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_PAN_LEFT, amount=1.5)), "OUT_OF_RANGE"),
    "NaN amount of a static camera": (bad("camera", common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_STATIC, amount=float("nan"))), "OUT_OF_RANGE"),
    "unknown camera motion": (bad("camera", common_pb2.CameraMove(motion=42, amount=0.3)), "UNKNOWN_ENUM_VALUE"),
    "path outside the frame": (lambda r: (r.subject_path.add(time_seconds=0, x=1.2, y=0.5), r)[1], "OUT_OF_RANGE"),
    "path point after the clip": (lambda r: (r.subject_path.add(time_seconds=9, x=0.5, y=0.5), r)[1], "OUT_OF_RANGE"),
    "NaN in a path": (lambda r: (r.subject_path.add(time_seconds=0, x=float("nan"), y=0.5), r)[1], "OUT_OF_RANGE"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
async def test_bad_input_is_invalid_argument_with_a_reason(served, case):
    stub, core = served
    change, reason = BAD_REQUESTS[case]
    request = change(make_request())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await responses(stub, request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value)[0] == reason
    assert core.engine.scheduler.num_live == 0


async def test_image_to_video_keeps_the_given_first_frames_and_a_reference_is_accepted(served):
    stub, _ = served
    first = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    stream = await responses(
        stub,
        make_request(first_frames=to_proto(first), reference_image=to_proto(first[0])),
    )
    frames = frames_of(stream)
    assert np.array_equal(frames[:2], first)


async def test_a_subject_path_reaches_the_model_and_a_camera_move_transforms_the_frames(served):
    stub, core = served
    info = await stub.GetModelInfo(denoiser_pb2.GetModelInfoRequest())
    assert info.supports_subject_path and info.supports_camera
    plain = frames_of(await responses(stub, make_request()))
    path = [common_pb2.TrajectoryPoint(time_seconds=t, x=0.2 + 0.3 * t, y=0.5) for t in (0.0, 1.0, 2.0)]
    along = frames_of(await responses(stub, make_request(subject_path=path)))
    assert not np.array_equal(plain, along)  # the path is an input of the network
    pan = common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_PAN_RIGHT, amount=0.25)
    panned = frames_of(await responses(stub, make_request(camera=pan)))
    # The first frame is the scene as it is; by the last, the view has moved a quarter frame right.
    assert np.array_equal(panned[0], plain[0])
    assert np.array_equal(panned[-1][:, : 64 - 16], plain[-1][:, 16:])


async def test_a_model_without_a_path_input_refuses_paths_and_camera_moves():
    executor = tiny_executor()
    executor.card = dataclasses.replace(executor.card, supports_subject_path=False, supports_camera=False)
    core = DenoiserCore(executor, load_settings(env={}).denoiser)
    path = [common_pb2.TrajectoryPoint(time_seconds=0.0, x=0.5, y=0.5)]
    pan = common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_PAN_LEFT, amount=0.3)
    for request, field in (
        (make_request(subject_path=path), "subject_path"),
        (make_request(camera=pan), "camera"),
    ):
        with pytest.raises(KinoError) as raised:
            core.to_engine_request(request)
        assert (raised.value.reason, raised.value.metadata["field"]) == ("INVALID_FOR_MODE", field)


async def test_remix_runs_only_the_steps_its_strength_asks_for(served):
    stub, _ = served
    source = np.random.default_rng(1).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    stream = await responses(stub, make_request(num_steps=10, source_video=to_proto(source), strength=0.3))
    assert [r.progress.step for r in stream if r.HasField("progress")] == [1, 2, 3]
    assert {r.progress.total_steps for r in stream if r.HasField("progress")} == {3}


async def test_cancelling_the_call_stops_compute_at_the_next_step(served):
    stub, core = served
    call = stub.Denoise(make_request(num_steps=50))
    async for response in call:
        assert response.HasField("progress")
        break
    call.cancel()
    for _ in range(100):
        if core.engine.scheduler.num_live == 0:
            break
        await asyncio.sleep(0.02)
    assert core.engine.scheduler.num_live == 0
    assert (
        REGISTRY.get_sample_value(
            "kino_denoiser_requests_total", {"priority": "interactive", "outcome": "job_cancelled"}
        )
        >= 1
    )


async def test_a_deadline_the_server_cannot_meet_is_refused_before_any_compute(served):
    stub, core = served
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await responses(stub, make_request(num_steps=50), timeout=0.01)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reason, metadata = error_info(raised.value)
    if reason:  # the server answered before the client's own timer fired
        assert reason == "DEADLINE_UNMEETABLE" and float(metadata["estimate_seconds"]) > 0.01
    assert core.engine.scheduler.num_live == 0


async def test_a_full_queue_pushes_back_with_retry_info():
    server, channel, core = await serve(max_queued=1, max_rows=2)
    stub = denoiser_pb2_grpc.VideoDenoiserStub(channel)
    try:
        running = stub.Denoise(make_request(seed=1, num_steps=50))
        await running.read()
        queued = stub.Denoise(make_request(seed=2, num_steps=50))
        await asyncio.sleep(0.05)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await responses(stub, make_request(seed=3))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(raised.value)[0] == "QUEUE_FULL"
        status = rpc_status.from_call(raised.value)
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(retry) == 1
        running.cancel()
        queued.cancel()
    finally:
        await channel.close()
        await server.stop(0)


async def test_batch_work_yields_to_an_interactive_request():
    server, channel, core = await serve(max_rows=2, interactive_slowdown=1.0)
    stub = denoiser_pb2_grpc.VideoDenoiserStub(channel)
    try:
        batch_call = stub.Denoise(make_request(seed=1, num_steps=30, priority=common_pb2.PRIORITY_BATCH))
        assert (await batch_call.read()).progress.step == 1
        batch = asyncio.ensure_future(responses_of(batch_call))
        urgent = await responses(stub, make_request(seed=2, num_steps=3))
        assert urgent[-1].HasField("result") and not batch.done()
        assert (await batch)[-1].HasField("result")
    finally:
        await channel.close()
        await server.stop(0)


async def test_missing_weights_refuse_to_start_with_the_path(tmp_path):
    settings = load_settings(env={}, denoiser={"weights_dir": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="nowhere/dit.safetensors"):
        registration(settings)


async def test_a_cuda_device_where_there_is_none_refuses_to_start_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = load_settings(
        env={"KINO_DENOISER__DEVICE": "cuda"}, denoiser={"weights_dir": str(save_tiny_weights(tmp_path))}
    )
    with pytest.raises(DeviceUnavailableError, match="denoiser.device is 'cuda'"):
        registration(settings)


async def test_the_registration_loads_weights_from_the_weights_dir(tmp_path):
    settings = load_settings(
        env={},
        server={"port": 0, "metrics_port": -1},
        denoiser={"weights_dir": str(save_tiny_weights(tmp_path))},
    )
    server = KinoServer(settings.server, [registration(settings)])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            info = await denoiser_pb2_grpc.VideoDenoiserStub(channel).GetModelInfo(
                denoiser_pb2.GetModelInfoRequest()
            )
        assert info.model == f"{TINY_CONFIG.name}-v{TINY_CONFIG.version}"
    finally:
        await server.stop(0)


async def test_known_frames_start_where_the_models_known_frames_strength_says():
    """Known first frames and no source: the engine request starts at `known_frames_start` of the
    model's strength (0: from noise, the default); a remix still starts at its own strength."""
    executor = tiny_executor()
    core = DenoiserCore(executor, load_settings(env={}).denoiser)
    first = to_proto(np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    assert core.to_engine_request(make_request(num_steps=10, first_frames=first))[0].start_step == 0
    executor.sampling_config = dataclasses.replace(executor.sampling_config, known_frames_strength=0.7)
    engine_request, _ = core.to_engine_request(make_request(num_steps=10, first_frames=first))
    assert (engine_request.start_step, engine_request.steps_done) == (3, 3)
    assert core.to_engine_request(make_request(num_steps=10))[0].start_step == 0
    # Only where the path keeps the subject at rest (`known_frames_start_still_only`).
    executor.sampling_config = dataclasses.replace(
        executor.sampling_config, known_frames_start_still_only=True
    )
    still = [common_pb2.TrajectoryPoint(time_seconds=0.0, x=0.5, y=0.5)]
    moving = still + [common_pb2.TrajectoryPoint(time_seconds=2.0, x=0.9, y=0.5)]
    for path, expected in ((still, 3), (moving, 0)):
        request = make_request(num_steps=10, first_frames=first, subject_path=path)
        assert core.to_engine_request(request)[0].start_step == expected
