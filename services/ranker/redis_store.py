"""The FeedRanker's online features in Redis, shared by every ranker replica (production).

Same interface and behaviour as `store.MemoryFeatureStore` (tests/ranker/test_store.py runs both),
with two costs that the in-process store does not have, each designed around:

* **Ingest**: redis-py packs every command in Python, and a batch of 1,000 events meant about 8,000
  commands. The batch is folded per key here (`_fold`: one counter increment per video, one list push
  per user) and sent as one JSON argument to a server-side script (`_APPLY_SCRIPT`) that issues the
  commands inside Redis.
* **Rank**: reading ten counters of a thousand candidates meant 10,000 parsed replies per call, so a
  replica keeps a mirror of the counters it has read and follows `c:changes`, a stream of the videos
  each batch changed; another replica's Ingest reaches it within `COUNTER_SYNC_SECONDS`. A user's
  whole state, seen set included, is one script call (`_USER_STATE_SCRIPT`) whose reply hiredis
  parses and decodes in C, rather than a pipeline of nine commands and a question per candidate.

The script derives its keys from the prefix instead of declaring them: fine for one Redis server or a
primary with replicas; a Redis Cluster would need the keys hash-tagged to one slot per batch.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import repeat

import numpy as np

from services.ranker.items import ItemRecord
from services.ranker.store import (
    _E,
    COUNTERS,
    MAX_NEGATIVES,
    MAX_POSITIVES,
    MAX_RECENT_IMPRESSIONS,
    MAX_RESPONSES,
    MAX_SEEN,
    TRENDING_BUCKET_SECONDS,
    TRENDING_BUCKETS,
    FeatureStore,
    StoredEvent,
    UserState,
    _counter_deltas,
    decode_record,
    encode_record,
    trending_bucket,
    trending_bucket_weights,
)

# How stale another replica's Ingest may leave a replica's counter mirror, at most.
COUNTER_SYNC_SECONDS = 0.5
# Entries (one per Ingest batch) kept in the stream of changed videos; a replica that falls further
# behind than this drops its whole mirror and reads the counters afresh.
COUNTER_CHANGES_MAXLEN = 100_000
_FLOAT_COUNTERS = {"watch_ratio_sum"}
# Per-user lists (u:{user}:{name}, newest first) and how many entries each keeps.
_LIST_CAPS = {
    "recent": MAX_RECENT_IMPRESSIONS,
    "pos": MAX_POSITIVES,
    "neg": MAX_NEGATIVES,
    "resp": MAX_RESPONSES,
}

# ARGV[1]: the folded batch (`_fold`). Lua's unpack() is bounded by the C stack, so long argument
# lists go in slices of 1,000.
_APPLY_SCRIPT = """
local batch = cjson.decode(ARGV[1])
local function call_sliced(command, key, values, pre)
  for i = 1, #values, 1000 do
    local last = math.min(i + 999, #values)
    if pre then
      redis.call(command, key, pre, unpack(values, i, last))
    else
      redis.call(command, key, unpack(values, i, last))
    end
  end
end
for _, c in ipairs(batch.counters) do
  if c[4] == 1 then
    redis.call('HINCRBYFLOAT', c[1], c[2], c[3])
  else
    redis.call('HINCRBY', c[1], c[2], c[3])
  end
end
for _, t in ipairs(batch.trending) do
  redis.call('ZINCRBY', t[1], t[3], t[2])
end
for _, key in ipairs(batch.trending_keys) do
  redis.call('EXPIRE', key, batch.trending_ttl)
end
for _, u in ipairs(batch.users) do
  local seen = u.prefix .. 'seen'
  call_sliced('ZADD', seen, u.seen)
  redis.call('ZREMRANGEBYRANK', seen, 0, -batch.max_seen - 1)
  for _, list in ipairs(u.lists) do
    local key = u.prefix .. list[1]
    call_sliced('LPUSH', key, list[3])
    redis.call('LTRIM', key, 0, list[2] - 1)
  end
  for _, set in ipairs(u.sets) do
    call_sliced('SADD', u.prefix .. set[1], set[2])
  end
  for _, total in ipairs(u.totals) do
    redis.call('HINCRBY', u.prefix .. 'n', total[1], total[2])
  end
end
if #batch.changed > 0 then
  redis.call('XADD', batch.changes_key, 'MAXLEN', '~', batch.changes_maxlen, '*',
             'videos', table.concat(batch.changed, '\\n'))
end
return #batch.counters
"""


# ARGV[1]: the user's key prefix. A user's whole state in one command: as a pipeline of nine commands
# it cost more CPU in redis-py than the rest of the Redis store's part of Rank.
_USER_STATE_SCRIPT = """
local p = ARGV[1]
return {
  redis.call('LRANGE', p .. 'pos', 0, -1),
  redis.call('LRANGE', p .. 'neg', 0, -1),
  redis.call('LRANGE', p .. 'recent', 0, -1),
  redis.call('LRANGE', p .. 'resp', 0, -1),
  redis.call('SMEMBERS', p .. 'hidden'),
  redis.call('SMEMBERS', p .. 'reported'),
  redis.call('SMEMBERS', p .. 'follows'),
  redis.call('SMEMBERS', p .. 'blocked'),
  redis.call('HMGET', p .. 'n', 'impressions', 'positive_events'),
  redis.call('ZRANGE', p .. 'seen', 0, -1),
}
"""

# KEYS[1]: the session's set; ARGV[1]: its time to live; ARGV[2...]: the videos served.
_ADD_SESSION_SCRIPT = """
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
return redis.call('EXPIRE', KEYS[1], ARGV[1])
"""


def _fold(events: list[StoredEvent], key: Callable[..., str]) -> dict:
    """An Ingest batch as the writes it makes, one entry per key, in the form _APPLY_SCRIPT reads.
    Lists keep event order: LPUSH of several values leaves the last at the head, newest first."""
    counters: dict[tuple[str, str], float] = defaultdict(float)  # (counter, video) -> delta
    trending: dict[tuple[str, str], float] = defaultdict(float)  # (bucket key, video) -> weight
    users: dict[str, dict] = {}
    for event in events:
        for name, delta in _counter_deltas(event).items():
            counters[name, event.video] += delta
        u = users.get(event.user)
        if u is None:
            u = users[event.user] = {
                "seen": {},
                "recent": [],
                "pos": [],
                "neg": [],
                "resp": [],
                "sets": defaultdict(list),
                "impressions": 0,
            }
        u["seen"][event.video] = event.time  # any event means seen; the latest time wins
        kind = event.kind
        if kind == _E.FEED_EVENT_TYPE_IMPRESSION:
            u["impressions"] += 1
            u["recent"].append(event.video)
        elif kind == _E.FEED_EVENT_TYPE_HIDE:
            u["sets"]["hidden"].append(event.video)
        elif kind == _E.FEED_EVENT_TYPE_REPORT:
            u["sets"]["reported"].append(event.video)
        elif kind == _E.FEED_EVENT_TYPE_FOLLOW:
            u["sets"]["follows"].append(event.creator)
        elif kind == _E.FEED_EVENT_TYPE_BLOCK:
            u["sets"]["blocked"].append(event.creator)
        if event.positive_weight > 0:
            u["pos"].append(f"{event.positive_weight:.4g}|{event.video}")
        if event.negative:
            u["neg"].append(event.video)
        if event.response is not None:
            u["resp"].append(f"{event.response:.4g}|{event.video}")
        if event.trending_weight:
            trending[key("t", str(trending_bucket(event.time))), event.video] += event.trending_weight
    changed = sorted({video for _, video in counters})
    return {
        "counters": [
            [
                key("c", name),
                video,
                delta if name in _FLOAT_COUNTERS else int(delta),
                int(name in _FLOAT_COUNTERS),
            ]
            for (name, video), delta in counters.items()
        ],
        "trending": [[k, video, weight] for (k, video), weight in trending.items()],
        "trending_keys": sorted({k for k, _ in trending}),
        "trending_ttl": (TRENDING_BUCKETS + 1) * TRENDING_BUCKET_SECONDS,
        "max_seen": MAX_SEEN,
        "users": [
            {
                "prefix": key("u", user, ""),
                "seen": [x for video, t in u["seen"].items() for x in (t, video)],
                "lists": [[name, cap, u[name]] for name, cap in _LIST_CAPS.items() if u[name]],
                "sets": [[name, members] for name, members in u["sets"].items()],
                "totals": [
                    [name, count]
                    for name, count in (("impressions", u["impressions"]), ("positive_events", len(u["pos"])))
                    if count
                ],
            }
            for user, u in users.items()
        ],
        "changed": changed,
        "changes_key": key("c", "changes"),
        "changes_maxlen": COUNTER_CHANGES_MAXLEN,
    }


class RedisFeatureStore(FeatureStore):
    """The same features in Redis; one round trip per Ingest batch and per read.

    Keys (all under `prefix`): u:{user}:pos / :neg / :recent / :resp (capped lists, newest first), u:{user}:seen
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
        # Replies that are all names are decoded by the parser (in C with hiredis) on this client.
        self._text = redis.from_url(url, decode_responses=True)
        self._p = prefix
        self._apply_script = self._redis.register_script(_APPLY_SCRIPT)
        self._user_state_script = self._text.register_script(_USER_STATE_SCRIPT)
        self._add_session_script = self._redis.register_script(_ADD_SESSION_SCRIPT)
        self._mirror = _CounterMirror()
        self._changes_seen: bytes | None = None  # id of the last change-stream entry read
        self._next_counter_sync = 0.0

    def _k(self, *parts: str) -> str:
        return ":".join((self._p, *parts))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
        await self._text.aclose()

    async def apply(self, events: list[StoredEvent]) -> None:
        writes = _fold(events, self._k)
        if writes["counters"] or writes["users"]:
            await self._apply_script(args=[json.dumps(writes, separators=(",", ":"))])
        changed = writes["changed"]
        self._mirror.forget(changed)  # this replica reads its own writes at once

    async def user_state(self, user: str) -> UserState:
        reply = await self._user_state_script(args=[self._k("u", user, "")])
        pos, neg, recent, resp, hidden, reported, follows, blocked, (impressions, positives), seen = reply
        return UserState(
            positives=_weighted(pos),
            negatives=neg,
            recent_impressions=recent,
            responses=_weighted(resp),
            hidden=set(hidden),
            reported=set(reported),
            follows=set(follows),
            blocked=set(blocked),
            impressions=int(impressions or 0),
            positive_events=int(positives or 0),
            seen=set(seen),
        )

    def counter_slots(self, videos: list[str]) -> np.ndarray:
        return self._mirror.slots(videos)

    async def counters_at(self, slots: np.ndarray) -> np.ndarray:
        if not slots.size:
            return np.zeros((0, len(COUNTERS)))
        await self._sync_counters()
        missing = self._mirror.stale_among(slots)
        if missing.size:
            names = self._mirror.names_of(missing)
            pipe = self._redis.pipeline(transaction=False)
            for name in COUNTERS:
                pipe.hmget(self._k("c", name), names)
            columns = await pipe.execute()
            values = np.array([[float(v) if v is not None else 0.0 for v in column] for column in columns]).T
            self._mirror.put(missing, values)
        return self._mirror.values_at(slots)

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
        await self._add_session_script(keys=[self._k("s", session)], args=[ttl_seconds, *videos])

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


class _CounterMirror:
    """Video counters read from Redis, kept in this process until a change makes them stale.

    Each video gets a row here on first use (its slot, which it keeps), so that a Rank reads its
    candidates' counters by slot: checking a thousand names against dicts of every video cost more
    than the rest of the read."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}  # video -> row of _values
        self._names: list[str] = []  # row -> video
        self._fresh = np.zeros(1024, bool)  # (rows,): the row holds the video's current counters
        self._values = np.zeros((1024, len(COUNTERS)))

    def slots(self, videos: list[str]) -> np.ndarray:
        rows = self._rows
        slots = np.fromiter(map(rows.get, videos, repeat(-1, len(videos))), np.int64, len(videos))
        for i in np.flatnonzero(slots < 0).tolist():
            video = videos[i]
            row = rows.get(video)  # the same new video twice in `videos`
            if row is None:
                row = rows[video] = len(self._names)
                self._names.append(video)
                if row >= len(self._fresh):
                    self._values = np.concatenate([self._values, np.zeros_like(self._values)])
                    self._fresh = np.concatenate([self._fresh, np.zeros_like(self._fresh)])
            slots[i] = row
        return slots

    def stale_among(self, slots: np.ndarray) -> np.ndarray:
        """The distinct slots among `slots` whose counters must be read from Redis."""
        return np.unique(slots[~self._fresh[slots]])

    def names_of(self, slots: np.ndarray) -> list[str]:
        return list(map(self._names.__getitem__, slots.tolist()))

    def put(self, slots: np.ndarray, values: np.ndarray) -> None:
        self._values[slots] = values
        self._fresh[slots] = True

    def values_at(self, slots: np.ndarray) -> np.ndarray:
        return self._values[slots]

    def forget(self, videos) -> None:
        rows = self._rows
        stale = [rows[v] for v in videos if v in rows]
        self._fresh[stale] = False

    def clear(self) -> None:
        self._fresh[:] = False


def _weighted(entries: list[str]) -> list[tuple[str, float]]:
    """List entries "value|video" -> [(video, value)]."""
    pairs = []
    for entry in entries:
        value, video = entry.split("|", 1)
        pairs.append((video, float(value)))
    return pairs


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split(b"-")
    return int(milliseconds), int(sequence)
