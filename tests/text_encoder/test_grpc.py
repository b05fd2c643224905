"""The TextEncoder over real gRPC on loopback, behind the shared server runtime."""

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kino.v1 import text_encoder_pb2, text_encoder_pb2_grpc
from services.common.errors import error_info
from services.common.server import KinoServer
from services.common.settings import load_settings
from services.common.tensors import from_proto
from services.text_encoder.core import TextEncoderCore
from services.text_encoder.servicer import registration


@pytest.fixture
async def served(recording):
    settings = load_settings(env={}, server={"port": 0, "metrics_port": -1})
    core = TextEncoderCore(recording, max_batch=32, max_wait_ms=10, cache_entries=64)
    server = KinoServer(settings.server, [registration(settings, core)])
    await server.start()
    assert recording.calls == [["warm-up"]]
    recording.calls.clear()
    channel = grpc.aio.insecure_channel(server.address)
    yield text_encoder_pb2_grpc.TextEncoderStub(channel), channel, recording
    await channel.close()
    await server.stop(0)


async def test_encode_over_grpc(served, minilm):
    stub, _, _ = served
    texts = ["a red cube bounces", "waves crash on a rocky shore at sunset"]
    response = await stub.Encode(text_encoder_pb2.EncodeRequest(texts=texts, include_tokens=True))
    assert (response.model, response.dim) == ("all-MiniLM-L6-v2", 384)
    for embedding, reference in zip(response.embeddings, minilm.encode(texts), strict=True):
        tokens = from_proto(embedding.tokens, field="tokens", dtype=np.float32, ndim=2)
        np.testing.assert_allclose(from_proto(embedding.pooled, field="pooled"), reference.pooled, atol=1e-5)
        assert tokens.shape == (embedding.num_tokens, 384)


async def test_concurrent_calls_are_batched_and_repeats_cached(served):
    stub, _, recording = served
    prompts = [f"caller {i}: a drone shot over a forest" for i in range(8)]
    await asyncio.gather(*(stub.Encode(text_encoder_pb2.EncodeRequest(texts=[p])) for p in prompts))
    assert len(recording.calls) < 8 and sum(map(len, recording.calls)) == 8
    again = await stub.Encode(text_encoder_pb2.EncodeRequest(texts=prompts[:2]))
    assert [e.cached for e in again.embeddings] == [True, True]
    assert sum(map(len, recording.calls)) == 8


async def test_bad_request_is_invalid_argument_with_reason(served):
    stub, _, recording = served
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["x" * 2001]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value) == (
        "PROMPT_TOO_LONG",
        {"field": "texts[0]", "length": "2001", "max": "2000"},
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Encode(text_encoder_pb2.EncodeRequest())
    assert error_info(raised.value) == ("FIELD_REQUIRED", {"field": "texts"})
    assert recording.calls == []


async def test_reports_serving_after_warmup(served):
    _, channel, _ = served
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="kino.v1.TextEncoder"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_client_that_gives_up_does_not_break_the_service(served):
    stub, _, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["impatient " * 150]), timeout=0.005)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    response = await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["patient"]))
    assert len(response.embeddings) == 1
