"""Every bad Submit gets INVALID_ARGUMENT or NOT_FOUND with a reason and the field, and writes nothing."""

from __future__ import annotations

import copy

import grpc
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2

from kino.v1 import common_pb2, generation_pb2
from services.common.settings import MIB
from tests.gateway.conftest import Gateway, close_gateway, open_gateway
from tests.gateway.helpers import encoded_image, expect_error, mp4_shaped_bytes, png_declaring, put_video

pytestmark = pytest.mark.asyncio(loop_scope="module")

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
T2V = generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO
I2V = generation_pb2.GENERATION_MODE_IMAGE_TO_VIDEO
REMIX = generation_pb2.GENERATION_MODE_REMIX
EXTEND = generation_pb2.GENERATION_MODE_EXTEND
STORYBOARD = generation_pb2.GENERATION_MODE_STORYBOARD
PNG = encoded_image(64, 48)


def good_request() -> generation_pb2.SubmitRequest:
    return generation_pb2.SubmitRequest(
        requester="alice",
        spec=generation_pb2.GenerationSpec(mode=T2V, prompt="a red ball bounces", duration_seconds=2),
    )


def spec(**fields):
    def mutate(request):
        for key, value in fields.items():
            if isinstance(value, list):
                del getattr(request.spec, key)[:]
                getattr(request.spec, key).extend(value)
            elif hasattr(value, "DESCRIPTOR"):
                getattr(request.spec, key).CopyFrom(value)
            else:
                setattr(request.spec, key, value)

    return mutate


def top(**fields):
    def mutate(request):
        for key, value in fields.items():
            if hasattr(value, "DESCRIPTOR"):
                getattr(request, key).CopyFrom(value)
            else:
                setattr(request, key, value)

    return mutate


def both(*mutators):
    def mutate(request):
        for mutator in mutators:
            mutator(request)

    return mutate


def shots(count: int, **fields):
    return [generation_pb2.Shot(prompt=f"shot {i}", duration_seconds=1, **fields) for i in range(count)]


def image(data: bytes, mime_type: str = "") -> common_pb2.Image:
    return common_pb2.Image(data=data, mime_type=mime_type)


