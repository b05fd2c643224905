import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kino.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_EVENT_TYPE_UNSPECIFIED: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_IMPRESSION: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_WATCH: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_LIKE: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_SHARE: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_REMIX: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_SKIP: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_REPORT: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_HIDE: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_FOLLOW: _ClassVar[FeedEventType]
    FEED_EVENT_TYPE_BLOCK: _ClassVar[FeedEventType]

class CandidateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_SOURCE_UNSPECIFIED: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_SIMILAR: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_FRESH: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_TRENDING: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_REMIX: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_FOLLOWING: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_EXPLORE: _ClassVar[CandidateSource]
FEED_EVENT_TYPE_UNSPECIFIED: FeedEventType
FEED_EVENT_TYPE_IMPRESSION: FeedEventType
FEED_EVENT_TYPE_WATCH: FeedEventType
FEED_EVENT_TYPE_LIKE: FeedEventType
FEED_EVENT_TYPE_SHARE: FeedEventType
FEED_EVENT_TYPE_REMIX: FeedEventType
FEED_EVENT_TYPE_SKIP: FeedEventType
FEED_EVENT_TYPE_REPORT: FeedEventType
FEED_EVENT_TYPE_HIDE: FeedEventType
FEED_EVENT_TYPE_FOLLOW: FeedEventType
FEED_EVENT_TYPE_BLOCK: FeedEventType
CANDIDATE_SOURCE_UNSPECIFIED: CandidateSource
CANDIDATE_SOURCE_SIMILAR: CandidateSource
CANDIDATE_SOURCE_FRESH: CandidateSource
CANDIDATE_SOURCE_TRENDING: CandidateSource
CANDIDATE_SOURCE_REMIX: CandidateSource
CANDIDATE_SOURCE_FOLLOWING: CandidateSource
CANDIDATE_SOURCE_EXPLORE: CandidateSource

class FeedItem(_message.Message):
    __slots__ = ("video", "creator", "content_embedding", "create_time", "labels", "remix_parent", "duration_seconds", "prompt")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CONTENT_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REMIX_PARENT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    video: str
    creator: str
    content_embedding: _common_pb2.Tensor
    create_time: _timestamp_pb2.Timestamp
    labels: _containers.RepeatedScalarFieldContainer[str]
    remix_parent: str
    duration_seconds: float
    prompt: str
    def __init__(self, video: _Optional[str] = ..., creator: _Optional[str] = ..., content_embedding: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., remix_parent: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., prompt: _Optional[str] = ...) -> None: ...

class FeedEvent(_message.Message):
    __slots__ = ("user", "video", "type", "event_time", "watch_seconds")
    USER_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    WATCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    user: str
    video: str
    type: FeedEventType
    event_time: _timestamp_pb2.Timestamp
    watch_seconds: float
    def __init__(self, user: _Optional[str] = ..., video: _Optional[str] = ..., type: _Optional[_Union[FeedEventType, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., watch_seconds: _Optional[float] = ...) -> None: ...

class RankContext(_message.Message):
    __slots__ = ("surface", "locale")
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    surface: str
    locale: str
    def __init__(self, surface: _Optional[str] = ..., locale: _Optional[str] = ...) -> None: ...

class RankRequest(_message.Message):
    __slots__ = ("user", "page_size", "page_token", "context")
    USER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    user: str
    page_size: int
    page_token: str
    context: RankContext
    def __init__(self, user: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., context: _Optional[_Union[RankContext, _Mapping]] = ...) -> None: ...

class RankedItem(_message.Message):
    __slots__ = ("video", "score", "source", "reason")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    video: str
    score: float
    source: CandidateSource
    reason: str
    def __init__(self, video: _Optional[str] = ..., score: _Optional[float] = ..., source: _Optional[_Union[CandidateSource, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RankedItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[RankedItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FeedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[FeedEvent, _Mapping]]] = ...) -> None: ...

class EventRejection(_message.Message):
    __slots__ = ("index", "reason", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    message: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("accepted", "unknown_videos", "rejected", "rejections")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_VIDEOS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    unknown_videos: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[EventRejection]
    def __init__(self, accepted: _Optional[int] = ..., unknown_videos: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[EventRejection, _Mapping]]] = ...) -> None: ...

class UpsertItemsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[FeedItem]
    def __init__(self, items: _Optional[_Iterable[_Union[FeedItem, _Mapping]]] = ...) -> None: ...

class UpsertItemsResponse(_message.Message):
    __slots__ = ("upserted", "still_removed")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    STILL_REMOVED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    still_removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, upserted: _Optional[int] = ..., still_removed: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveItemsRequest(_message.Message):
    __slots__ = ("videos",)
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    videos: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, videos: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveItemsResponse(_message.Message):
    __slots__ = ("removed", "unknown_videos")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_VIDEOS_FIELD_NUMBER: _ClassVar[int]
    removed: int
    unknown_videos: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[int] = ..., unknown_videos: _Optional[_Iterable[str]] = ...) -> None: ...
