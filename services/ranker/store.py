"""Online features: what Rank needs to know about users and videos, updated by every Ingest.

`FeatureStore` is the interface; `MemoryFeatureStore` keeps everything in this process (embedded
default, tests, the simulator) and `RedisFeatureStore` keeps it in Redis so that every ranker replica
sees the same state (production). Both apply an Ingest batch before Ingest returns, so the replica that
took it sees its effect at once. Other replicas see a user's history at once and video counters within
`COUNTER_SYNC_SECONDS` (each keeps a mirror of the counters it has read and follows a stream of the
videos whose counters changed): the one-second promise of ranker.proto.

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
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

from kino.v1 import ranker_pb2
from services.ranker.items import ItemRecord

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
TRENDING_BUCKET_SECONDS = 3600
TRENDING_HALF_LIFE_HOURS = 6.0
TRENDING_BUCKETS = 24  # older buckets are ignored (and expire in Redis)
# How stale another replica's Ingest may leave a Redis store's counter mirror, at most.
COUNTER_SYNC_SECONDS = 0.5
# Entries (one per Ingest batch) kept in the stream of changed videos; a replica that falls further
# behind than this drops its whole mirror and reads the counters afresh.
COUNTER_CHANGES_MAXLEN = 100_000

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


@dataclass
class UserState:
    positives: list[tuple[str, float]] = field(default_factory=list)  # (video, weight), newest first
    negatives: list[str] = field(default_factory=list)  # newest first
    recent_impressions: list[str] = field(default_factory=list)  # newest first
    hidden: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    follows: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    impressions: int = 0
    positive_events: int = 0


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

    @abc.abstractmethod
    async def seen_mask(self, user: str, videos: list[str]) -> np.ndarray:
        """bool (N,): which of `videos` the user has already been shown."""

    @abc.abstractmethod
    async def counters(self, videos: list[str]) -> np.ndarray:
        """float64 (N, len(COUNTERS)): the counters of each video (zeros for a video without events)."""

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


# ---------------------------------------------------------------------------------------------------
# In process
# ---------------------------------------------------------------------------------------------------


@dataclass
class _MemoryUser:
    positives: deque = field(default_factory=lambda: deque(maxlen=MAX_POSITIVES))
    negatives: deque = field(default_factory=lambda: deque(maxlen=MAX_NEGATIVES))
    recent: deque = field(default_factory=lambda: deque(maxlen=MAX_RECENT_IMPRESSIONS))
    seen: OrderedDict = field(default_factory=OrderedDict)
    hidden: set = field(default_factory=set)
    reported: set = field(default_factory=set)
    follows: set = field(default_factory=set)
    blocked: set = field(default_factory=set)
    impressions: int = 0
    positive_events: int = 0


class MemoryFeatureStore(FeatureStore):
    """Per-video data lives in arrays indexed by a video slot (slot 0: a video without events), so a
    read for a thousand candidates is one dict lookup per name and one fancy index, not a thousand
    small arrays stacked."""

    def __init__(self) -> None:
        self._users: dict[str, _MemoryUser] = {}
        self._slots: dict[str, int] = {}  # video -> slot in the per-video arrays
        self._slot_names: list[str] = [""]
        self._counters = np.zeros((1024, len(COUNTERS)))  # (slots, C); row 0 stays zero
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

    def _slots_of(self, videos: list[str]) -> np.ndarray:
        get = self._slots.get
        return np.array([get(v, 0) for v in videos], np.int64)

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
            hidden=set(state.hidden),
            reported=set(state.reported),
            follows=set(state.follows),
            blocked=set(state.blocked),
            impressions=state.impressions,
            positive_events=state.positive_events,
        )

    async def seen_mask(self, user: str, videos: list[str]) -> np.ndarray:
        state = self._users.get(user)
        if state is None:
            return np.zeros(len(videos), bool)
        seen = state.seen
        return np.fromiter((v in seen for v in videos), bool, len(videos))

    async def counters(self, videos: list[str]) -> np.ndarray:
        return self._counters[self._slots_of(videos)]

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


# ---------------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------------


class RedisFeatureStore(FeatureStore):
    """The same features in Redis; one pipelined round trip per Ingest batch and per read.

    Keys (all under `prefix`): u:{user}:pos / :neg / :recent (capped lists, newest first), u:{user}:seen
    (sorted set by time, capped), u:{user}:hidden / :reported / :follows / :blocked (sets), u:{user}:n
    (hash of totals); c:{counter} (one hash per counter, video -> value); c:changes (stream: the videos
    each Ingest batch changed); t:{hour} (trending sorted sets, expiring); s:{session} (served videos,
    expiring); items (hash of encoded records) and items:seq (sorted set: write order).

    Reading ten counters of a thousand candidates from Redis costs about 10,000 parsed replies per Rank
    (it tripled Rank's CPU time), so counters are read through a mirror in this process: a video's
    counters are fetched on first use and again after the change stream names it.
    """

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._p = prefix
        self._mirror = _CounterMirror()
        self._changes_seen: bytes | None = None  # id of the last change-stream entry read
        self._next_counter_sync = 0.0

    def _k(self, *parts: str) -> str:
        return ":".join((self._p, *parts))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def apply(self, events: list[StoredEvent]) -> None:
        # The batch is folded first, so that Redis gets one command per key rather than one per event:
        # redis-py packs each command in Python, which is what bounds Ingest's rate.
        counters: dict[tuple[str, str], float] = defaultdict(float)  # (counter, video) -> delta
        trending: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # key -> video -> +
        users: dict[str, _UserWrites] = defaultdict(_UserWrites)
        for event in events:
            for name, delta in _counter_deltas(event).items():
                counters[name, event.video] += delta
            w = users[event.user]
            w.seen[event.video] = event.time  # any event means seen
            kind = event.kind
            if kind == _E.FEED_EVENT_TYPE_IMPRESSION:
                w.impressions += 1
                w.recent.append(event.video)
            elif kind == _E.FEED_EVENT_TYPE_HIDE:
                w.sets["hidden"].append(event.video)
            elif kind == _E.FEED_EVENT_TYPE_REPORT:
                w.sets["reported"].append(event.video)
            elif kind == _E.FEED_EVENT_TYPE_FOLLOW:
                w.sets["follows"].append(event.creator)
            elif kind == _E.FEED_EVENT_TYPE_BLOCK:
                w.sets["blocked"].append(event.creator)
            if event.positive_weight > 0:
                w.positives.append(f"{event.positive_weight:.4g}|{event.video}")
            if event.negative:
                w.negatives.append(event.video)
            if event.trending_weight:
                trending[self._k("t", str(trending_bucket(event.time)))][event.video] += event.trending_weight

        pipe = self._redis.pipeline(transaction=False)
        for (name, video), delta in counters.items():
            if name == "watch_ratio_sum":
                pipe.hincrbyfloat(self._k("c", name), video, delta)
            else:
                pipe.hincrby(self._k("c", name), video, int(delta))
        for key, videos in trending.items():
            for video, weight in videos.items():
                pipe.zincrby(key, weight, video)
            pipe.expire(key, (TRENDING_BUCKETS + 1) * TRENDING_BUCKET_SECONDS)
        for u, w in users.items():
            pipe.zadd(self._k("u", u, "seen"), w.seen)
            pipe.zremrangebyrank(self._k("u", u, "seen"), 0, -MAX_SEEN - 1)
            # LPUSH of several values leaves the last at the head: the lists stay newest first.
            for name, values, cap in (
                ("recent", w.recent, MAX_RECENT_IMPRESSIONS),
                ("pos", w.positives, MAX_POSITIVES),
                ("neg", w.negatives, MAX_NEGATIVES),
            ):
                if values:
                    pipe.lpush(self._k("u", u, name), *values)
                    pipe.ltrim(self._k("u", u, name), 0, cap - 1)
            for name, members in w.sets.items():
                pipe.sadd(self._k("u", u, name), *members)
            if w.impressions:
                pipe.hincrby(self._k("u", u, "n"), "impressions", w.impressions)
            if w.positives:
                pipe.hincrby(self._k("u", u, "n"), "positive_events", len(w.positives))
        changed = {video for _, video in counters}
        if changed:
            pipe.xadd(
                self._k("c", "changes"),
                {"videos": "\n".join(changed)},
                maxlen=COUNTER_CHANGES_MAXLEN,
                approximate=True,
            )
        await pipe.execute()
        self._mirror.forget(changed)  # this replica reads its own writes at once

    async def user_state(self, user: str) -> UserState:
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(self._k("u", user, "pos"), 0, -1)
        pipe.lrange(self._k("u", user, "neg"), 0, -1)
        pipe.lrange(self._k("u", user, "recent"), 0, -1)
        for name in ("hidden", "reported", "follows", "blocked"):
            pipe.smembers(self._k("u", user, name))
        pipe.hgetall(self._k("u", user, "n"))
        pos, neg, recent, hidden, reported, follows, blocked, totals = await pipe.execute()
        positives = []
        for entry in pos:
            weight, video = entry.decode().split("|", 1)
            positives.append((video, float(weight)))
        return UserState(
            positives=positives,
            negatives=[v.decode() for v in neg],
            recent_impressions=[v.decode() for v in recent],
            hidden={v.decode() for v in hidden},
            reported={v.decode() for v in reported},
            follows={v.decode() for v in follows},
            blocked={v.decode() for v in blocked},
            impressions=int(totals.get(b"impressions", 0)),
            positive_events=int(totals.get(b"positive_events", 0)),
        )

    async def seen_mask(self, user: str, videos: list[str]) -> np.ndarray:
        # The whole seen set (at most MAX_SEEN members, parsed in C by hiredis) costs less than asking
        # about a thousand candidates: redis-py packs every argument of a command in Python.
        if not videos:
            return np.zeros(0, bool)
        seen = set(await self._redis.zrange(self._k("u", user, "seen"), 0, -1))
        return np.fromiter((v.encode() in seen for v in videos), bool, len(videos))

    async def counters(self, videos: list[str]) -> np.ndarray:
        if not videos:
            return np.zeros((0, len(COUNTERS)))
        await self._sync_counters()
        missing = self._mirror.missing(videos)
        if missing:
            pipe = self._redis.pipeline(transaction=False)
            for name in COUNTERS:
                pipe.hmget(self._k("c", name), missing)
            columns = await pipe.execute()
            values = np.array([[float(v) if v is not None else 0.0 for v in column] for column in columns]).T
            self._mirror.put(missing, values)
        return self._mirror.get(videos)

    async def _sync_counters(self) -> None:
        """Forgets the mirrored counters of videos that other replicas' Ingests changed since the last
        sync (at most every COUNTER_SYNC_SECONDS)."""
        now = time.monotonic()
        if now < self._next_counter_sync:
            return
        self._next_counter_sync = now + COUNTER_SYNC_SECONDS
        key = self._k("c", "changes")
        if self._changes_seen is None:  # first use: the mirror is empty, follow the stream from here
            last = await self._redis.xrevrange(key, count=1)
            self._changes_seen = last[0][0] if last else b"0-0"
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.xrange(key, count=1)  # the oldest entry still kept
        pipe.xread({key: self._changes_seen})
        oldest, read = await pipe.execute()
        if (
            oldest
            and self._changes_seen != b"0-0"
            and _stream_id(oldest[0][0]) > _stream_id(self._changes_seen)
        ):
            self._mirror.clear()  # fell behind the stream's trimming: changes were lost
        for _, entries in read:
            for entry_id, fields in entries:
                self._mirror.forget(fields[b"videos"].decode().split("\n"))
                self._changes_seen = entry_id

    async def trending(self, limit: int, now: float) -> list[str]:
        # The decayed union is stored and only its top `limit` read back: returning every engaged video
        # with its score took 140 ms of reply parsing at 19,000 videos. MULTI/EXEC keeps replicas that
        # refresh at the same moment from reading each other's union.
        weights = {self._k("t", str(bucket)): w for bucket, w in trending_bucket_weights(now).items()}
        union = self._k("t", "union")
        pipe = self._redis.pipeline(transaction=True)
        pipe.zunionstore(union, weights)
        pipe.zrange(union, 0, limit - 1, desc=True)
        pipe.delete(union)
        _, top, _ = await pipe.execute()
        return [video.decode() for video in top]

    async def session_videos(self, session: str) -> set[str]:
        return {v.decode() for v in await self._redis.smembers(self._k("s", session))}

    async def add_session_videos(self, session: str, videos: list[str], ttl_seconds: int) -> None:
        if not videos:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._k("s", session), *videos)
        pipe.expire(self._k("s", session), ttl_seconds)
        await pipe.execute()

    async def put_items(self, records: list[ItemRecord]) -> None:
        if not records:
            return
        last = await self._redis.incrby(self._k("items", "counter"), len(records))
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._k("items"), mapping={r.name: encode_record(r) for r in records})
        pipe.zadd(
            self._k("items", "seq"), {r.name: last - len(records) + 1 + i for i, r in enumerate(records)}
        )
        await pipe.execute()

    async def items_since(self, cursor: int) -> tuple[list[ItemRecord], int]:
        entries = await self._redis.zrangebyscore(
            self._k("items", "seq"), f"({cursor}", "+inf", withscores=True
        )
        if not entries:
            return [], cursor
        names = [name for name, _ in entries]
        data = await self._redis.hmget(self._k("items"), names)
        records = [decode_record(d) for d in data if d is not None]
        return records, max(cursor, int(max(score for _, score in entries)))

    async def delete_all(self) -> int:
        """Removes every key under the prefix (tests, and resetting a deployment); returns the count."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{self._p}:*", count=1000):
            deleted += await self._redis.delete(key)
        return deleted


