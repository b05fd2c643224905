"""Back-pressure answers RESOURCE_EXHAUSTED; a replica lost in the middle of a call is replaced and
the call is sent again, not lost."""

from __future__ import annotations

import asyncio
import collections

import grpc
import pytest
import ray
from ray import serve

from kino.v1 import text_encoder_pb2, text_encoder_pb2_grpc
from services.cluster import routing
from services.cluster.handles import HANDLE_RETRIES, ServeHandleClients
from services.common.errors import KinoError
from services.gateway.clients import TEXT_ENCODER
from tests.cluster.helpers import deploy_probe, unique_texts

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def tight_encoder(kino_on_ray) -> str:
    """A TextEncoder that takes one call at a time and queues one more."""
    deploy_probe(
        kino_on_ray.settings, "TextEncoder", "EncoderTight", max_ongoing_requests=1, max_queued_requests=1
    )
    yield "EncoderTight"
    serve.delete("EncoderTight")


async def test_overload_answers_resource_exhausted_through_the_proxy(kino_on_ray, tight_encoder):
    metadata = ((routing.APPLICATION_METADATA_KEY, tight_encoder),)

    async def one(stub) -> grpc.StatusCode:
        try:
            await stub.Encode(text_encoder_pb2.EncodeRequest(texts=unique_texts(16)), metadata=metadata)
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            return error.code()

    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
        codes = collections.Counter(await asyncio.gather(*(one(stub) for _ in range(16))))
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert codes[grpc.StatusCode.OK] >= 1


async def test_overload_is_queue_full_for_the_gateway(kino_on_ray, tight_encoder):
    clients = ServeHandleClients(applications={TEXT_ENCODER: tight_encoder})

    async def one():
        try:
            await clients.encode(text_encoder_pb2.EncodeRequest(texts=unique_texts(16)))
            return "OK"
        except KinoError as error:
            return (error.code, error.reason, error.retry_after_seconds)

    outcomes = collections.Counter(await asyncio.gather(*(one() for _ in range(12))))
    assert outcomes["OK"] >= 1
    assert outcomes[(grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL", 1.0)] >= 1
    assert set(outcomes) == {"OK", (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL", 1.0)}


def _replica_actors(app_name: str) -> list[str]:
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith(f"SERVE_REPLICA::{app_name}#TextEncoder")
    ]


async def test_a_replica_killed_mid_call_is_replaced_and_the_call_retried(kino_on_ray):
    app = "EncoderChaos"
    deploy_probe(kino_on_ray.settings, "TextEncoder", app)
    try:
        [victim] = _replica_actors(app)
        clients = ServeHandleClients(applications={TEXT_ENCODER: app})
        retries_before = HANDLE_RETRIES.labels(TEXT_ENCODER)._value.get()
        # About a second of encoding on this CPU: long enough to be killed in the middle.
        texts = unique_texts(12, words=60)
        call = asyncio.ensure_future(clients.encode(text_encoder_pb2.EncodeRequest(texts=texts)))
        await asyncio.sleep(0.4)
        assert not call.done(), "the call finished before the replica could be killed"
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        response = await asyncio.wait_for(call, timeout=120)
        assert len(response.embeddings) == len(texts)
        assert HANDLE_RETRIES.labels(TEXT_ENCODER)._value.get() == retries_before + 1
        assert _replica_actors(app) != [victim]
    finally:
        serve.delete(app)


async def test_user_config_sets_the_tunables_of_the_replica(kino_on_ray):
    """user_config reaches reconfigure() and replaces the service's settings section.

    serve.run gives every call a new code version, so the second deploy here starts a new replica;
    the in-place reconfigure of a running replica happens on `serve deploy` of a config file (and a
    RayService serveConfigV2 edit), where Serve keeps the code version. Not exercised here.
    """
    app = "EncoderTuned"
    metadata = ((routing.APPLICATION_METADATA_KEY, app),)
    request = text_encoder_pb2.EncodeRequest(texts=unique_texts(1))

    async def cached_twice() -> list[bool]:
        async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
            stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
            return [(await stub.Encode(request, metadata=metadata)).embeddings[0].cached for _ in range(2)]

    deploy_probe(kino_on_ray.settings, "TextEncoder", app, user_config={"cache_entries": 0})
    try:
        assert await cached_twice() == [False, False]
        deploy_probe(kino_on_ray.settings, "TextEncoder", app, user_config={"cache_entries": 100})
        assert await cached_twice() == [False, True]
    finally:
        serve.delete(app)
