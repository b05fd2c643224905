"""AudioGenerator over real gRPC on loopback: sound in sync with the frames, and clear errors."""

import grpc
import numpy as np
import pytest

from kino.v1 import audio_pb2, audio_pb2_grpc, common_pb2
from services.audio.servicer import registration
from services.common.errors import error_info
from services.common.server import KinoServer, channel_options
from services.common.settings import load_settings
from services.common.tensors import from_proto, to_proto
from training.shapes_world import FPS, SceneSpec, render

IMPACT, AMBIENCE, DIALOGUE = (
    audio_pb2.SOUND_EVENT_KIND_IMPACT,
    audio_pb2.SOUND_EVENT_KIND_AMBIENCE,
    audio_pb2.SOUND_EVENT_KIND_DIALOGUE,
)


@pytest.fixture
async def stub(tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path, server={"port": 0, "metrics_port": -1})
    server = KinoServer(settings.server, [registration(settings)])
    await server.start()
    channel = grpc.aio.insecure_channel(server.address, options=channel_options(settings.server))
    yield audio_pb2_grpc.AudioGeneratorStub(channel)
    await channel.close()
    await server.stop(0)


@pytest.fixture(scope="module")
def bouncing():
    return render(SceneSpec("circle", "large", "red", "bounces left and right", "metal", "gray", 21))


def request(frames, **fields):
    return audio_pb2.GenerateRequest(frames=to_proto(frames), **{"fps": FPS, **fields})


