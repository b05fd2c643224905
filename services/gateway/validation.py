"""Everything Submit checks about a request before anything is written.

`validate_submit` is pure: it reads only the request and the limits, so it runs before the store is
touched and a refused request leaves no trace. The checks that need the clock or the database
(deadline in the future, source video and cameos exist) are in `check_deadline` and in the core.

Every failure is INVALID_ARGUMENT with a reason from kino.v1.ErrorReason and the offending `field` in
the ErrorInfo metadata, so a client can point at the field without parsing the message.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime

from kino.v1 import common_pb2, generation_pb2
from services.common.errors import (
    invalid_argument,
    out_of_range,
    require_in_range,
    require_known_enum,
    too_long,
)
from services.common.limits import MAX_USER_CHARS
from services.common.settings import GatewaySettings
from services.common.text import check_no_control_characters, is_blank
from services.common.timestamps import timestamp_datetime
from services.gateway.images import CheckedImage, check_image
from services.gateway.names import parse_name

MIN_SIDE, MAX_SIDE = 16, 1920
# The TextEncoder's limit on one text (services/text_encoder/core.py, MAX_TEXT_CHARS). Each prompt is
# held to the gateway's own, smaller limit; a storyboard shot is encoded after the shared subject as one
# text, and that joined text is held to this one.
MAX_ENCODED_PROMPT_CHARS = 2000
MIN_FPS, MAX_FPS = 1.0, 60.0
MAX_STEPS = 100
MAX_GUIDANCE = 20.0
MIN_DURATION_SECONDS = 0.5
DEFAULT_DURATION_SECONDS = 2.0
# With the source's path holding its motion (`paths.default_path`), a remix can free more of the look:
# measured in docs/modes, the asked colour change went from 75% at 0.6 to 83% at 0.8 while the remix
# stayed 3-4% of the frame from the source's track.
DEFAULT_REMIX_STRENGTH = 0.8
# duration x fps: 30 s at 60 fps or 60 s at 30 fps. Longer clips are several jobs (EXTEND).
MAX_FRAMES = 1800
MAX_SHOTS = 16
MAX_DIALOGUE_LINES = 16
MAX_DIALOGUE_CHARS = 200
MAX_SPEAKER_CHARS = 64
MAX_TRAJECTORY_POINTS = 64
# The denoiser conditions on one appearance reference (DenoiseRequest.reference_image).
MAX_CAMEOS = 1
MAX_IDEMPOTENCY_KEY_CHARS = 128
# Seeds drawn for requests without one stay below 2**31 so every consumer's RNG accepts them.
_RANDOM_SEED_BOUND = 1 << 31

_MODES_WITH_SOURCE = (generation_pb2.GENERATION_MODE_REMIX, generation_pb2.GENERATION_MODE_EXTEND)


@dataclass(frozen=True)
class SubmitLimits:
    max_prompt_chars: int
    max_duration_seconds: float

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> SubmitLimits:
        return cls(settings.max_prompt_chars, settings.max_duration_seconds)


@dataclass(frozen=True)
class ValidSubmit:
    """A Submit that passed every request-only check, with defaults filled in."""

    request: generation_pb2.SubmitRequest
    source_video_id: str | None
    cameo_ids: tuple[str, ...]
    first_frame: CheckedImage | None
    deadline: datetime | None


def validate_submit(request: generation_pb2.SubmitRequest, limits: SubmitLimits) -> ValidSubmit:
    """Checks a SubmitRequest and returns it normalized; raises INVALID_ARGUMENT on the first problem."""
    _check_text("requester", request.requester, MAX_USER_CHARS, required=True)
    check_no_control_characters("requester", request.requester)
    require_known_enum("priority", common_pb2.Priority, request.priority)
    if len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise too_long("idempotency_key", request.idempotency_key, MAX_IDEMPOTENCY_KEY_CHARS)
    check_no_control_characters("idempotency_key", request.idempotency_key)
    deadline = timestamp_datetime(request.deadline, "deadline") if request.HasField("deadline") else None
    if not request.HasField("spec"):
        raise invalid_argument("FIELD_REQUIRED", "spec is required", field="spec")

    normalized = generation_pb2.SubmitRequest()
    normalized.CopyFrom(request)
    if normalized.priority == common_pb2.PRIORITY_UNSPECIFIED:
        normalized.priority = common_pb2.PRIORITY_INTERACTIVE
    spec = normalized.spec
    require_known_enum("spec.mode", generation_pb2.GenerationMode, spec.mode)
    if spec.mode == generation_pb2.GENERATION_MODE_UNSPECIFIED:
        spec.mode = generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO
    mode_name = generation_pb2.GenerationMode.Name(spec.mode)

    def forbidden(field: str, present: bool) -> None:
        if present:
            raise invalid_argument(
                "INVALID_FOR_MODE", f"{field} is not valid for {mode_name}", mode=mode_name, field=field
            )

    def required(field: str, present: bool) -> None:
        if not present:
            raise invalid_argument(
                "FIELD_REQUIRED", f"{field} is required for {mode_name}", field=field, mode=mode_name
            )

    storyboard = spec.mode == generation_pb2.GENERATION_MODE_STORYBOARD
    _check_prompt("spec.prompt", spec.prompt, limits, required=not storyboard)
    _check_prompt("spec.negative_prompt", spec.negative_prompt, limits, required=False)

    if storyboard:
        forbidden("spec.duration_seconds", spec.duration_seconds != 0)
        required("spec.shots", len(spec.shots) > 0)
        duration = _check_shots(spec.shots, spec.prompt, limits)
    elif spec.mode == generation_pb2.GENERATION_MODE_REMIX and spec.duration_seconds == 0:
        # A remix lasts as long as its source, which only the store knows: the limit bounds it here,
        # and its frame count is checked against the source (`check_source`).
        forbidden("spec.shots", len(spec.shots) > 0)
        duration = limits.max_duration_seconds
    else:
        forbidden("spec.shots", len(spec.shots) > 0)
        if spec.duration_seconds == 0:
            spec.duration_seconds = DEFAULT_DURATION_SECONDS
        require_in_range(
            "spec.duration_seconds", spec.duration_seconds, MIN_DURATION_SECONDS, limits.max_duration_seconds
        )
        duration = spec.duration_seconds

    length_known = not (spec.mode == generation_pb2.GENERATION_MODE_REMIX and spec.duration_seconds == 0)
    _check_picture(spec, duration if length_known else None)
    _check_sampling(spec)

    first_frame = None
    if spec.mode == generation_pb2.GENERATION_MODE_IMAGE_TO_VIDEO:
        required("spec.first_frame", spec.HasField("first_frame") and bool(spec.first_frame.data))
        first_frame = check_image(spec.first_frame, "spec.first_frame")
    else:
        forbidden("spec.first_frame", spec.HasField("first_frame"))

    source_video_id = None
    if spec.mode in _MODES_WITH_SOURCE:
        required("spec.source_video", bool(spec.source_video))
        source_video_id = parse_name(spec.source_video, "videos", "spec.source_video")
    else:
        forbidden("spec.source_video", bool(spec.source_video))

    if spec.mode == generation_pb2.GENERATION_MODE_REMIX:
        if spec.remix_strength == 0:
            spec.remix_strength = DEFAULT_REMIX_STRENGTH
        if not (0 < spec.remix_strength <= 1):
            raise invalid_argument(
                "OUT_OF_RANGE",
                f"spec.remix_strength must be in (0, 1], got {spec.remix_strength}",
                field="spec.remix_strength",
                value=spec.remix_strength,
                min=0,
                max=1,
            )
    else:
        forbidden("spec.remix_strength", spec.remix_strength != 0)

    cameo_ids = _check_cameos(spec.cameos)
    _check_trajectory(spec.subject_path, duration)
    _check_camera("spec.camera", spec.camera)
    _check_dialogue(spec.dialogue, duration)
    if not spec.HasField("seed"):
        spec.seed = secrets.randbelow(_RANDOM_SEED_BOUND)
    return ValidSubmit(normalized, source_video_id, cameo_ids, first_frame, deadline)


def check_source(
    spec: generation_pb2.GenerationSpec, source: generation_pb2.Video, limits: SubmitLimits
) -> None:
    """What a remix or an extension makes from its source stays within the duration and frame limits."""
    if spec.mode == generation_pb2.GENERATION_MODE_REMIX:
        _check_remix_length(spec, source)
        _check_remix_frames(spec, source)
        return
    if spec.mode != generation_pb2.GENERATION_MODE_EXTEND:
        return
    room = limits.max_duration_seconds - source.duration_seconds
    # Half a frame of slack: a source's duration is a whole number of frames.
    if spec.duration_seconds > room + 0.5 / max(source.fps, 1.0):
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{source.name} lasts {source.duration_seconds:g} s; extending it by {spec.duration_seconds:g} s "
            f"exceeds the {limits.max_duration_seconds:g} s limit (at most {max(room, 0):g} s more)",
            field="spec.duration_seconds",
            value=spec.duration_seconds,
            min=MIN_DURATION_SECONDS,
            max=round(max(room, 0), 3),
        )
    fps = spec.fps or source.fps
    frames = math.ceil((source.duration_seconds + spec.duration_seconds) * fps)
    if frames > MAX_FRAMES:
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{source.name} extended by {spec.duration_seconds:g} s at {fps:g} fps is {frames} frames; "
            f"the limit is {MAX_FRAMES}",
            field="num_frames",
            value=frames,
            min=1,
            max=MAX_FRAMES,
        )


def _check_remix_length(spec: generation_pb2.GenerationSpec, source: generation_pb2.Video) -> None:
    """A remix takes at most its whole source; the path and the dialogue must fall inside what it takes.

    Without a duration the request was checked against the duration limit alone (`validate_submit`):
    only the source says how long the remix is. A duration beyond the source would make a shorter
    video than asked, with lines and path points past its end."""
    length = spec.duration_seconds or source.duration_seconds
    # Half a frame of slack: a source's duration is a whole number of frames.
    if spec.duration_seconds > source.duration_seconds + 0.5 / max(source.fps, 1.0):
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{source.name} lasts {source.duration_seconds:g} s; a remix takes at most all of it, "
            f"not {spec.duration_seconds:g} s (0 means all of it)",
            field="spec.duration_seconds",
            value=spec.duration_seconds,
            min=MIN_DURATION_SECONDS,
            max=source.duration_seconds,
        )
    _check_trajectory(spec.subject_path, length)
    _check_dialogue(spec.dialogue, length)


def _check_remix_frames(spec: generation_pb2.GenerationSpec, source: generation_pb2.Video) -> None:
    """A remix without a duration is as long as its source; its frames at the output rate are bounded."""
    if spec.duration_seconds:
        return  # checked with the request's own duration
    fps = spec.fps or source.fps
    frames = math.ceil(source.duration_seconds * fps)
    if frames > MAX_FRAMES:
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{source.name} lasts {source.duration_seconds:g} s; remixed at {fps:g} fps it is {frames} "
            f"frames; the limit is {MAX_FRAMES} (set a lower spec.fps or a spec.duration_seconds)",
            field="num_frames",
            value=frames,
            min=1,
            max=MAX_FRAMES,
        )


def check_deadline(deadline: datetime | None, now: datetime) -> None:
    """A deadline must still be ahead when the job is created."""
    if deadline is not None and deadline <= now:
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"deadline {deadline.isoformat()} is not in the future",
            field="deadline",
            value=deadline.isoformat(),
            min=now.isoformat(),
        )


def _check_text(field: str, value: str, max_chars: int, *, required: bool) -> None:
    if required and is_blank(value):
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    if len(value) > max_chars:
        raise too_long(field, value, max_chars)


def _check_prompt(field: str, prompt: str, limits: SubmitLimits, *, required: bool) -> None:
    if required and is_blank(prompt):
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    if len(prompt) > limits.max_prompt_chars:
        raise invalid_argument(
            "PROMPT_TOO_LONG",
            f"{field} is {len(prompt)} characters; the limit is {limits.max_prompt_chars}",
            field=field,
            length=len(prompt),
            max=limits.max_prompt_chars,
        )


def shot_prompt(subject: str, shot: str) -> str:
    """The text a storyboard shot is encoded from: the shared subject, when there is one, then the shot."""
    return shot if is_blank(subject) else f"{subject.strip()}. {shot}"


def _check_shots(shots, subject: str, limits: SubmitLimits) -> float:
    """Validates storyboard shots; returns the total duration."""
    if len(shots) > MAX_SHOTS:
        raise out_of_range("spec.shots", len(shots), 1, MAX_SHOTS)
    total = 0.0
    for index, shot in enumerate(shots):
        field = f"spec.shots[{index}]"
        _check_prompt(f"{field}.prompt", shot.prompt, limits, required=True)
        # Each prompt may fit alone and still make, with the subject before it, a text the encoder refuses.
        encoded = len(shot_prompt(subject, shot.prompt))
        if encoded > MAX_ENCODED_PROMPT_CHARS:
            raise invalid_argument(
                "PROMPT_TOO_LONG",
                f"{field}.prompt is encoded after spec.prompt (the shared subject) as one text of "
                f"{encoded} characters; the text encoder's limit is {MAX_ENCODED_PROMPT_CHARS}",
                field=f"{field}.prompt",
                length=encoded,
                max=MAX_ENCODED_PROMPT_CHARS,
            )
        if not (0 < shot.duration_seconds <= limits.max_duration_seconds):
            raise invalid_argument(
                "OUT_OF_RANGE",
                f"{field}.duration_seconds must be in (0, {limits.max_duration_seconds}], got {shot.duration_seconds}",
                field=f"{field}.duration_seconds",
                value=shot.duration_seconds,
                min=0,
                max=limits.max_duration_seconds,
            )
        _check_camera(f"{field}.camera", shot.camera)
        total += shot.duration_seconds
    if not MIN_DURATION_SECONDS <= total <= limits.max_duration_seconds:
        raise out_of_range(
            "spec.shots.duration_seconds (sum)", total, MIN_DURATION_SECONDS, limits.max_duration_seconds
        )
    return total


def _check_picture(spec: generation_pb2.GenerationSpec, duration: float | None) -> None:
    """Size and rate; the frame count too, when the length is known before the source is read."""
    if (spec.width == 0) != (spec.height == 0):
        missing = "spec.height" if spec.height == 0 else "spec.width"
        raise invalid_argument(
            "FIELD_REQUIRED", f"width and height are given together; {missing} is missing", field=missing
        )
    if spec.width:
        require_in_range("spec.width", spec.width, MIN_SIDE, MAX_SIDE)
        require_in_range("spec.height", spec.height, MIN_SIDE, MAX_SIDE)
    if spec.fps != 0:
        require_in_range("spec.fps", spec.fps, MIN_FPS, MAX_FPS)
        if duration is None:
            return
        frames = math.ceil(duration * spec.fps)
        if frames > MAX_FRAMES:
            raise invalid_argument(
                "OUT_OF_RANGE",
                f"{duration:g} s at {spec.fps:g} fps is {frames} frames; the limit is {MAX_FRAMES}",
                field="num_frames",
                value=frames,
                min=1,
                max=MAX_FRAMES,
            )


def _check_sampling(spec: generation_pb2.GenerationSpec) -> None:
    if spec.HasField("seed") and spec.seed < 0:
        raise out_of_range("spec.seed", spec.seed, 0, (1 << 63) - 1)
    if spec.num_steps != 0:
        require_in_range("spec.num_steps", spec.num_steps, 1, MAX_STEPS)
    if spec.HasField("guidance_scale"):
        require_in_range("spec.guidance_scale", spec.guidance_scale, 0.0, MAX_GUIDANCE)


def _check_cameos(cameos) -> tuple[str, ...]:
    if len(cameos) > MAX_CAMEOS:
        raise out_of_range("spec.cameos", len(cameos), 0, MAX_CAMEOS)
    ids = tuple(parse_name(name, "cameos", f"spec.cameos[{i}]") for i, name in enumerate(cameos))
    return tuple(dict.fromkeys(ids))


def _check_trajectory(points, duration: float) -> None:
    if len(points) > MAX_TRAJECTORY_POINTS:
        raise out_of_range("spec.subject_path", len(points), 0, MAX_TRAJECTORY_POINTS)
    previous = 0.0
    for index, point in enumerate(points):
        field = f"spec.subject_path[{index}]"
        require_in_range(f"{field}.x", point.x, 0.0, 1.0)
        require_in_range(f"{field}.y", point.y, 0.0, 1.0)
        # Points come in time order: a path that goes back in time has no meaning.
        require_in_range(f"{field}.time_seconds", point.time_seconds, previous, duration)
        previous = point.time_seconds


def _check_camera(field: str, camera: common_pb2.CameraMove) -> None:
    require_known_enum(f"{field}.motion", common_pb2.CameraMotion, camera.motion)
    require_in_range(f"{field}.amount", camera.amount, 0.0, 1.0)


def _check_dialogue(lines, duration: float) -> None:
    if len(lines) > MAX_DIALOGUE_LINES:
        raise out_of_range("spec.dialogue", len(lines), 0, MAX_DIALOGUE_LINES)
    for index, line in enumerate(lines):
        field = f"spec.dialogue[{index}]"
        _check_text(f"{field}.text", line.text, MAX_DIALOGUE_CHARS, required=True)
        _check_text(f"{field}.speaker", line.speaker, MAX_SPEAKER_CHARS, required=False)
        # A line starts inside the clip: one starting at its very end would have no sound to be in.
        if not 0 <= line.start_seconds < duration:
            raise invalid_argument(
                "OUT_OF_RANGE",
                f"{field}.start_seconds must be in [0, {duration:g}), got {line.start_seconds}",
                field=f"{field}.start_seconds",
                value=line.start_seconds,
                min=0,
                max=duration,
            )
