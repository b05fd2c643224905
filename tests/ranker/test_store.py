"""Both feature stores behave the same: the in-process one and Redis (the local server, a unique prefix)."""

import asyncio
import time

import numpy as np
import pytest

from kino.v1 import ranker_pb2
from services.ranker.items import ItemRecord
from services.ranker.redis_store import COUNTER_SYNC_SECONDS, RedisFeatureStore
from services.ranker.store import (
    COUNTER_INDEX,
    MAX_POSITIVES,
    MemoryFeatureStore,
    RowCounters,
    StoredEvent,
    UserState,
)
from tests.ranker.conftest import redis_test_store

E = ranker_pb2
NOW = time.time()


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    if request.param == "memory":
        yield MemoryFeatureStore()
        return
    async with redis_test_store() as redis_store:
        yield redis_store


def stored(user, video, kind, **fields):
    return StoredEvent(
        user=user, video=video, creator=fields.pop("creator", "c1"), kind=kind, time=NOW, **fields
    )


async def test_events_update_user_state_counters_and_seen(store):
    await store.apply(
        [
            stored("u", "videos/a", E.FEED_EVENT_TYPE_IMPRESSION),
            stored(
                "u",
                "videos/a",
                E.FEED_EVENT_TYPE_WATCH,
                watch_ratio=0.9,
                positive_weight=0.9,
                trending_weight=0.9,
            ),
            stored("u", "videos/b", E.FEED_EVENT_TYPE_LIKE, positive_weight=2.0, trending_weight=2.0),
            stored("u", "videos/c", E.FEED_EVENT_TYPE_SKIP, negative=True),
            stored("u", "videos/d", E.FEED_EVENT_TYPE_HIDE, negative=True),
            stored("u", "videos/e", E.FEED_EVENT_TYPE_REPORT, negative=True),
            stored("u", "videos/f", E.FEED_EVENT_TYPE_FOLLOW, creator="c9", positive_weight=1.0),
            stored("u", "videos/g", E.FEED_EVENT_TYPE_BLOCK, creator="c7", negative=True),
            stored("v", "videos/a", E.FEED_EVENT_TYPE_IMPRESSION),
        ]
    )
    state = await store.user_state("u")
    assert state.positives == [("videos/f", 1.0), ("videos/b", 2.0), ("videos/a", 0.9)]
    assert state.negatives == ["videos/g", "videos/e", "videos/d", "videos/c"]
    assert state.recent_impressions == ["videos/a"]
    assert (state.hidden, state.reported, state.follows, state.blocked) == (
        {"videos/d"},
        {"videos/e"},
        {"c9"},
        {"c7"},
    )
    assert (state.impressions, state.positive_events) == (1, 3)
    counters = await store.counters(["videos/a", "videos/b", "videos/zzz"])
    c = COUNTER_INDEX
    assert counters[0, c["impressions"]] == 2 and counters[0, c["watches"]] == 1
    assert counters[0, c["watch_ratio_sum"]] == pytest.approx(0.9)
    assert counters[1, c["likes"]] == 1 and not counters[2].any()
    assert (await store.seen_mask("u", ["videos/a", "videos/b", "videos/x"])).tolist() == [True, True, False]
    assert not (await store.seen_mask("nobody", ["videos/a"])).any()
    assert await store.trending(10, NOW) == ["videos/b", "videos/a"]
    assert (await store.user_state("nobody")).positives == []


async def test_recent_lists_are_capped(store):
    await store.apply(
        [stored("u", f"videos/{i}", E.FEED_EVENT_TYPE_LIKE, positive_weight=2.0) for i in range(80)]
    )
    positives = (await store.user_state("u")).positives
    assert len(positives) == MAX_POSITIVES and positives[0] == ("videos/79", 2.0)


async def test_trending_decays_with_age(store):
    old = StoredEvent("u", "videos/old", "c", E.FEED_EVENT_TYPE_LIKE, NOW - 12 * 3600, trending_weight=3.0)
    new = StoredEvent("u", "videos/new", "c", E.FEED_EVENT_TYPE_LIKE, NOW, trending_weight=1.0)
    await store.apply([old, new])
    assert await store.trending(5, NOW) == ["videos/new", "videos/old"]  # 3 * 0.5**2 < 1


async def test_sessions_and_items(store):
    await store.add_session_videos("s1", ["videos/a", "videos/b"], 60)
    await store.add_session_videos("s1", ["videos/c"], 60)
    assert await store.session_videos("s1") == {"videos/a", "videos/b", "videos/c"}
    assert await store.session_videos("s2") == set()
    record = ItemRecord(
        "videos/a", "c1", np.arange(4, dtype=np.float32), NOW, ("ai-generated",), "", 9.0, "a cat"
    )
    await store.put_items([record])
    items, cursor = await store.items_since(0)
    assert [(r.name, r.prompt, r.labels) for r in items] == [("videos/a", "a cat", ("ai-generated",))]
    np.testing.assert_array_equal(items[0].embedding, record.embedding)
    assert await store.items_since(cursor) == ([], cursor)
    await store.put_items([record])
    assert len((await store.items_since(cursor))[0]) == 1


