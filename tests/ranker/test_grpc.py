"""The FeedRanker over real gRPC: feeds, feedback, paging, filters and every kind of bad input."""

import asyncio
import base64
import time
import zlib

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kino.v1 import common_pb2, ranker_pb2
from services.common.errors import error_info
from services.common.tensors import to_proto
from tests.ranker.conftest import catalog_items, event, make_item, topic_vector

E = ranker_pb2


async def rank(stub, user="alice", page_size=10, **fields):
    return await stub.Rank(E.RankRequest(user=user, page_size=page_size, **fields))


def topic_of(video: str) -> int:
    return int(video.removeprefix("videos/v")) % 8


async def expect_error(call, code, reason, **metadata):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code
    got_reason, got_metadata = error_info(raised.value)
    assert got_reason == reason
    for key, value in metadata.items():
        assert got_metadata[key] == value
    return raised.value


async def test_unknown_user_gets_a_cold_start_feed_with_reasons(ranker):
    stub, _ = ranker
    response = await rank(stub, user="never-seen", page_size=20)
    assert len(response.items) == 20
    assert len({item.video for item in response.items}) == 20
    assert all(item.reason and item.source != E.CANDIDATE_SOURCE_UNSPECIFIED for item in response.items)
    assert {item.source for item in response.items} <= {
        E.CANDIDATE_SOURCE_EXPLORE,
        E.CANDIDATE_SOURCE_FRESH,
        E.CANDIDATE_SOURCE_TRENDING,
    }
    assert response.next_page_token


async def test_likes_steer_the_feed_towards_their_topic_at_once(ranker):
    stub, _ = ranker
    liked = [f"videos/v{i}" for i in range(3, 80, 8)][:6]  # topic 3
    events = [event("bob", v, E.FEED_EVENT_TYPE_LIKE) for v in liked]
    assert (await stub.Ingest(E.IngestRequest(events=events))).accepted == 6
    response = await rank(stub, user="bob", page_size=20)
    topics = [topic_of(item.video) for item in response.items]
    assert topics.count(3) >= 10, topics
    similar = [item for item in response.items if item.source == E.CANDIDATE_SOURCE_SIMILAR]
    assert similar and all("topic 3" in item.reason for item in similar)
    assert not {item.video for item in response.items} & set(liked)


async def test_counters_and_trending_reflect_an_ingest_within_a_second(ranker):
    stub, core = ranker
    video = "videos/v123"
    events = [event(f"fan{i}", video, E.FEED_EVENT_TYPE_LIKE) for i in range(20)]
    await stub.Ingest(E.IngestRequest(events=events))
    counters = await core.store.counters([video])
    assert counters[0, 3] == 20  # likes
    await asyncio.sleep(core.retrieval_config.cache_seconds)  # the trending list is cached for a second
    assert (await core.retriever._trending_rows(core.clock()))[0] == core.catalog.index_of(video)
    response = await rank(stub, user="newcomer", page_size=30)
    assert response.items[0].video == video  # 20 likes and no skips: the best-liked video for a cold user


