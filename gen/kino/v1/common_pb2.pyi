from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_BFLOAT16: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]
    DTYPE_INT16: _ClassVar[DType]
    DTYPE_INT32: _ClassVar[DType]
    DTYPE_INT64: _ClassVar[DType]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    FIELD_REQUIRED: _ClassVar[ErrorReason]
    OUT_OF_RANGE: _ClassVar[ErrorReason]
    PROMPT_TOO_LONG: _ClassVar[ErrorReason]
    INVALID_TENSOR: _ClassVar[ErrorReason]
    UNKNOWN_ENUM_VALUE: _ClassVar[ErrorReason]
    INVALID_FOR_MODE: _ClassVar[ErrorReason]
    MALFORMED_NAME: _ClassVar[ErrorReason]
    INVALID_MEDIA: _ClassVar[ErrorReason]
    MALFORMED_REQUEST: _ClassVar[ErrorReason]
    JOB_NOT_FOUND: _ClassVar[ErrorReason]
    VIDEO_NOT_FOUND: _ClassVar[ErrorReason]
    CAMEO_NOT_FOUND: _ClassVar[ErrorReason]
    PROMPT_REJECTED: _ClassVar[ErrorReason]
    CAMEO_CONSENT_MISSING: _ClassVar[ErrorReason]
    CAMEO_REVOKED: _ClassVar[ErrorReason]
    JOB_ALREADY_FINISHED: _ClassVar[ErrorReason]
    NOT_OWNER: _ClassVar[ErrorReason]
    IDEMPOTENCY_KEY_REUSED: _ClassVar[ErrorReason]
    QUEUE_FULL: _ClassVar[ErrorReason]
    QUOTA_EXCEEDED: _ClassVar[ErrorReason]
    MESSAGE_TOO_LARGE: _ClassVar[ErrorReason]
    DEADLINE_UNMEETABLE: _ClassVar[ErrorReason]
    DEADLINE_PASSED: _ClassVar[ErrorReason]
    BACKEND_UNAVAILABLE: _ClassVar[ErrorReason]
    JOB_INTERRUPTED: _ClassVar[ErrorReason]
    JOB_CANCELLED: _ClassVar[ErrorReason]
    CREDENTIALS_MISSING: _ClassVar[ErrorReason]
    INTERNAL_ERROR: _ClassVar[ErrorReason]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_INTERACTIVE: _ClassVar[Priority]
    PRIORITY_BATCH: _ClassVar[Priority]

class CameraMotion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMERA_MOTION_UNSPECIFIED: _ClassVar[CameraMotion]
    CAMERA_MOTION_STATIC: _ClassVar[CameraMotion]
    CAMERA_MOTION_PAN_LEFT: _ClassVar[CameraMotion]
    CAMERA_MOTION_PAN_RIGHT: _ClassVar[CameraMotion]
    CAMERA_MOTION_PAN_UP: _ClassVar[CameraMotion]
    CAMERA_MOTION_PAN_DOWN: _ClassVar[CameraMotion]
    CAMERA_MOTION_ZOOM_IN: _ClassVar[CameraMotion]
    CAMERA_MOTION_ZOOM_OUT: _ClassVar[CameraMotion]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT16: DType
DTYPE_BFLOAT16: DType
DTYPE_UINT8: DType
DTYPE_INT16: DType
DTYPE_INT32: DType
DTYPE_INT64: DType
ERROR_REASON_UNSPECIFIED: ErrorReason
FIELD_REQUIRED: ErrorReason
OUT_OF_RANGE: ErrorReason
PROMPT_TOO_LONG: ErrorReason
INVALID_TENSOR: ErrorReason
UNKNOWN_ENUM_VALUE: ErrorReason
INVALID_FOR_MODE: ErrorReason
MALFORMED_NAME: ErrorReason
INVALID_MEDIA: ErrorReason
MALFORMED_REQUEST: ErrorReason
JOB_NOT_FOUND: ErrorReason
VIDEO_NOT_FOUND: ErrorReason
CAMEO_NOT_FOUND: ErrorReason
PROMPT_REJECTED: ErrorReason
CAMEO_CONSENT_MISSING: ErrorReason
CAMEO_REVOKED: ErrorReason
JOB_ALREADY_FINISHED: ErrorReason
NOT_OWNER: ErrorReason
IDEMPOTENCY_KEY_REUSED: ErrorReason
QUEUE_FULL: ErrorReason
QUOTA_EXCEEDED: ErrorReason
MESSAGE_TOO_LARGE: ErrorReason
DEADLINE_UNMEETABLE: ErrorReason
DEADLINE_PASSED: ErrorReason
BACKEND_UNAVAILABLE: ErrorReason
JOB_INTERRUPTED: ErrorReason
JOB_CANCELLED: ErrorReason
CREDENTIALS_MISSING: ErrorReason
INTERNAL_ERROR: ErrorReason
PRIORITY_UNSPECIFIED: Priority
PRIORITY_INTERACTIVE: Priority
PRIORITY_BATCH: Priority
CAMERA_MOTION_UNSPECIFIED: CameraMotion
CAMERA_MOTION_STATIC: CameraMotion
CAMERA_MOTION_PAN_LEFT: CameraMotion
CAMERA_MOTION_PAN_RIGHT: CameraMotion
CAMERA_MOTION_PAN_UP: CameraMotion
CAMERA_MOTION_PAN_DOWN: CameraMotion
CAMERA_MOTION_ZOOM_IN: CameraMotion
CAMERA_MOTION_ZOOM_OUT: CameraMotion

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TrajectoryPoint(_message.Message):
    __slots__ = ("time_seconds", "x", "y")
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    time_seconds: float
    x: float
    y: float
    def __init__(self, time_seconds: _Optional[float] = ..., x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class CameraMove(_message.Message):
    __slots__ = ("motion", "amount")
    MOTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    motion: CameraMotion
    amount: float
    def __init__(self, motion: _Optional[_Union[CameraMotion, str]] = ..., amount: _Optional[float] = ...) -> None: ...

class DialogueLine(_message.Message):
    __slots__ = ("speaker", "text", "start_seconds")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    speaker: str
    text: str
    start_seconds: float
    def __init__(self, speaker: _Optional[str] = ..., text: _Optional[str] = ..., start_seconds: _Optional[float] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("data", "mime_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime_type: str
    def __init__(self, data: _Optional[bytes] = ..., mime_type: _Optional[str] = ...) -> None: ...
