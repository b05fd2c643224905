"""Online features: what Rank needs to know about users and videos, updated by every Ingest.

`FeatureStore` is the interface; `MemoryFeatureStore` keeps everything in this process (embedded
default, tests, the simulator) and `redis_store.RedisFeatureStore` keeps it in Redis so that every
ranker replica sees the same state (production). Both apply an Ingest batch before Ingest returns, so
the replica that took it sees its effect at once; other replicas see video counters within half a
second (the one-second promise of ranker.proto).

The store applies events mechanically. What counts as a positive, a negative or a trending signal is
decided by services/ranker/events.py and arrives here precomputed on each `StoredEvent`.

Per user: recent positives (video, weight), recent negatives, recent impressions (fatigue), every video
seen (bounded), hidden and reported videos, followed and blocked creators, and two totals.
Per video: the counters in `COUNTERS`. Globally: trending scores in hourly buckets that decay with a
half-life, the catalog of items (so a restarted or new replica can load it), and page-token sessions.
"""

from __future__ import annotations

import abc
import base64
import json
import time
from collections import OrderedDict, deque
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from kino.v1 import ranker_pb2
from services.ranker.items import ItemCatalog, ItemRecord

# Per-video counters, in this order in every counters array.
COUNTERS = (
    "impressions",
    "watches",
    "watch_ratio_sum",
    "likes",
    "shares",
    "remixes",
    "skips",
    "reports",
    "hides",
)
COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}

MAX_POSITIVES = 50
MAX_NEGATIVES = 50
MAX_RECENT_IMPRESSIONS = 100
MAX_SEEN = 10_000
# Response events kept per user (two to four per impression): the history a taste is regressed on.
# Regressing on the last 200 impressions instead of all of them (median 325 in the simulator) lost
# 6 of the 9 points of NDCG the whole history gained over the mean of recent positives.
MAX_RESPONSES = 1500
TRENDING_BUCKET_SECONDS = 3600
TRENDING_HALF_LIFE_HOURS = 6.0
TRENDING_BUCKETS = 24  # older buckets are ignored (and expire in Redis)

_E = ranker_pb2


@dataclass(frozen=True)
class StoredEvent:
    """One validated event, resolved against the catalog, with its effects precomputed."""

    user: str
    video: str
    creator: str
    kind: int  # a kino.v1.FeedEventType number
    time: float  # unix seconds
    watch_ratio: float = 0.0  # WATCH: watch_seconds / duration_seconds, clipped
    positive_weight: float = 0.0  # > 0: the video joins the user's recent positives with this weight
    negative: bool = False  # the video joins the user's recent negatives
    trending_weight: float = 0.0  # added to the video's trending score
    response: float | None = None  # added to the user's response to the video (None: not a response)


@dataclass
class UserState:
    positives: list[tuple[str, float]] = field(default_factory=list)  # (video, weight), newest first
    negatives: list[str] = field(default_factory=list)  # newest first
    recent_impressions: list[str] = field(default_factory=list)  # newest first
    responses: list[tuple[str, float]] = field(default_factory=list)  # (video, value), newest first
    hidden: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    follows: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    impressions: int = 0
    positive_events: int = 0
    # Every video the user has been shown (the last MAX_SEEN): membership tests only. Read with the
    # rest of the state, because Rank checks a thousand candidates against it on every call.
    seen: Collection[str] = field(default_factory=frozenset)

    def has_seen(self, videos: list[str]) -> np.ndarray:
        """bool (N,): which of `videos` the user has been shown."""
        return np.fromiter(map(self.seen.__contains__, videos), bool, len(videos))

    def has_seen_rows(self, rows: np.ndarray, catalog: ItemCatalog) -> np.ndarray:
        """bool (N,): which of the catalog's `rows` the user has been shown. The smaller side is looked
        up by name: the user's seen videos in the catalog (a few dozen for most users), or the rows'
        names in the seen set (a heavy user's ten thousand)."""
        if len(self.seen) >= rows.size:
            return self.has_seen(catalog.names_of(rows))
        marks = np.zeros(len(catalog), bool)
        marks[catalog.indices_of(self.seen)] = True
        return marks[rows]