@dataclass
class _UserWrites:
    """One user's share of an Ingest batch, in event order (RedisFeatureStore.apply)."""

    seen: dict[str, float] = field(default_factory=dict)  # video -> time of its latest event
    recent: list[str] = field(default_factory=list)
    positives: list[str] = field(default_factory=list)  # "weight|video"
    negatives: list[str] = field(default_factory=list)
    sets: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # hidden, reported, ...
    impressions: int = 0


class _CounterMirror:
    """Video counters read from Redis, kept in this process until a change makes them stale."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}  # video -> row of _values
        self._stale: set[str] = set()
        self._values = np.zeros((1024, len(COUNTERS)))

    def missing(self, videos: list[str]) -> list[str]:
        """The videos among `videos` without fresh counters here (unique, in order)."""
        rows, stale = self._rows, self._stale
        return list(dict.fromkeys(v for v in videos if v not in rows or v in stale))

    def put(self, videos: list[str], values: np.ndarray) -> None:
        for video, row_values in zip(videos, values, strict=True):
            row = self._rows.get(video)
            if row is None:
                row = self._rows[video] = len(self._rows)
                if row >= len(self._values):
                    self._values = np.concatenate([self._values, np.zeros_like(self._values)])
            self._values[row] = row_values
            self._stale.discard(video)

    def get(self, videos: list[str]) -> np.ndarray:
        rows = self._rows
        return self._values[np.fromiter((rows[v] for v in videos), np.int64, len(videos))]

    def forget(self, videos) -> None:
        rows = self._rows
        self._stale.update(v for v in videos if v in rows)

    def clear(self) -> None:
        self._stale.update(self._rows)


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split(b"-")
    return int(milliseconds), int(sequence)


def store_from_settings(settings) -> FeatureStore:
    if settings.store == "redis":
        return RedisFeatureStore(settings.redis_url, settings.key_prefix)
    return MemoryFeatureStore()