async def test_impacts_land_on_the_contacts_seen_in_the_frames(stub, bouncing):
    response = await stub.Generate(request(bouncing.frames, prompt="a metal ball bouncing", seed=3))
    pcm = from_proto(response.pcm, field="pcm", dtype=np.int16, ndim=2)
    assert (response.sample_rate, response.channels) == (48000, 2)
    assert pcm.shape == (len(bouncing.frames) * 48000 // FPS, 2)
    impacts = [e for e in response.events if e.kind == IMPACT]
    truth = [i for i in bouncing.impacts if i.time_s * FPS < len(bouncing.frames) - 1.5]
    assert len(impacts) == len(truth) > 0
    for event, impact in zip(impacts, truth, strict=True):
        assert abs(event.start_seconds - impact.time_s) < 0.01
        assert event.label == "metal impact" and 0 < event.gain <= 1
        # The sound is really there: the placed sample starts a loud transient.
        start = round(event.start_seconds * 48000)
        before = np.abs(pcm[start - 480 : start - 10].astype(float)).max()
        after = np.abs(pcm[start : start + 480].astype(float)).max()
        assert after > 4 * before + 1000
    assert [e.start_seconds for e in response.events] == sorted(e.start_seconds for e in response.events)


async def test_the_wall_an_impact_hits_decides_its_side(stub, bouncing):
    response = await stub.Generate(request(bouncing.frames, prompt="metal", seed=0))
    pcm = from_proto(response.pcm, field="pcm").astype(float)
    for event, impact in zip(
        (e for e in response.events if e.kind == IMPACT), bouncing.impacts, strict=False
    ):
        start = round(event.start_seconds * 48000)
        left, right = np.abs(pcm[start : start + 2400]).sum(axis=0)
        assert (right > left) == (impact.surface == "right wall")


async def test_ambience_and_dialogue_are_placed_and_nothing_clips(stub, bouncing):
    dialogue = [common_pb2.DialogueLine(speaker="Ada", text="Watch it go", start_seconds=0.9)]
    response = await stub.Generate(
        request(bouncing.frames, prompt='wind and rain, someone says "Wow"', dialogue=dialogue, seed=1)
    )
    kinds = {(e.kind, e.label) for e in response.events}
    assert {(AMBIENCE, "rain"), (AMBIENCE, "wind"), (DIALOGUE, "Watch it go"), (DIALOGUE, "Wow")} <= kinds
    line = next(e for e in response.events if e.label == "Watch it go")
    assert line.start_seconds == pytest.approx(0.9) and 0.3 < line.duration_seconds <= 1.1
    pcm = from_proto(response.pcm, field="pcm").astype(float)
    assert np.abs(pcm).max() <= 32767 * 10 ** (-1 / 20) + 1
    assert np.sqrt(np.mean(pcm[:4800] ** 2)) > 100, "the ambience is audible from the start"


async def test_the_same_seed_gives_the_same_sound(stub, bouncing):
    first = await stub.Generate(request(bouncing.frames, prompt="in the rain", seed=7))
    again = await stub.Generate(request(bouncing.frames, prompt="in the rain", seed=7))
    other = await stub.Generate(request(bouncing.frames, prompt="in the rain", seed=8))
    assert first.pcm.data == again.pcm.data and first.pcm.data != other.pcm.data


async def test_other_sample_rates(stub, bouncing):
    response = await stub.Generate(request(bouncing.frames[:8], sample_rate=16000))
    assert response.sample_rate == 16000 and list(response.pcm.shape) == [16000, 2]


def frames(f=16, h=32, w=32, c=3):
    return np.zeros((f, h, w, c), np.uint8)


@pytest.mark.parametrize(
    ("make", "reason", "field"),
    [
        (lambda: audio_pb2.GenerateRequest(fps=8), "FIELD_REQUIRED", "frames"),
        (
            lambda: audio_pb2.GenerateRequest(frames=to_proto(np.zeros((16, 32, 32), np.uint8)), fps=8),
            "INVALID_TENSOR",
            "frames",
        ),
        (lambda: request(frames(c=4)), "INVALID_TENSOR", "frames"),
        (lambda: request(frames().astype(np.float32)), "INVALID_TENSOR", "frames"),
        (
            lambda: audio_pb2.GenerateRequest(
                frames=common_pb2.Tensor(dtype=common_pb2.DTYPE_UINT8, shape=[16, 32, 32, 3], data=b"short"),
                fps=8,
            ),
            "INVALID_TENSOR",
            "frames",
        ),
        (lambda: request(frames(), fps=0), "OUT_OF_RANGE", "fps"),
        (lambda: request(frames(), fps=float("nan")), "OUT_OF_RANGE", "fps"),
        (lambda: request(frames(), fps=0.05), "OUT_OF_RANGE", "duration_seconds"),
        (lambda: request(frames(h=4)), "OUT_OF_RANGE", "frames.height"),
        (lambda: request(frames(), seed=-1), "OUT_OF_RANGE", "seed"),
        (lambda: request(frames(), sample_rate=1000), "OUT_OF_RANGE", "sample_rate"),
        (lambda: request(frames(), prompt="x" * 3000), "PROMPT_TOO_LONG", None),
        (
            lambda: request(frames(), dialogue=[common_pb2.DialogueLine(text="a" * 201)]),
            "OUT_OF_RANGE",
            "dialogue[0].text length",
        ),
        (
            lambda: request(frames(), dialogue=[common_pb2.DialogueLine(text=" ")]),
            "FIELD_REQUIRED",
            "dialogue[0].text",
        ),
        (
            lambda: request(frames(), dialogue=[common_pb2.DialogueLine(text="\u200b\u2060")]),
            "FIELD_REQUIRED",
            "dialogue[0].text",
        ),
        (
            lambda: request(frames(), dialogue=[common_pb2.DialogueLine(text="hi", start_seconds=5)]),
            "OUT_OF_RANGE",
            "dialogue[0].start_seconds",
        ),
        (
            lambda: request(frames(), dialogue=[common_pb2.DialogueLine(text="hi")] * 17),
            "OUT_OF_RANGE",
            "dialogue",
        ),
        (
            lambda: request(
                frames(f=8),
                dialogue=[
                    common_pb2.DialogueLine(
                        text="a rather long sentence that cannot be said in one second at all"
                    )
                ],
            ),
            "OUT_OF_RANGE",
            "dialogue[0]",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument_with_a_reason(stub, make, reason, field):
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Generate(make())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    got_reason, metadata = error_info(error.value)
    assert got_reason == reason
    if field is not None:
        assert metadata["field"] == field


@pytest.mark.parametrize(
    ("shape", "detail"),
    [
        # No bytes to send, yet NumPy cannot shape it.
        ([0, 2**40, 2**40, 3], "too many elements"),
        # A reason that quoted this shape would not fit in the status trailers.
        ([1] * 100_000, "100000 dimensions; the limit is 32"),
    ],
    ids=["zero frames of an impossible size", "thousands of dimensions"],
)
async def test_a_frames_shape_no_array_can_have_is_refused_with_a_reason(stub, shape, detail):
    impossible = common_pb2.Tensor(
        dtype=common_pb2.DTYPE_UINT8, shape=shape, data=b"" if shape[0] == 0 else b"\0"
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Generate(audio_pb2.GenerateRequest(frames=impossible, fps=8))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, metadata = error_info(error.value)
    assert (reason, metadata["field"]) == ("INVALID_TENSOR", "frames") and detail in metadata["detail"]
    response = await stub.Generate(request(frames()))
    assert list(response.pcm.shape) == [16 * 48000 // 8, 2]