async def test_a_redis_replica_sees_another_replicas_counters_within_the_sync_interval():
    async with redis_test_store() as first:
        second = RedisFeatureStore("redis://127.0.0.1:6379/0", first._p)  # another replica, same keys
        try:
            impression = stored("u", "videos/a", E.FEED_EVENT_TYPE_IMPRESSION)
            await first.apply([impression])
            await second.counters(["videos/a"])  # starts following the change stream
            assert (await second.counters(["videos/a"]))[0, COUNTER_INDEX["impressions"]] == 1
            await first.apply([impression, stored("u", "videos/a", E.FEED_EVENT_TYPE_LIKE)])
            assert (await first.counters(["videos/a"]))[0, COUNTER_INDEX["impressions"]] == 2  # its own write
            await asyncio.sleep(COUNTER_SYNC_SECONDS + 0.05)
            fresh = await second.counters(["videos/a", "videos/b", "videos/a"])
            assert fresh[:, COUNTER_INDEX["impressions"]].tolist() == [2, 0, 2]
            assert fresh[0, COUNTER_INDEX["likes"]] == 1
        finally:
            await second.close()


async def test_a_batch_larger_than_one_redis_command_takes_is_applied_whole(store):
    videos = [f"videos/n{i}" for i in range(2500)]
    await store.apply([stored("heavy", v, E.FEED_EVENT_TYPE_IMPRESSION) for v in videos])
    state = await store.user_state("heavy")
    assert state.impressions == 2500
    assert state.recent_impressions == videos[::-1][: len(state.recent_impressions)]  # newest first, capped
    assert (await store.seen_mask("heavy", [videos[0], videos[-1], "videos/other"])).tolist() == [
        True,
        True,
        False,
    ]
    assert (await store.counters(videos[:3]))[:, COUNTER_INDEX["impressions"]].tolist() == [1, 1, 1]


async def test_responses_are_kept_newest_first(store):
    await store.apply(
        [
            stored("u", "videos/a", E.FEED_EVENT_TYPE_IMPRESSION, response=0.0),
            stored("u", "videos/a", E.FEED_EVENT_TYPE_WATCH, watch_ratio=0.9, response=0.9),
            stored("u", "videos/a", E.FEED_EVENT_TYPE_LIKE, response=2.0),
            stored("u", "videos/a", E.FEED_EVENT_TYPE_FOLLOW, creator="c2"),  # not a response
        ]
    )
    state = await store.user_state("u")
    assert state.responses == [("videos/a", 2.0), ("videos/a", 0.9), ("videos/a", 0.0)]


def catalog_of(names):
    from services.ranker.items import ItemCatalog

    catalog = ItemCatalog(4)
    catalog.upsert(
        [ItemRecord(name, "c1", np.eye(4, dtype=np.float32)[0], NOW, (), "", 9.0, "") for name in names]
    )
    return catalog


async def test_counters_read_by_catalog_row_follow_events_after_the_first_read(store):
    """Rank keeps each row's slot from its first read (RowCounters): a video read before its first event
    must still show the events that come later, the same video asked twice gets one slot."""
    catalog = catalog_of(["videos/a", "videos/b", "videos/c"])
    counters = RowCounters(store, catalog)
    impressions = COUNTER_INDEX["impressions"]
    assert not (await counters(np.array([2, 0, 2]))).any()
    await store.apply([stored("u", "videos/c", E.FEED_EVENT_TYPE_IMPRESSION)] * 2)
    await store.apply([stored("u", "videos/b", E.FEED_EVENT_TYPE_IMPRESSION)])
    assert (await counters(np.array([2, 1, 0, 2])))[:, impressions].tolist() == [2, 1, 0, 2]
    assert (await counters(np.array([1])))[:, impressions].tolist() == [1]
    catalog.upsert([ItemRecord("videos/d", "c1", np.eye(4, dtype=np.float32)[1], NOW, (), "", 9.0, "")])
    await store.apply([stored("u", "videos/d", E.FEED_EVENT_TYPE_IMPRESSION)])
    assert (await counters(np.array([3, 2])))[:, impressions].tolist() == [1, 2]
    np.testing.assert_array_equal(
        await counters(np.array([0, 1, 2, 3])),
        await store.counters(["videos/a", "videos/b", "videos/c", "videos/d"]),
    )


@pytest.mark.parametrize("seen_count", [2, 40])  # fewer seen videos than candidates, and more
def test_seen_rows_are_the_same_whichever_side_is_looked_up(seen_count):
    names = [f"videos/{i}" for i in range(30)]
    catalog = catalog_of(names)
    seen = {f"videos/{i}" for i in range(0, seen_count, 2)} | {"videos/not-in-catalog"}
    state = UserState(seen=seen)
    rows = np.array([0, 1, 2, 29, 0, 28])
    assert state.has_seen_rows(rows, catalog).tolist() == state.has_seen([names[r] for r in rows]).tolist()
    assert state.has_seen_rows(np.zeros(0, np.int64), catalog).tolist() == []
