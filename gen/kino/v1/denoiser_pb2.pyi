from kino.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DenoiseRequest(_message.Message):
    __slots__ = ("text_tokens", "num_frames", "height", "width", "num_steps", "guidance_scale", "seed", "first_frames", "reference_image", "source_video", "strength", "subject_path", "camera", "priority", "tenant", "preview_every")
    TEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    NUM_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAMES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_VIDEO_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PATH_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_EVERY_FIELD_NUMBER: _ClassVar[int]
    text_tokens: _common_pb2.Tensor
    num_frames: int
    height: int
    width: int
    num_steps: int
    guidance_scale: float
    seed: int
    first_frames: _common_pb2.Tensor
    reference_image: _common_pb2.Tensor
    source_video: _common_pb2.Tensor
    strength: float
    subject_path: _containers.RepeatedCompositeFieldContainer[_common_pb2.TrajectoryPoint]
    camera: _common_pb2.CameraMove
    priority: _common_pb2.Priority
    tenant: str
    preview_every: int
    def __init__(self, text_tokens: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., num_frames: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., num_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., seed: _Optional[int] = ..., first_frames: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., reference_image: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., source_video: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., strength: _Optional[float] = ..., subject_path: _Optional[_Iterable[_Union[_common_pb2.TrajectoryPoint, _Mapping]]] = ..., camera: _Optional[_Union[_common_pb2.CameraMove, _Mapping]] = ..., priority: _Optional[_Union[_common_pb2.Priority, str]] = ..., tenant: _Optional[str] = ..., preview_every: _Optional[int] = ...) -> None: ...

class DenoiseResponse(_message.Message):
    __slots__ = ("progress", "preview", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: DenoiseProgress
    preview: DenoisePreview
    result: DenoiseResult
    def __init__(self, progress: _Optional[_Union[DenoiseProgress, _Mapping]] = ..., preview: _Optional[_Union[DenoisePreview, _Mapping]] = ..., result: _Optional[_Union[DenoiseResult, _Mapping]] = ...) -> None: ...

class DenoiseProgress(_message.Message):
    __slots__ = ("step", "total_steps", "queue_seconds")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    queue_seconds: float
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., queue_seconds: _Optional[float] = ...) -> None: ...

class DenoisePreview(_message.Message):
    __slots__ = ("step", "frames")
    STEP_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    step: int
    frames: _common_pb2.Tensor
    def __init__(self, step: _Optional[int] = ..., frames: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class DenoiseResult(_message.Message):
    __slots__ = ("frames", "fps", "model")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    frames: _common_pb2.Tensor
    fps: float
    model: str
    def __init__(self, frames: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., fps: _Optional[float] = ..., model: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model", "text_dim", "frame_counts", "resolutions", "fps", "max_steps", "default_steps", "default_guidance_scale", "supports_subject_path", "supports_camera")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_DIM_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNTS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_SUBJECT_PATH_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_CAMERA_FIELD_NUMBER: _ClassVar[int]
    model: str
    text_dim: int
    frame_counts: _containers.RepeatedScalarFieldContainer[int]
    resolutions: _containers.RepeatedCompositeFieldContainer[Resolution]
    fps: float
    max_steps: int
    default_steps: int
    default_guidance_scale: float
    supports_subject_path: bool
    supports_camera: bool
    def __init__(self, model: _Optional[str] = ..., text_dim: _Optional[int] = ..., frame_counts: _Optional[_Iterable[int]] = ..., resolutions: _Optional[_Iterable[_Union[Resolution, _Mapping]]] = ..., fps: _Optional[float] = ..., max_steps: _Optional[int] = ..., default_steps: _Optional[int] = ..., default_guidance_scale: _Optional[float] = ..., supports_subject_path: _Optional[bool] = ..., supports_camera: _Optional[bool] = ...) -> None: ...

class Resolution(_message.Message):
    __slots__ = ("height", "width")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...