async def test_pages_do_not_repeat_and_the_token_is_checked(ranker):
    stub, _ = ranker
    first = await rank(stub, user="carol", page_size=30)
    second = await rank(stub, user="carol", page_size=30, page_token=first.next_page_token)
    assert len(second.items) == 30
    assert not {i.video for i in first.items} & {i.video for i in second.items}
    await expect_error(
        rank(stub, user="dave", page_token=first.next_page_token),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_NAME",
        field="page_token",
    )
    for token in ["%%%", "bm90IGEgdG9rZW4", "MS5hYmMuMS5kZWFkYmVlZg"]:
        await expect_error(rank(stub, page_token=token), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_NAME")


async def test_a_forged_page_token_is_refused_with_a_reason_whatever_its_numbers(ranker):
    stub, _ = ranker
    checksum = f"{zlib.crc32(b'alice'):08x}"
    forged = [f"1.{'a' * 16}.{'9' * 5000}.{checksum}", f"1.{'*:{}' * 4}.2.{checksum}"]
    for raw in forged:
        token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        await expect_error(
            rank(stub, user="alice", page_token=token),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MALFORMED_NAME",
            field="page_token",
        )
    assert len((await rank(stub, user="alice")).items) == 10


async def test_the_last_page_a_token_can_number_ends_the_feed(ranker):
    stub, _ = ranker
    raw = f"1.{'b' * 16}.999999999.{zlib.crc32(b'alice'):08x}"
    token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = await rank(stub, user="alice", page_token=token)
    assert len(response.items) == 10 and not response.next_page_token


async def test_the_feed_ends_with_an_empty_token(ranker):
    stub, _ = ranker
    seen, token = set(), ""
    for _ in range(10):
        response = await rank(stub, user="erin", page_size=100, page_token=token)
        assert not seen & {i.video for i in response.items}
        seen |= {i.video for i in response.items}
        token = response.next_page_token
        if not token:
            break
    assert not token and len(seen) > 300


async def test_huge_page_sizes_are_capped_at_100(ranker):
    stub, _ = ranker
    assert len((await rank(stub, page_size=5000)).items) == 100
    assert len((await rank(stub, page_size=0)).items) == 10
    await expect_error(
        rank(stub, page_size=-1), grpc.StatusCode.INVALID_ARGUMENT, "OUT_OF_RANGE", field="page_size"
    )


async def test_a_user_id_longer_than_the_api_allows_is_refused(ranker):
    stub, _ = ranker
    await expect_error(
        rank(stub, user="u" * 257), grpc.StatusCode.INVALID_ARGUMENT, "OUT_OF_RANGE", field="user", max="256"
    )
    assert (await rank(stub, user="u" * 256)).items


async def test_seen_hidden_reported_and_blocked_videos_leave_the_feed(ranker):
    stub, _ = ranker
    page = await rank(stub, user="frank", page_size=40)
    videos = [item.video for item in page.items]
    blocked_creator_video = videos[3]
    events = [event("frank", v, E.FEED_EVENT_TYPE_IMPRESSION) for v in videos[:2]]
    events += [
        event("frank", videos[2], E.FEED_EVENT_TYPE_HIDE),
        event("frank", blocked_creator_video, E.FEED_EVENT_TYPE_BLOCK),
    ]
    events += [event("frank", videos[4], E.FEED_EVENT_TYPE_REPORT)]
    assert (await stub.Ingest(E.IngestRequest(events=events))).accepted == 5
    creator = f"creator{int(blocked_creator_video.removeprefix('videos/v')) % 40}"
    for _ in range(3):
        again = [item.video for item in (await rank(stub, user="frank", page_size=100)).items]
        assert not set(again) & set(videos[:5])
        assert all(f"creator{int(v.removeprefix('videos/v')) % 40}" != creator for v in again)


async def test_safety_labels_and_own_videos_are_never_shown(ranker):
    stub, _ = ranker
    rng = np.random.default_rng(5)
    unsafe = make_item(1000, 2, rng, labels=["safety:violence"])
    own = make_item(1001, 2, rng, creator="gina")
    assert (await stub.UpsertItems(E.UpsertItemsRequest(items=[unsafe, own]))).upserted == 2
    shown = set()
    token = ""
    for _ in range(5):
        response = await rank(stub, user="gina", page_size=100, page_token=token)
        shown |= {i.video for i in response.items}
        token = response.next_page_token
    assert "videos/v1000" not in shown and "videos/v1001" not in shown
    assert len(shown) >= 300


async def test_following_remix_surfaces(ranker):
    stub, _ = ranker
    rng = np.random.default_rng(6)
    remix = make_item(2000, 5, rng, remix_parent="videos/v5", creator="remixer")
    await stub.UpsertItems(E.UpsertItemsRequest(items=[remix]))
    await stub.Ingest(
        E.IngestRequest(
            events=[
                event("hank", "videos/v5", E.FEED_EVENT_TYPE_LIKE),
                event("hank", "videos/v7", E.FEED_EVENT_TYPE_FOLLOW),
            ]
        )
    )
    remixes = await rank(stub, user="hank", context=E.RankContext(surface="remixes"))
    assert remixes.items[0].video == "videos/v2000"
    assert remixes.items[0].source == E.CANDIDATE_SOURCE_REMIX and "remix" in remixes.items[0].reason
    following = await rank(stub, user="hank", page_size=100, context=E.RankContext(surface="following"))
    assert {i.video for i in following.items} == {f"videos/v{i}" for i in range(7, 400, 40)} - {"videos/v7"}
    assert all(i.source == E.CANDIDATE_SOURCE_FOLLOWING for i in following.items)
    await expect_error(
        rank(stub, context=E.RankContext(surface="nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_ENUM_VALUE",
    )


async def test_bad_events_are_rejected_one_by_one_and_the_rest_applied(ranker):
    stub, core = ranker
    events = [
        event("ivy", "videos/v1", E.FEED_EVENT_TYPE_LIKE),
        event("", "videos/v1", E.FEED_EVENT_TYPE_LIKE),
        event("ivy", "", E.FEED_EVENT_TYPE_LIKE),
        event("ivy", "videos/v1", 99),
        event("ivy", "videos/v1", E.FEED_EVENT_TYPE_UNSPECIFIED),
        event("ivy", "videos/v2", E.FEED_EVENT_TYPE_WATCH, watch_seconds=-3),
        event("ivy", "videos/nope", E.FEED_EVENT_TYPE_LIKE),
        event("ivy", "videos/v2", E.FEED_EVENT_TYPE_WATCH, watch_seconds=9.5),
        event("u" * 257, "videos/v1", E.FEED_EVENT_TYPE_LIKE),
    ]
    response = await stub.Ingest(E.IngestRequest(events=events))
    assert (response.accepted, response.unknown_videos, response.rejected) == (2, 1, 6)
    assert [(r.index, r.reason) for r in response.rejections] == [
        (1, "FIELD_REQUIRED"),
        (2, "FIELD_REQUIRED"),
        (3, "UNKNOWN_ENUM_VALUE"),
        (4, "FIELD_REQUIRED"),
        (5, "OUT_OF_RANGE"),
        (6, "VIDEO_NOT_FOUND"),
        (8, "OUT_OF_RANGE"),
    ]
    known_reasons = set(common_pb2.ErrorReason.keys())
    assert all(r.reason in known_reasons and r.message for r in response.rejections)
    counters = await core.store.counters(["videos/v1", "videos/v2"])
    assert counters[0, 3] == 1 and counters[1, 1] == 1 and counters[1, 2] == pytest.approx(0.95)


async def test_an_event_with_an_impossible_time_is_rejected_alone_and_the_rest_applied(ranker):
    stub, core = ranker
    events = [
        event("kim", "videos/v5", E.FEED_EVENT_TYPE_LIKE, event_time=Timestamp(seconds=-(2**62))),
        event("kim", "videos/v5", E.FEED_EVENT_TYPE_LIKE, event_time=Timestamp(seconds=1, nanos=2**31 - 1)),
        event("kim", "videos/v6", E.FEED_EVENT_TYPE_LIKE, event_time=Timestamp(seconds=1_700_000_000)),
    ]
    response = await stub.Ingest(E.IngestRequest(events=events))
    assert (response.accepted, response.rejected) == (1, 2)
    assert [(r.index, r.reason) for r in response.rejections] == [(0, "OUT_OF_RANGE"), (1, "OUT_OF_RANGE")]
    assert all("event_time" in r.message for r in response.rejections)
    counters = await core.store.counters(["videos/v5", "videos/v6"])
    assert (counters[0, 3], counters[1, 3]) == (0, 1)


async def test_an_event_naming_no_possible_video_is_rejected_as_malformed_not_unknown(ranker):
    stub, core = ranker
    events = [
        event("lee", "v1", E.FEED_EVENT_TYPE_LIKE),
        event("lee", "videos/v1/x", E.FEED_EVENT_TYPE_LIKE),
        event("lee", "videos/v1\n", E.FEED_EVENT_TYPE_LIKE),
        event("lee", "videos/unknown", E.FEED_EVENT_TYPE_LIKE),
        event("lee", "videos/v1", E.FEED_EVENT_TYPE_LIKE),
    ]
    response = await stub.Ingest(E.IngestRequest(events=events))
    assert (response.accepted, response.unknown_videos, response.rejected) == (1, 1, 3)
    assert [(r.index, r.reason) for r in response.rejections] == [
        (0, "MALFORMED_NAME"),
        (1, "MALFORMED_NAME"),
        (2, "MALFORMED_NAME"),
        (3, "VIDEO_NOT_FOUND"),
    ]
    assert all("events[" in r.message for r in response.rejections)
    assert (await core.store.counters(["videos/v1"]))[0, 3] == 1


async def test_malformed_ingest_requests_are_refused_whole(ranker):
    stub, _ = ranker
    await expect_error(
        stub.Ingest(E.IngestRequest()), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED", field="events"
    )
    too_many = [event("u", "videos/v1", E.FEED_EVENT_TYPE_IMPRESSION)] * 10_001
    await expect_error(
        stub.Ingest(E.IngestRequest(events=too_many)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "OUT_OF_RANGE",
        max="10000",
    )


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        (lambda item: item.ClearField("video"), "FIELD_REQUIRED", "items[1].video"),
        (lambda item: setattr(item, "video", "clips/x"), "MALFORMED_NAME", "items[1].video"),
        (lambda item: setattr(item, "video", "videos/a\nb"), "MALFORMED_NAME", "items[1].video"),
        (lambda item: setattr(item, "video", "videos/a\x00"), "MALFORMED_NAME", "items[1].video"),
        (lambda item: item.ClearField("creator"), "FIELD_REQUIRED", "items[1].creator"),
        (lambda item: setattr(item, "creator", "\u200b"), "FIELD_REQUIRED", "items[1].creator"),
        (lambda item: setattr(item, "creator", "ann\x00"), "MALFORMED_NAME", "items[1].creator"),
        (
            lambda item: item.content_embedding.CopyFrom(to_proto(np.ones(128, np.float32))),
            "INVALID_TENSOR",
            "items[1].content_embedding",
        ),
        (
            lambda item: item.content_embedding.CopyFrom(to_proto(np.full(384, np.nan, np.float32))),
            "INVALID_TENSOR",
            "items[1].content_embedding",
        ),
        (
            lambda item: item.content_embedding.CopyFrom(to_proto(np.zeros(384, np.float32))),
            "INVALID_TENSOR",
            "items[1].content_embedding",
        ),
        (lambda item: setattr(item, "creator", "c" * 257), "OUT_OF_RANGE", "items[1].creator"),
        (lambda item: item.labels.extend(["topic"] * 33), "OUT_OF_RANGE", "items[1].labels"),
        (lambda item: item.labels.extend(["ok", "x" * 65]), "OUT_OF_RANGE", "items[1].labels[1]"),
        (lambda item: item.labels.append(""), "FIELD_REQUIRED", "items[1].labels[0]"),
        (lambda item: setattr(item, "duration_seconds", 0), "OUT_OF_RANGE", "items[1].duration_seconds"),
        (lambda item: setattr(item, "remix_parent", "bad"), "MALFORMED_NAME", "items[1].remix_parent"),
        (
            lambda item: item.create_time.CopyFrom(Timestamp(seconds=2**62)),
            "OUT_OF_RANGE",
            "items[1].create_time",
        ),
        (
            lambda item: item.create_time.CopyFrom(Timestamp(seconds=1, nanos=-5)),
            "OUT_OF_RANGE",
            "items[1].create_time",
        ),
    ],
)
async def test_malformed_items_refuse_the_request(ranker, change, reason, field):
    stub, core = ranker
    rng = np.random.default_rng(9)
    items = [make_item(3000, 1, rng), make_item(3001, 1, rng)]
    change(items[1])
    await expect_error(
        stub.UpsertItems(E.UpsertItemsRequest(items=items)),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        field=field,
    )
    assert core.catalog.index_of("videos/v3000") is None  # nothing half-applied


async def test_an_embedding_of_huge_values_is_normalized_not_zeroed(ranker):
    stub, core = ranker
    item = make_item(4000, 2, np.random.default_rng(4))
    direction = np.frombuffer(item.content_embedding.data, np.float32)
    item.content_embedding.CopyFrom(to_proto(direction * np.float32(1e30)))
    await stub.UpsertItems(E.UpsertItemsRequest(items=[item]))
    stored = core.catalog.embeddings[core.catalog.index_of("videos/v4000")]
    np.testing.assert_allclose(stored, direction, atol=1e-6)


async def test_an_embedding_whose_norm_exceeds_float32_is_normalized_not_zeroed(ranker):
    stub, core = ranker
    item = make_item(4002, 2, np.random.default_rng(6))
    item.content_embedding.CopyFrom(to_proto(np.full(384, 3e38, np.float32)))  # norm about 6e39
    await stub.UpsertItems(E.UpsertItemsRequest(items=[item]))
    stored = core.catalog.embeddings[core.catalog.index_of("videos/v4002")]
    np.testing.assert_allclose(stored, np.full(384, 384**-0.5, np.float32), rtol=1e-6)


async def test_a_video_dated_in_the_future_is_taken_as_made_now(ranker):
    stub, core = ranker
    item = make_item(4001, 2, np.random.default_rng(5))
    item.create_time.CopyFrom(Timestamp(seconds=4_102_444_800))  # 2100
    before = time.time()
    await stub.UpsertItems(E.UpsertItemsRequest(items=[item]))
    stored = core.catalog.create_times[core.catalog.index_of("videos/v4001")]
    assert before <= stored <= time.time()


async def test_item_count_limits(ranker):
    stub, _ = ranker
    await expect_error(
        stub.UpsertItems(E.UpsertItemsRequest()), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED"
    )
    items = catalog_items(1001, seed=3)
    await expect_error(
        stub.UpsertItems(E.UpsertItemsRequest(items=items)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "OUT_OF_RANGE",
        max="1000",
    )


async def test_rank_requires_a_user(ranker):
    stub, _ = ranker
    for blank in ("", " ", "\u200b\u2060"):
        await expect_error(
            rank(stub, user=blank), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED", field="user"
        )
    await expect_error(
        rank(stub, user="ann\x00"), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_NAME", field="user"
    )


async def test_events_of_users_the_gateway_could_not_have_named_are_rejected_alone(ranker):
    stub, core = ranker
    events = [
        event("\u200b", "videos/v1", E.FEED_EVENT_TYPE_LIKE),
        event("ann\nbob", "videos/v1", E.FEED_EVENT_TYPE_LIKE),
        event("ann", "videos/v1", E.FEED_EVENT_TYPE_LIKE),
    ]
    response = await stub.Ingest(E.IngestRequest(events=events))
    assert [(r.index, r.reason) for r in response.rejections] == [
        (0, "FIELD_REQUIRED"),
        (1, "MALFORMED_NAME"),
    ]
    assert response.accepted == 1 and (await core.store.counters(["videos/v1"]))[0, 3] == 1


async def test_an_upserted_video_can_be_shown_at_once(ranker):
    stub, _ = ranker
    rng = np.random.default_rng(11)
    await stub.Ingest(
        E.IngestRequest(events=[event("jo", f"videos/v{i}", E.FEED_EVENT_TYPE_LIKE) for i in (6, 14, 22)])
    )
    new = make_item(5000, 6, rng)
    new.content_embedding.CopyFrom(to_proto(topic_vector(6, rng, noise=0.05)))
    await stub.UpsertItems(E.UpsertItemsRequest(items=[new]))
    response = await rank(stub, user="jo", page_size=10)
    assert "videos/v5000" in [i.video for i in response.items]


async def test_removed_videos_leave_every_feed_and_unknown_ones_are_named(ranker):
    stub, core = ranker
    await stub.Ingest(
        E.IngestRequest(events=[event("lu", f"videos/v{i}", E.FEED_EVENT_TYPE_LIKE) for i in (5, 13, 21)])
    )
    before = [i.video for i in (await rank(stub, user="lu", page_size=20)).items]
    gone = before[:3]
    response = await stub.RemoveItems(E.RemoveItemsRequest(videos=[*gone, gone[0], "videos/nope"]))
    assert (response.removed, list(response.unknown_videos)) == (3, ["videos/nope"])
    again = await stub.RemoveItems(E.RemoveItemsRequest(videos=gone[:1]))  # a no-op, still counted
    assert again.removed == 1
    for user in ("lu", "someone-new"):
        shown = {i.video for i in (await rank(stub, user=user, page_size=100)).items}
        assert shown and not shown & set(gone)
    assert core.catalog.index_of(gone[0]) is not None  # out of the feeds, not out of the catalog

    # A removal is final: publishing the video again (a late or replayed publish) keeps it out.
    index = int(gone[0].removeprefix("videos/v"))
    again, other = make_item(index, 0, np.random.default_rng(0)), make_item(9000, 1, np.random.default_rng(1))
    again.prompt = "published again"
    response = await stub.UpsertItems(E.UpsertItemsRequest(items=[again, other]))
    assert (response.upserted, list(response.still_removed)) == (2, [gone[0]])
    assert core.catalog.records[core.catalog.index_of(gone[0])].prompt == "published again"
    shown = {i.video for i in (await rank(stub, user="someone-else", page_size=100)).items}
    assert gone[0] not in shown

    await expect_error(
        stub.RemoveItems(E.RemoveItemsRequest()), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED"
    )
    await expect_error(
        stub.RemoveItems(E.RemoveItemsRequest(videos=["v1"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_NAME",
        field="videos[0]",
    )


async def test_registration_from_settings_serves_with_the_redis_store():
    """The production configuration end to end: settings -> registration -> gRPC, online features in Redis."""
    import uuid

    from kino.v1 import ranker_pb2_grpc
    from services.common.server import KinoServer
    from services.common.settings import load_settings
    from services.ranker.redis_store import RedisFeatureStore
    from services.ranker.servicer import registration

    prefix = f"kino-test:ranker:{uuid.uuid4().hex}"
    settings = load_settings(
        env={}, server={"port": 0, "metrics_port": -1}, ranker={"store": "redis", "key_prefix": prefix}
    )
    probe = RedisFeatureStore(settings.ranker.redis_url, prefix)
    try:
        await probe.ping()
    except Exception as error:  # noqa: BLE001 - no local Redis
        await probe.close()
        pytest.skip(f"no Redis: {error}")
    server = KinoServer(settings.server, [registration(settings)])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = ranker_pb2_grpc.FeedRankerStub(channel)
            await stub.UpsertItems(E.UpsertItemsRequest(items=catalog_items(200)))
            liked = [f"videos/v{i}" for i in (2, 10, 18)]
            await stub.Ingest(
                E.IngestRequest(events=[event("kim", v, E.FEED_EVENT_TYPE_LIKE) for v in liked])
            )
            response = await rank(stub, user="kim", page_size=10)
            assert [topic_of(i.video) for i in response.items].count(2) >= 5
            assert not {i.video for i in response.items} & set(liked)
            second = await rank(stub, user="kim", page_size=10, page_token=response.next_page_token)
            assert not {i.video for i in second.items} & {i.video for i in response.items}
            await stub.RemoveItems(E.RemoveItemsRequest(videos=["videos/v3"]))
        # A second replica on the same Redis sees the catalog, what was removed, and the user's features.
        from services.ranker.core import RankerCore

        replica = RankerCore.from_settings(settings.ranker)
        await replica.warmup()
        assert len(replica.catalog) == 200
        assert replica.catalog.unsafe[replica.catalog.index_of("videos/v3")]
        assert [v for v, _ in (await replica.store.user_state("kim")).positives] == liked[::-1]
        await replica.close()
    finally:
        await server.stop(0)
        await probe.delete_all()
        await probe.close()


async def test_a_removed_video_is_not_quoted_in_the_reasons_of_a_feed(ranker):
    stub, _ = ranker
    liked = [f"videos/v{i}" for i in range(5, 80, 8)][:6]  # topic 5
    await stub.Ingest(E.IngestRequest(events=[event("dana", v, E.FEED_EVENT_TYPE_LIKE) for v in liked]))
    before = await rank(stub, user="dana", page_size=20)
    assert any("topic 5 video" in item.reason for item in before.items)
    await stub.RemoveItems(E.RemoveItemsRequest(videos=liked))
    after = await rank(stub, user="dana", page_size=20)
    similar = [item for item in after.items if item.source == E.CANDIDATE_SOURCE_SIMILAR]
    assert similar and all(item.reason == "similar to a video, which you enjoyed" for item in similar)
    quoted = [f"“topic 5 video {video.removeprefix('videos/v')}”" for video in liked]
    assert not any(prompt in item.reason for item in after.items for prompt in quoted)