PAST = timestamp_pb2.Timestamp(seconds=1_000_000_000)
CASES = [
    # (id, mutation, code, reason, field)
    ("no requester", top(requester=""), INVALID, "FIELD_REQUIRED", "requester"),
    ("blank requester", top(requester="   "), INVALID, "FIELD_REQUIRED", "requester"),
    ("no spec", lambda r: r.ClearField("spec"), INVALID, "FIELD_REQUIRED", "spec"),
    ("empty prompt", spec(prompt=""), INVALID, "FIELD_REQUIRED", "spec.prompt"),
    ("blank prompt", spec(prompt=" \n\t"), INVALID, "FIELD_REQUIRED", "spec.prompt"),
    ("invisible prompt", spec(prompt="\u200b\u2060\ufeff\u00ad"), INVALID, "FIELD_REQUIRED", "spec.prompt"),
    ("prompt too long", spec(prompt="x" * 1001), INVALID, "PROMPT_TOO_LONG", "spec.prompt"),
    (
        "negative prompt too long",
        spec(negative_prompt="x" * 1001),
        INVALID,
        "PROMPT_TOO_LONG",
        "spec.negative_prompt",
    ),
    ("unknown mode", spec(mode=99), INVALID, "UNKNOWN_ENUM_VALUE", "spec.mode"),
    ("unknown priority", top(priority=7), INVALID, "UNKNOWN_ENUM_VALUE", "priority"),
    ("duration too short", spec(duration_seconds=0.1), INVALID, "OUT_OF_RANGE", "spec.duration_seconds"),
    ("duration too long", spec(duration_seconds=61), INVALID, "OUT_OF_RANGE", "spec.duration_seconds"),
    ("duration negative", spec(duration_seconds=-2), INVALID, "OUT_OF_RANGE", "spec.duration_seconds"),
    ("duration NaN", spec(duration_seconds=float("nan")), INVALID, "OUT_OF_RANGE", "spec.duration_seconds"),
    ("width too small", spec(width=8, height=64), INVALID, "OUT_OF_RANGE", "spec.width"),
    ("height too large", spec(width=64, height=4000), INVALID, "OUT_OF_RANGE", "spec.height"),
    ("width without height", spec(width=64), INVALID, "FIELD_REQUIRED", "spec.height"),
    ("negative width", spec(width=-64, height=64), INVALID, "OUT_OF_RANGE", "spec.width"),
    ("fps too low", spec(fps=0.5), INVALID, "OUT_OF_RANGE", "spec.fps"),
    ("fps too high", spec(fps=61), INVALID, "OUT_OF_RANGE", "spec.fps"),
    ("too many frames", spec(duration_seconds=60, fps=60), INVALID, "OUT_OF_RANGE", "num_frames"),
    ("too many steps", spec(num_steps=101), INVALID, "OUT_OF_RANGE", "spec.num_steps"),
    ("negative steps", spec(num_steps=-1), INVALID, "OUT_OF_RANGE", "spec.num_steps"),
    ("guidance too high", spec(guidance_scale=21), INVALID, "OUT_OF_RANGE", "spec.guidance_scale"),
    ("negative guidance", spec(guidance_scale=-1), INVALID, "OUT_OF_RANGE", "spec.guidance_scale"),
    ("negative seed", spec(seed=-1), INVALID, "OUT_OF_RANGE", "spec.seed"),
    ("image-to-video without a frame", spec(mode=I2V), INVALID, "FIELD_REQUIRED", "spec.first_frame"),
    (
        "first frame in text-to-video",
        spec(first_frame=image(PNG)),
        INVALID,
        "INVALID_FOR_MODE",
        "spec.first_frame",
    ),
    (
        "first frame not an image",
        spec(mode=I2V, first_frame=image(b"GIF89a....")),
        INVALID,
        "INVALID_MEDIA",
        "spec.first_frame",
    ),
    (
        "first frame truncated",
        spec(mode=I2V, first_frame=image(PNG[: len(PNG) // 2])),
        INVALID,
        "INVALID_MEDIA",
        "spec.first_frame",
    ),
    (
        "first frame mislabelled",
        spec(mode=I2V, first_frame=image(PNG, "image/jpeg")),
        INVALID,
        "INVALID_MEDIA",
        "spec.first_frame",
    ),
    (
        "first frame bomb",
        spec(mode=I2V, first_frame=image(png_declaring(100_000, 100_000))),
        INVALID,
        "INVALID_MEDIA",
        "spec.first_frame",
    ),
    (
        "first frame too wide",
        spec(mode=I2V, first_frame=image(png_declaring(5000, 16))),
        INVALID,
        "INVALID_MEDIA",
        "spec.first_frame",
    ),
    ("remix without source", spec(mode=REMIX), INVALID, "FIELD_REQUIRED", "spec.source_video"),
    ("extend without source", spec(mode=EXTEND), INVALID, "FIELD_REQUIRED", "spec.source_video"),
    (
        "malformed source",
        spec(mode=REMIX, source_video="jobs/abc"),
        INVALID,
        "MALFORMED_NAME",
        "spec.source_video",
    ),
    (
        "unknown source",
        spec(mode=REMIX, source_video="videos/nosuchvideo"),
        NOT_FOUND,
        "VIDEO_NOT_FOUND",
        None,
    ),
    (
        "source in text-to-video",
        spec(source_video="videos/abc"),
        INVALID,
        "INVALID_FOR_MODE",
        "spec.source_video",
    ),
    (
        "remix strength too high",
        spec(mode=REMIX, source_video="videos/abc", remix_strength=1.5),
        INVALID,
        "OUT_OF_RANGE",
        "spec.remix_strength",
    ),
    (
        "remix strength negative",
        spec(mode=REMIX, source_video="videos/abc", remix_strength=-0.1),
        INVALID,
        "OUT_OF_RANGE",
        "spec.remix_strength",
    ),
    (
        "strength in extend",
        spec(mode=EXTEND, source_video="videos/abc", remix_strength=0.5),
        INVALID,
        "INVALID_FOR_MODE",
        "spec.remix_strength",
    ),
    (
        "storyboard without shots",
        spec(mode=STORYBOARD, duration_seconds=0),
        INVALID,
        "FIELD_REQUIRED",
        "spec.shots",
    ),
    (
        "storyboard with 17 shots",
        spec(mode=STORYBOARD, duration_seconds=0, shots=shots(17)),
        INVALID,
        "OUT_OF_RANGE",
        "spec.shots",
    ),
    (
        "storyboard with duration",
        spec(mode=STORYBOARD, shots=shots(2)),
        INVALID,
        "INVALID_FOR_MODE",
        "spec.duration_seconds",
    ),
    (
        "shot without prompt",
        spec(mode=STORYBOARD, duration_seconds=0, shots=[generation_pb2.Shot(duration_seconds=1)]),
        INVALID,
        "FIELD_REQUIRED",
        "spec.shots[0].prompt",
    ),
    (
        "shot of zero length",
        spec(mode=STORYBOARD, duration_seconds=0, shots=[generation_pb2.Shot(prompt="a")]),
        INVALID,
        "OUT_OF_RANGE",
        "spec.shots[0].duration_seconds",
    ),
    (
        "shots shorter than a video can be",
        spec(
            mode=STORYBOARD,
            duration_seconds=0,
            shots=[generation_pb2.Shot(prompt="a", duration_seconds=1e-300)] * 2,
        ),
        INVALID,
        "OUT_OF_RANGE",
        "spec.shots.duration_seconds (sum)",
    ),
    (
        "shots longer than the limit",
        spec(
            mode=STORYBOARD,
            duration_seconds=0,
            shots=[generation_pb2.Shot(prompt="a", duration_seconds=40)] * 2,
        ),
        INVALID,
        "OUT_OF_RANGE",
        "spec.shots.duration_seconds (sum)",
    ),
    (
        "storyboard subject and shot prompt together too long",
        spec(
            mode=STORYBOARD,
            duration_seconds=0,
            prompt="red " * 250,  # each within the gateway's 1000, together past the encoder's 2000
            shots=[shots(1)[0], generation_pb2.Shot(prompt="bounces " * 125, duration_seconds=1)],
        ),
        INVALID,
        "PROMPT_TOO_LONG",
        "spec.shots[1].prompt",
    ),
    ("shots in text-to-video", spec(shots=shots(1)), INVALID, "INVALID_FOR_MODE", "spec.shots"),
    (
        "path point outside the frame",
        spec(subject_path=[common_pb2.TrajectoryPoint(time_seconds=0, x=1.5, y=0.5)]),
        INVALID,
        "OUT_OF_RANGE",
        "spec.subject_path[0].x",
    ),
    (
        "path point after the clip",
        spec(subject_path=[common_pb2.TrajectoryPoint(time_seconds=3, x=0.5, y=0.5)]),
        INVALID,
        "OUT_OF_RANGE",
        "spec.subject_path[0].time_seconds",
    ),
    (
        "path going back in time",
        spec(
            subject_path=[
                common_pb2.TrajectoryPoint(time_seconds=1),
                common_pb2.TrajectoryPoint(time_seconds=0.5),
            ]
        ),
        INVALID,
        "OUT_OF_RANGE",
        "spec.subject_path[1].time_seconds",
    ),
    (
        "unknown camera motion",
        spec(camera=common_pb2.CameraMove(motion=42)),
        INVALID,
        "UNKNOWN_ENUM_VALUE",
        "spec.camera.motion",
    ),
    (
        "camera amount too large",
        spec(camera=common_pb2.CameraMove(motion=common_pb2.CAMERA_MOTION_PAN_LEFT, amount=2)),
        INVALID,
        "OUT_OF_RANGE",
        "spec.camera.amount",
    ),
    (
        "17 dialogue lines",
        spec(dialogue=[common_pb2.DialogueLine(text="hi")] * 17),
        INVALID,
        "OUT_OF_RANGE",
        "spec.dialogue",
    ),
    (
        "dialogue line too long",
        spec(dialogue=[common_pb2.DialogueLine(text="x" * 201)]),
        INVALID,
        "OUT_OF_RANGE",
        "spec.dialogue[0].text",
    ),
    (
        "empty dialogue line",
        spec(dialogue=[common_pb2.DialogueLine(speaker="ann")]),
        INVALID,
        "FIELD_REQUIRED",
        "spec.dialogue[0].text",
    ),
    (
        "dialogue after the clip",
        spec(dialogue=[common_pb2.DialogueLine(text="hi", start_seconds=5)]),
        INVALID,
        "OUT_OF_RANGE",
        "spec.dialogue[0].start_seconds",
    ),
    (
        "dialogue at the clip's very end",
        spec(dialogue=[common_pb2.DialogueLine(text="hi", start_seconds=2)]),
        INVALID,
        "OUT_OF_RANGE",
        "spec.dialogue[0].start_seconds",
    ),
    ("malformed cameo", spec(cameos=["people/bob"]), INVALID, "MALFORMED_NAME", "spec.cameos[0]"),
    ("unknown cameo", spec(cameos=["cameos/nosuchcameo"]), NOT_FOUND, "CAMEO_NOT_FOUND", None),
    ("two cameos", spec(cameos=["cameos/a", "cameos/b"]), INVALID, "OUT_OF_RANGE", "spec.cameos"),
    ("idempotency key too long", top(idempotency_key="k" * 129), INVALID, "OUT_OF_RANGE", "idempotency_key"),
    ("deadline in the past", top(deadline=PAST), INVALID, "OUT_OF_RANGE", "deadline"),
    (
        "deadline not a time",
        top(deadline=timestamp_pb2.Timestamp(seconds=10**13)),
        INVALID,
        "OUT_OF_RANGE",
        "deadline",
    ),
    (
        "deadline with impossible nanos",
        top(deadline=timestamp_pb2.Timestamp(seconds=4_000_000_000, nanos=-5)),
        INVALID,
        "OUT_OF_RANGE",
        "deadline",
    ),
    ("oversized message", spec(prompt="x" * (MIB + 1000)), INVALID, "MESSAGE_TOO_LARGE", None),
    (
        "several problems: the first is reported",
        both(top(requester=""), spec(prompt="")),
        INVALID,
        "FIELD_REQUIRED",
        "requester",
    ),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gateway(tmp_path_factory):
    gateway = await open_gateway(tmp_path_factory.mktemp("validation"), server={"max_message_mb": 1})
    yield gateway
    await close_gateway(gateway)


@pytest.mark.parametrize(
    ("mutate", "code", "reason", "field"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
async def test_bad_submit_is_refused_and_writes_nothing(gateway: Gateway, mutate, code, reason, field):
    request = good_request()
    mutate(request)
    metadata = await expect_error(gateway.stub.Submit(copy.deepcopy(request)), code, reason)
    if field is not None:
        assert metadata["field"] == field
    listed = await gateway.stub.List(generation_pb2.ListRequest())
    assert list(listed.jobs) == []
    assets = gateway.settings.asset_dir
    assert not assets.exists() or not any(assets.rglob("*"))


async def test_good_requests_in_every_mode_are_accepted_with_defaults(gateway: Gateway):
    text = await gateway.stub.Submit(good_request())
    assert text.state == generation_pb2.JOB_STATE_QUEUED or text.state == generation_pb2.JOB_STATE_RUNNING
    assert text.priority == common_pb2.PRIORITY_INTERACTIVE
    assert text.spec.HasField("seed") and text.spec.seed >= 0
    unspecified = good_request()
    unspecified.spec.mode = generation_pb2.GENERATION_MODE_UNSPECIFIED
    unspecified.spec.duration_seconds = 0
    job = await gateway.stub.Submit(unspecified)
    assert (job.spec.mode, job.spec.duration_seconds) == (T2V, 2.0)

    first_frame = good_request()
    first_frame.spec.mode = I2V
    first_frame.spec.first_frame.CopyFrom(image(encoded_image(40, 30, "JPEG"), "image/jpeg"))
    assert (await gateway.stub.Submit(first_frame)).spec.mode == I2V

    storyboard = generation_pb2.SubmitRequest(
        requester="alice", spec=generation_pb2.GenerationSpec(mode=STORYBOARD, shots=shots(3))
    )
    board = await gateway.stub.Submit(storyboard)
    assert len(board.spec.shots) == 3 and board.spec.prompt == ""

    edge = good_request()
    edge.spec.prompt = "x" * 1000
    edge.spec.width, edge.spec.height, edge.spec.fps, edge.spec.num_steps = 1920, 16, 60, 100
    edge.spec.duration_seconds = 30
    edge.spec.guidance_scale = 20
    edge.spec.seed = 0
    edge.idempotency_key = "k" * 128
    assert (await gateway.stub.Submit(edge)).spec.seed == 0


async def test_a_remix_at_a_high_frame_rate_is_bounded_by_its_source_length(gateway: Gateway):
    """A remix without a duration lasts as long as its source: the frame limit applies to that length."""
    short = await put_video(gateway, mp4_shaped_bytes(4096))  # 1 s
    remix = generation_pb2.SubmitRequest(
        requester="alice",
        spec=generation_pb2.GenerationSpec(mode=REMIX, prompt="a blue ball", source_video=short.name, fps=60),
    )
    job = await gateway.stub.Submit(remix)
    assert (job.spec.fps, job.spec.duration_seconds) == (60, 0)

    long = await put_video(gateway, mp4_shaped_bytes(4096), duration_seconds=40.0)
    remix.spec.source_video = long.name
    metadata = await expect_error(gateway.stub.Submit(remix), INVALID, "OUT_OF_RANGE", field="num_frames")
    assert (metadata["value"], metadata["max"]) == ("2400", "1800")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"duration_seconds": 10}, "spec.duration_seconds"),
        (
            {"dialogue": [common_pb2.DialogueLine(text="hi", start_seconds=5)]},
            "spec.dialogue[0].start_seconds",
        ),
        (
            {"subject_path": [common_pb2.TrajectoryPoint(time_seconds=5, x=0.5, y=0.5)]},
            "spec.subject_path[0].time_seconds",
        ),
    ],
    ids=["duration beyond the source", "dialogue after the source", "path after the source"],
)
async def test_a_remix_is_held_to_its_sources_length(gateway: Gateway, fields, field):
    """A remix is at most its source: a longer duration, and lines or path points after the source's
    end, are refused at Submit rather than making a shorter video or failing the job at audio."""
    short = await put_video(gateway, mp4_shaped_bytes(4096))  # 1 s
    remix = generation_pb2.SubmitRequest(
        requester="alice",
        spec=generation_pb2.GenerationSpec(
            mode=REMIX, prompt="a blue ball", source_video=short.name, **fields
        ),
    )
    metadata = await expect_error(gateway.stub.Submit(remix), INVALID, "OUT_OF_RANGE", field=field)
    assert float(metadata["max"]) == 1.0


async def test_a_storyboard_shot_is_held_to_the_text_encoders_limit_once_joined_to_its_subject():
    from services.gateway.validation import MAX_ENCODED_PROMPT_CHARS
    from services.text_encoder.core import MAX_TEXT_CHARS

    assert MAX_ENCODED_PROMPT_CHARS == MAX_TEXT_CHARS
