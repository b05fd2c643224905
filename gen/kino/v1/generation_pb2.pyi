import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from kino.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_MODE_UNSPECIFIED: _ClassVar[GenerationMode]
    GENERATION_MODE_TEXT_TO_VIDEO: _ClassVar[GenerationMode]
    GENERATION_MODE_IMAGE_TO_VIDEO: _ClassVar[GenerationMode]
    GENERATION_MODE_REMIX: _ClassVar[GenerationMode]
    GENERATION_MODE_EXTEND: _ClassVar[GenerationMode]
    GENERATION_MODE_STORYBOARD: _ClassVar[GenerationMode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class JobStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STAGE_UNSPECIFIED: _ClassVar[JobStage]
    JOB_STAGE_CHECKING: _ClassVar[JobStage]
    JOB_STAGE_ENCODING: _ClassVar[JobStage]
    JOB_STAGE_DENOISING: _ClassVar[JobStage]
    JOB_STAGE_AUDIO: _ClassVar[JobStage]
    JOB_STAGE_PACKAGING: _ClassVar[JobStage]
    JOB_STAGE_PUBLISHING: _ClassVar[JobStage]

class ConsentPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_POLICY_UNSPECIFIED: _ClassVar[ConsentPolicy]
    CONSENT_POLICY_ONLY_ME: _ClassVar[ConsentPolicy]
    CONSENT_POLICY_APPROVED_USERS: _ClassVar[ConsentPolicy]
    CONSENT_POLICY_EVERYONE: _ClassVar[ConsentPolicy]

class CameoState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMEO_STATE_UNSPECIFIED: _ClassVar[CameoState]
    CAMEO_STATE_ACTIVE: _ClassVar[CameoState]
    CAMEO_STATE_REVOKED: _ClassVar[CameoState]
GENERATION_MODE_UNSPECIFIED: GenerationMode
GENERATION_MODE_TEXT_TO_VIDEO: GenerationMode
GENERATION_MODE_IMAGE_TO_VIDEO: GenerationMode
GENERATION_MODE_REMIX: GenerationMode
GENERATION_MODE_EXTEND: GenerationMode
GENERATION_MODE_STORYBOARD: GenerationMode
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STAGE_UNSPECIFIED: JobStage
JOB_STAGE_CHECKING: JobStage
JOB_STAGE_ENCODING: JobStage
JOB_STAGE_DENOISING: JobStage
JOB_STAGE_AUDIO: JobStage
JOB_STAGE_PACKAGING: JobStage
JOB_STAGE_PUBLISHING: JobStage
CONSENT_POLICY_UNSPECIFIED: ConsentPolicy
CONSENT_POLICY_ONLY_ME: ConsentPolicy
CONSENT_POLICY_APPROVED_USERS: ConsentPolicy
CONSENT_POLICY_EVERYONE: ConsentPolicy
CAMEO_STATE_UNSPECIFIED: CameoState
CAMEO_STATE_ACTIVE: CameoState
CAMEO_STATE_REVOKED: CameoState

class Shot(_message.Message):
    __slots__ = ("prompt", "duration_seconds", "camera")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    duration_seconds: float
    camera: _common_pb2.CameraMove
    def __init__(self, prompt: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., camera: _Optional[_Union[_common_pb2.CameraMove, _Mapping]] = ...) -> None: ...

class GenerationSpec(_message.Message):
    __slots__ = ("mode", "prompt", "negative_prompt", "duration_seconds", "width", "height", "fps", "seed", "num_steps", "guidance_scale", "first_frame", "source_video", "remix_strength", "shots", "cameos", "subject_path", "camera", "dialogue", "visible_label")
    MODE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_VIDEO_FIELD_NUMBER: _ClassVar[int]
    REMIX_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    CAMEOS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PATH_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_LABEL_FIELD_NUMBER: _ClassVar[int]
    mode: GenerationMode
    prompt: str
    negative_prompt: str
    duration_seconds: float
    width: int
    height: int
    fps: float
    seed: int
    num_steps: int
    guidance_scale: float
    first_frame: _common_pb2.Image
    source_video: str
    remix_strength: float
    shots: _containers.RepeatedCompositeFieldContainer[Shot]
    cameos: _containers.RepeatedScalarFieldContainer[str]
    subject_path: _containers.RepeatedCompositeFieldContainer[_common_pb2.TrajectoryPoint]
    camera: _common_pb2.CameraMove
    dialogue: _containers.RepeatedCompositeFieldContainer[_common_pb2.DialogueLine]
    visible_label: bool
    def __init__(self, mode: _Optional[_Union[GenerationMode, str]] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., seed: _Optional[int] = ..., num_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., first_frame: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., source_video: _Optional[str] = ..., remix_strength: _Optional[float] = ..., shots: _Optional[_Iterable[_Union[Shot, _Mapping]]] = ..., cameos: _Optional[_Iterable[str]] = ..., subject_path: _Optional[_Iterable[_Union[_common_pb2.TrajectoryPoint, _Mapping]]] = ..., camera: _Optional[_Union[_common_pb2.CameraMove, _Mapping]] = ..., dialogue: _Optional[_Iterable[_Union[_common_pb2.DialogueLine, _Mapping]]] = ..., visible_label: _Optional[bool] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("spec", "requester", "priority", "deadline", "idempotency_key", "publish_to_feed")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TO_FEED_FIELD_NUMBER: _ClassVar[int]
    spec: GenerationSpec
    requester: str
    priority: _common_pb2.Priority
    deadline: _timestamp_pb2.Timestamp
    idempotency_key: str
    publish_to_feed: bool
    def __init__(self, spec: _Optional[_Union[GenerationSpec, _Mapping]] = ..., requester: _Optional[str] = ..., priority: _Optional[_Union[_common_pb2.Priority, str]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., publish_to_feed: _Optional[bool] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("stage", "fraction", "step", "total_steps", "preview")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    stage: JobStage
    fraction: float
    step: int
    total_steps: int
    preview: _common_pb2.Tensor
    def __init__(self, stage: _Optional[_Union[JobStage, str]] = ..., fraction: _Optional[float] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., preview: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("digital_source_type", "model", "prompt_sha256", "job", "parent_video", "c2pa_signed", "watermark")
    DIGITAL_SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_SHA256_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    PARENT_VIDEO_FIELD_NUMBER: _ClassVar[int]
    C2PA_SIGNED_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    digital_source_type: str
    model: str
    prompt_sha256: str
    job: str
    parent_video: str
    c2pa_signed: bool
    watermark: str
    def __init__(self, digital_source_type: _Optional[str] = ..., model: _Optional[str] = ..., prompt_sha256: _Optional[str] = ..., job: _Optional[str] = ..., parent_video: _Optional[str] = ..., c2pa_signed: _Optional[bool] = ..., watermark: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("video", "download_uri", "duration_seconds", "width", "height", "fps", "num_frames", "seed", "provenance")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URI_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    video: str
    download_uri: str
    duration_seconds: float
    width: int
    height: int
    fps: float
    num_frames: int
    seed: int
    provenance: Provenance
    def __init__(self, video: _Optional[str] = ..., download_uri: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., num_frames: _Optional[int] = ..., seed: _Optional[int] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "state", "spec", "requester", "priority", "idempotency_key", "publish_to_feed", "deadline", "progress", "result", "error", "create_time", "update_time", "start_time", "end_time", "attempt", "queue_duration")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TO_FEED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DURATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: JobState
    spec: GenerationSpec
    requester: str
    priority: _common_pb2.Priority
    idempotency_key: str
    publish_to_feed: bool
    deadline: _timestamp_pb2.Timestamp
    progress: JobProgress
    result: JobResult
    error: _status_pb2.Status
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    attempt: int
    queue_duration: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., spec: _Optional[_Union[GenerationSpec, _Mapping]] = ..., requester: _Optional[str] = ..., priority: _Optional[_Union[_common_pb2.Priority, str]] = ..., idempotency_key: _Optional[str] = ..., publish_to_feed: _Optional[bool] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[_Union[JobProgress, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., queue_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("name", "include_previews")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    include_previews: bool
    def __init__(self, name: _Optional[str] = ..., include_previews: _Optional[bool] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("requester", "state", "page_size", "page_token")
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    requester: str
    state: JobState
    page_size: int
    page_token: str
    def __init__(self, requester: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Cameo(_message.Message):
    __slots__ = ("name", "owner", "display_name", "policy", "approved_users", "state", "create_time", "update_time", "appearance_sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_USERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    display_name: str
    policy: ConsentPolicy
    approved_users: _containers.RepeatedScalarFieldContainer[str]
    state: CameoState
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    appearance_sha256: str
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., display_name: _Optional[str] = ..., policy: _Optional[_Union[ConsentPolicy, str]] = ..., approved_users: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[CameoState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., appearance_sha256: _Optional[str] = ...) -> None: ...

class RegisterCameoRequest(_message.Message):
    __slots__ = ("owner", "display_name", "appearance", "policy", "approved_users")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_USERS_FIELD_NUMBER: _ClassVar[int]
    owner: str
    display_name: str
    appearance: _common_pb2.Image
    policy: ConsentPolicy
    approved_users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, owner: _Optional[str] = ..., display_name: _Optional[str] = ..., appearance: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., policy: _Optional[_Union[ConsentPolicy, str]] = ..., approved_users: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCameoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateCameoConsentRequest(_message.Message):
    __slots__ = ("name", "requester", "policy", "approved_users")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_USERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    requester: str
    policy: ConsentPolicy
    approved_users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., requester: _Optional[str] = ..., policy: _Optional[_Union[ConsentPolicy, str]] = ..., approved_users: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeCameoRequest(_message.Message):
    __slots__ = ("name", "requester")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    requester: str
    def __init__(self, name: _Optional[str] = ..., requester: _Optional[str] = ...) -> None: ...

class Video(_message.Message):
    __slots__ = ("name", "job", "requester", "duration_seconds", "width", "height", "fps", "num_frames", "size_bytes", "sha256", "mime_type", "provenance", "published", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    job: str
    requester: str
    duration_seconds: float
    width: int
    height: int
    fps: float
    num_frames: int
    size_bytes: int
    sha256: str
    mime_type: str
    provenance: Provenance
    published: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., job: _Optional[str] = ..., requester: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., num_frames: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., mime_type: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., published: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetVideoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DownloadVideoRequest(_message.Message):
    __slots__ = ("name", "offset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset: int
    def __init__(self, name: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class DownloadVideoResponse(_message.Message):
    __slots__ = ("chunk", "offset", "total_size", "mime_type")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    offset: int
    total_size: int
    mime_type: str
    def __init__(self, chunk: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., mime_type: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: bytes
    def __init__(self, file: _Optional[bytes] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("manifest_present", "manifest_valid", "manifest_issues", "provenance", "watermark_found", "watermark_video", "watermark_confidence")
    MANIFEST_PRESENT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_VALID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_ISSUES_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FOUND_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_VIDEO_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    manifest_present: bool
    manifest_valid: bool
    manifest_issues: _containers.RepeatedScalarFieldContainer[str]
    provenance: Provenance
    watermark_found: bool
    watermark_video: str
    watermark_confidence: float
    def __init__(self, manifest_present: _Optional[bool] = ..., manifest_valid: _Optional[bool] = ..., manifest_issues: _Optional[_Iterable[str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., watermark_found: _Optional[bool] = ..., watermark_video: _Optional[str] = ..., watermark_confidence: _Optional[float] = ...) -> None: ...
