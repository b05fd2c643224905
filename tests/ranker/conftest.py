"""Fixtures for the FeedRanker tests: synthetic items, a real gRPC server on loopback, Redis stores."""

import contextlib
import uuid

import grpc
import numpy as np
import pytest

from kino.v1 import ranker_pb2, ranker_pb2_grpc
from services.common.server import KinoServer
from services.common.settings import load_settings
from services.common.tensors import to_proto
from services.ranker.core import RankerCore
from services.ranker.redis_store import RedisFeatureStore
from services.ranker.scoring import ContentScorer
from services.ranker.servicer import registration
from services.ranker.store import MemoryFeatureStore

DIM = 384
TOPICS = 8


def topic_vector(topic: int, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    center = np.random.default_rng(1000 + topic).normal(size=DIM)
    center /= np.linalg.norm(center)
    vector = center + noise * rng.normal(size=DIM) / np.sqrt(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def make_item(i: int, topic: int, rng, creator: str | None = None, **fields) -> ranker_pb2.FeedItem:
    return ranker_pb2.FeedItem(
        video=f"videos/v{i}",
        creator=creator or f"creator{i % 40}",
        content_embedding=to_proto(topic_vector(topic, rng)),
        duration_seconds=10.0,
        prompt=f"topic {topic} video {i}",
        **fields,
    )


def catalog_items(count: int = 400, seed: int = 0) -> list[ranker_pb2.FeedItem]:
    rng = np.random.default_rng(seed)
    return [make_item(i, i % TOPICS, rng) for i in range(count)]


def event(user: str, video: str, kind: int, **fields) -> ranker_pb2.FeedEvent:
    return ranker_pb2.FeedEvent(user=user, video=video, type=kind, **fields)


@pytest.fixture
async def core():
    core = RankerCore(MemoryFeatureStore(), ContentScorer())
    await core.upsert_items(ranker_pb2.UpsertItemsRequest(items=catalog_items()))
    yield core
    await core.close()


@pytest.fixture
async def ranker():
    """(stub, core) of a FeedRanker served over real gRPC on loopback, 400 videos in 8 topics."""
    settings = load_settings(env={}, server={"port": 0, "metrics_port": -1})
    core = RankerCore(MemoryFeatureStore(), ContentScorer())
    server = KinoServer(settings.server, [registration(settings, core)])
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    stub = ranker_pb2_grpc.FeedRankerStub(channel)
    await stub.UpsertItems(ranker_pb2.UpsertItemsRequest(items=catalog_items()))
    yield stub, core
    await channel.close()
    await server.stop(0)


@contextlib.asynccontextmanager
async def redis_test_store():
    """A RedisFeatureStore on the local server under a prefix unique to this test; deleted afterwards."""
    store = RedisFeatureStore("redis://127.0.0.1:6379/0", f"kino-test:ranker:{uuid.uuid4().hex}")
    try:
        await store.ping()
    except Exception as error:  # noqa: BLE001 - any connection failure means no local Redis
        await store.close()
        pytest.skip(f"no Redis at 127.0.0.1:6379: {error}")
    try:
        yield store
    finally:
        await store.delete_all()
        await store.close()
