from kino.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SoundEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOUND_EVENT_KIND_UNSPECIFIED: _ClassVar[SoundEventKind]
    SOUND_EVENT_KIND_IMPACT: _ClassVar[SoundEventKind]
    SOUND_EVENT_KIND_AMBIENCE: _ClassVar[SoundEventKind]
    SOUND_EVENT_KIND_DIALOGUE: _ClassVar[SoundEventKind]
SOUND_EVENT_KIND_UNSPECIFIED: SoundEventKind
SOUND_EVENT_KIND_IMPACT: SoundEventKind
SOUND_EVENT_KIND_AMBIENCE: SoundEventKind
SOUND_EVENT_KIND_DIALOGUE: SoundEventKind

class GenerateRequest(_message.Message):
    __slots__ = ("frames", "fps", "prompt", "dialogue", "seed", "sample_rate")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    frames: _common_pb2.Tensor
    fps: float
    prompt: str
    dialogue: _containers.RepeatedCompositeFieldContainer[_common_pb2.DialogueLine]
    seed: int
    sample_rate: int
    def __init__(self, frames: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., fps: _Optional[float] = ..., prompt: _Optional[str] = ..., dialogue: _Optional[_Iterable[_Union[_common_pb2.DialogueLine, _Mapping]]] = ..., seed: _Optional[int] = ..., sample_rate: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("pcm", "sample_rate", "channels", "events")
    PCM_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    pcm: _common_pb2.Tensor
    sample_rate: int
    channels: int
    events: _containers.RepeatedCompositeFieldContainer[SoundEvent]
    def __init__(self, pcm: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., events: _Optional[_Iterable[_Union[SoundEvent, _Mapping]]] = ...) -> None: ...

class SoundEvent(_message.Message):
    __slots__ = ("kind", "start_seconds", "duration_seconds", "gain", "label")
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    kind: SoundEventKind
    start_seconds: float
    duration_seconds: float
    gain: float
    label: str
    def __init__(self, kind: _Optional[_Union[SoundEventKind, str]] = ..., start_seconds: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., gain: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...