def _counter_deltas(event: StoredEvent) -> dict[str, float]:
    kind = event.kind
    if kind == _E.FEED_EVENT_TYPE_IMPRESSION:
        return {"impressions": 1}
    if kind == _E.FEED_EVENT_TYPE_WATCH:
        return {"watches": 1, "watch_ratio_sum": event.watch_ratio}
    name = {
        _E.FEED_EVENT_TYPE_LIKE: "likes",
        _E.FEED_EVENT_TYPE_SHARE: "shares",
        _E.FEED_EVENT_TYPE_REMIX: "remixes",
        _E.FEED_EVENT_TYPE_SKIP: "skips",
        _E.FEED_EVENT_TYPE_REPORT: "reports",
        _E.FEED_EVENT_TYPE_HIDE: "hides",
    }.get(kind)
    return {name: 1} if name else {}


def trending_bucket(t: float) -> int:
    return int(t // TRENDING_BUCKET_SECONDS)


def trending_bucket_weights(now: float) -> dict[int, float]:
    """Bucket number -> decay factor for the buckets that count at time `now`."""
    current = trending_bucket(now)
    return {current - age: 0.5 ** (age / TRENDING_HALF_LIFE_HOURS) for age in range(TRENDING_BUCKETS)}


def encode_record(record: ItemRecord) -> str:
    return json.dumps(
        {
            "name": record.name,
            "creator": record.creator,
            "embedding": base64.b64encode(record.embedding.astype("<f4").tobytes()).decode(),
            "create_time": record.create_time,
            "labels": list(record.labels),
            "remix_parent": record.remix_parent,
            "duration_seconds": record.duration_seconds,
            "prompt": record.prompt,
        }
    )


def decode_record(data: str | bytes) -> ItemRecord:
    fields = json.loads(data)
    embedding = np.frombuffer(base64.b64decode(fields.pop("embedding")), "<f4").astype(np.float32)
    return ItemRecord(embedding=embedding, labels=tuple(fields.pop("labels")), **fields)


class FeatureStore(abc.ABC):
    """Online features shared by Rank and Ingest. Every method is a coroutine; none blocks the loop."""

    @abc.abstractmethod
    async def apply(self, events: list[StoredEvent]) -> None:
        """Applies a batch of events; their effects are visible to the next read."""

    @abc.abstractmethod
    async def user_state(self, user: str) -> UserState:
        """The user's state; an unknown user gets an empty one."""

    async def seen_mask(self, user: str, videos: list[str]) -> np.ndarray:
        """bool (N,): which of `videos` the user has already been shown."""
        return (await self.user_state(user)).has_seen(videos)

    async def counters(self, videos: list[str]) -> np.ndarray:
        """float64 (N, len(COUNTERS)): the counters of each video (zeros for a video without events)."""
        return await self.counters_at(self.counter_slots(videos))

    @abc.abstractmethod
    def counter_slots(self, videos: list[str]) -> np.ndarray:
        """int64 (N,): a handle per video for `counters_at`. A video keeps its handle for the store's
        lifetime (one is made for a video without events), so a caller may keep them: Rank keeps one
        per catalog row (`RowCounters`), where looking a thousand names up in a dict of every video
        cost a tenth of its time."""

    @abc.abstractmethod
    async def counters_at(self, slots: np.ndarray) -> np.ndarray:
        """float64 (N, len(COUNTERS)): the counters of the videos behind `slots` (from counter_slots)."""

    @abc.abstractmethod
    async def trending(self, limit: int, now: float) -> list[str]:
        """Up to `limit` videos with the highest decayed engagement, best first."""

    @abc.abstractmethod
    async def session_videos(self, session: str) -> set[str]:
        """Videos already served under a page-token session."""

    @abc.abstractmethod
    async def add_session_videos(self, session: str, videos: list[str], ttl_seconds: int) -> None: ...

    @abc.abstractmethod
    async def put_items(self, records: list[ItemRecord]) -> None:
        """Persists items so that a restarted or additional replica can load the catalog."""

    @abc.abstractmethod
    async def items_since(self, cursor: int) -> tuple[list[ItemRecord], int]:
        """Items written after `cursor` (0: all of them) and the cursor to pass next time."""

    async def close(self) -> None:
        return None


class RowCounters:
    """Counters of catalog rows, for Rank: each row's store slot is asked for once and kept, since a
    catalog row names the same video for the catalog's lifetime (a removed video keeps its row) and a
    video keeps its slot for the store's."""

    def __init__(self, store: FeatureStore, catalog: ItemCatalog) -> None:
        self.store = store
        self.catalog = catalog
        self._slots = np.full(0, -1, np.int64)  # (catalog rows,): -1 where not asked for yet

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        """float64 (N, len(COUNTERS)) for catalog `rows` (N,)."""
        if self._slots.size < len(self.catalog):
            grown = np.full(max(len(self.catalog), 2 * self._slots.size), -1, np.int64)
            grown[: self._slots.size] = self._slots
            self._slots = grown
        slots = self._slots[rows]
        new = np.flatnonzero(slots < 0)
        if new.size:
            slots[new] = self.store.counter_slots(self.catalog.names_of(rows[new]))
            self._slots[rows[new]] = slots[new]
        return await self.store.counters_at(slots)


# ---------------------------------------------------------------------------------------------------
# In process
# ---------------------------------------------------------------------------------------------------


@dataclass
class _MemoryUser:
    positives: deque = field(default_factory=lambda: deque(maxlen=MAX_POSITIVES))
    negatives: deque = field(default_factory=lambda: deque(maxlen=MAX_NEGATIVES))
    recent: deque = field(default_factory=lambda: deque(maxlen=MAX_RECENT_IMPRESSIONS))
    responses: deque = field(default_factory=lambda: deque(maxlen=MAX_RESPONSES))
    seen: OrderedDict = field(default_factory=OrderedDict)
    hidden: set = field(default_factory=set)
    reported: set = field(default_factory=set)
    follows: set = field(default_factory=set)
    blocked: set = field(default_factory=set)
    impressions: int = 0
    positive_events: int = 0


class MemoryFeatureStore(FeatureStore):
    """Per-video data lives in arrays indexed by a video slot, made at a video's first event or first
    counter read (slot 0 is never a video's), so a read for a thousand candidates is one fancy index,
    not a thousand small arrays stacked."""

    def __init__(self) -> None:
        self._users: dict[str, _MemoryUser] = {}
        self._slots: dict[str, int] = {}  # video -> slot in the per-video arrays
        self._slot_names: list[str] = [""]
        self._counters = np.zeros((1024, len(COUNTERS)))  # (slots, C)
        self._trending: dict[int, np.ndarray] = {}  # hourly bucket -> float64 (slots,) engagement
        self._sessions: dict[str, tuple[float, set[str]]] = {}
        self._items: dict[str, tuple[int, ItemRecord]] = {}
        self._item_seq = 0

    def _slot(self, video: str) -> int:
        slot = self._slots.get(video)
        if slot is None:
            slot = self._slots[video] = len(self._slot_names)
            self._slot_names.append(video)
            if slot >= len(self._counters):
                self._counters = np.concatenate([self._counters, np.zeros_like(self._counters)])
        return slot

    def counter_slots(self, videos: list[str]) -> np.ndarray:
        slots = np.fromiter(map(self._slots.get, videos, repeat(0, len(videos))), np.int64, len(videos))
        for i in np.flatnonzero(slots == 0).tolist():  # no events yet: a zero row of its own
            slots[i] = self._slot(videos[i])
        return slots

    async def apply(self, events: list[StoredEvent]) -> None:
        for event in events:
            user = self._users.get(event.user)
            if user is None:
                user = self._users[event.user] = _MemoryUser()
            deltas = _counter_deltas(event)
            if deltas or event.trending_weight:
                slot = self._slot(event.video)
                for name, delta in deltas.items():
                    self._counters[slot, COUNTER_INDEX[name]] += delta
            kind = event.kind
            user.seen[event.video] = None  # any event means the user has seen the video
            if len(user.seen) > MAX_SEEN:
                user.seen.popitem(last=False)
            if kind == _E.FEED_EVENT_TYPE_IMPRESSION:
                user.impressions += 1
                user.recent.appendleft(event.video)
            elif kind == _E.FEED_EVENT_TYPE_HIDE:
                user.hidden.add(event.video)
            elif kind == _E.FEED_EVENT_TYPE_REPORT:
                user.reported.add(event.video)
            elif kind == _E.FEED_EVENT_TYPE_FOLLOW:
                user.follows.add(event.creator)
            elif kind == _E.FEED_EVENT_TYPE_BLOCK:
                user.blocked.add(event.creator)
            if event.positive_weight > 0:
                user.positives.appendleft((event.video, event.positive_weight))
                user.positive_events += 1
            if event.negative:
                user.negatives.appendleft(event.video)
            if event.response is not None:
                user.responses.appendleft((event.video, event.response))
            if event.trending_weight:
                bucket = trending_bucket(event.time)
                scores = self._trending.get(bucket)
                if scores is None or scores.size <= slot:
                    grown = np.zeros(len(self._counters))
                    if scores is not None:
                        grown[: scores.size] = scores
                    scores = self._trending[bucket] = grown
                scores[slot] += event.trending_weight

    async def user_state(self, user: str) -> UserState:
        state = self._users.get(user)
        if state is None:
            return UserState()
        return UserState(
            positives=list(state.positives),
            negatives=list(state.negatives),
            recent_impressions=list(state.recent),
            responses=list(state.responses),
            hidden=set(state.hidden),
            reported=set(state.reported),
            follows=set(state.follows),
            blocked=set(state.blocked),
            impressions=state.impressions,
            positive_events=state.positive_events,
            seen=state.seen.keys(),  # a live view: copying ten thousand names per Rank would cost more
        )

    async def counters_at(self, slots: np.ndarray) -> np.ndarray:
        return self._counters[slots]

    async def trending(self, limit: int, now: float) -> list[str]:
        current = trending_bucket(now)
        for bucket in [b for b in self._trending if b < current - TRENDING_BUCKETS]:
            del self._trending[bucket]
        total = np.zeros(len(self._slot_names))
        for bucket, weight in trending_bucket_weights(now).items():
            scores = self._trending.get(bucket)
            if scores is not None:
                total[: scores.size] += weight * scores[: total.size]
        engaged = np.flatnonzero(total > 0)
        if engaged.size > limit:
            engaged = engaged[np.argpartition(-total[engaged], limit - 1)[:limit]]
        best_first = engaged[np.lexsort((engaged, -total[engaged]))]
        return [self._slot_names[s] for s in best_first.tolist()]

    async def session_videos(self, session: str) -> set[str]:
        entry = self._sessions.get(session)
        if entry is None or entry[0] < time.monotonic():
            return set()
        return set(entry[1])

    async def add_session_videos(self, session: str, videos: list[str], ttl_seconds: int) -> None:
        now = time.monotonic()
        if len(self._sessions) > 10_000:  # drop expired sessions now and then
            self._sessions = {k: v for k, v in self._sessions.items() if v[0] >= now}
        _, served = self._sessions.get(session, (0.0, set()))
        self._sessions[session] = (now + ttl_seconds, served | set(videos))

    async def put_items(self, records: list[ItemRecord]) -> None:
        for record in records:
            self._item_seq += 1
            self._items[record.name] = (self._item_seq, record)

    async def items_since(self, cursor: int) -> tuple[list[ItemRecord], int]:
        newer = sorted((seq, r) for seq, r in self._items.values() if seq > cursor)
        return [r for _, r in newer], max([cursor, *(seq for seq, _ in newer)])


def store_from_settings(settings) -> FeatureStore:
    if settings.store == "redis":
        from services.ranker.redis_store import RedisFeatureStore

        return RedisFeatureStore(settings.redis_url, settings.key_prefix)
    return MemoryFeatureStore()
