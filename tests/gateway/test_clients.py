"""GrpcServiceClients against real servers: calls go through, failures come out as KinoErrors."""

from __future__ import annotations

import asyncio
import socket

import grpc
import numpy as np
import pytest

from kino.v1 import audio_pb2, denoiser_pb2, ranker_pb2, text_encoder_pb2
from services.common.errors import KinoError
from services.common.settings import ServerSettings
from services.common.tensors import to_proto
from services.gateway.clients import GrpcServiceClients
from tests.gateway.scaffold import RecordingFeedRanker, ScaffoldTextEncoder, SilentAudio, SlowDenoiser


@pytest.fixture
async def clients_to():
    opened: list[GrpcServiceClients] = []

    def open_clients(target: str) -> GrpcServiceClients:
        clients = GrpcServiceClients(target, ServerSettings())
        opened.append(clients)
        return clients

    yield open_clients
    for clients in opened:
        await clients.close()


def tokens(length: int = 5) -> np.ndarray:
    return np.ones((length, 16), np.float32)


async def test_calls_reach_the_services(start_scaffold, clients_to):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(),
        denoiser=SlowDenoiser(steps=3, step_seconds=0.0, finish="frames", preview_every=2),
        audio=SilentAudio(),
        ranker=RecordingFeedRanker(),
    )
    clients = clients_to(backends.address)
    encoded = await clients.encode(text_encoder_pb2.EncodeRequest(texts=["a", "b c"], include_tokens=True))
    assert [e.num_tokens for e in encoded.embeddings] == [3, 4]
    info = await clients.denoiser_model_info()
    assert info.model == "scaffold-slow-denoiser"
    request = denoiser_pb2.DenoiseRequest(
        text_tokens=to_proto(tokens()), num_frames=8, height=32, width=32, num_steps=3
    )
    kinds = [event.WhichOneof("event") async for event in clients.denoise(request)]
    assert kinds == ["progress", "progress", "preview", "progress", "result"]
    frames = to_proto(np.zeros((8, 32, 32, 3), np.uint8))
    audio = await clients.generate_audio(audio_pb2.GenerateRequest(frames=frames, fps=8.0))
    assert audio.sample_rate == 48000
    upserted = await clients.upsert_items(
        ranker_pb2.UpsertItemsRequest(items=[ranker_pb2.FeedItem(video="videos/v")])
    )
    assert upserted.upserted == 1 and backends.ranker.upserts[0].items[0].video == "videos/v"


async def test_closing_a_denoise_stream_cancels_the_remote_call(start_scaffold, clients_to):
    backends = await start_scaffold(denoiser=SlowDenoiser(steps=100, step_seconds=0.05))
    clients = clients_to(backends.address)
    request = denoiser_pb2.DenoiseRequest(
        text_tokens=to_proto(tokens()), num_frames=8, height=32, width=32, num_steps=100
    )
    stream = clients.denoise(request)
    await anext(stream)
    await stream.aclose()
    await asyncio.wait_for(backends.denoiser.cancelled.wait(), 5)


async def test_a_service_that_is_not_deployed_is_backend_unavailable(start_scaffold, clients_to):
    backends = await start_scaffold(encoder=ScaffoldTextEncoder())
    clients = clients_to(backends.address)
    with pytest.raises(KinoError) as caught:
        await clients.denoiser_model_info()
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE")
    assert caught.value.metadata["backend"] == "denoiser"
    with pytest.raises(KinoError) as caught:
        await clients.generate_audio(audio_pb2.GenerateRequest())
    assert caught.value.metadata["backend"] == "audio"


async def test_an_unreachable_address_is_backend_unavailable(clients_to):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    clients = clients_to(f"127.0.0.1:{free_port}")
    with pytest.raises(KinoError) as caught:
        await clients.encode(text_encoder_pb2.EncodeRequest(texts=["a"]))
    assert (caught.value.reason, caught.value.metadata["backend"]) == ("BACKEND_UNAVAILABLE", "text_encoder")


async def test_a_service_error_keeps_its_code_reason_and_metadata(start_scaffold, clients_to):
    backends = await start_scaffold(denoiser=SlowDenoiser(steps=2, step_seconds=0.0))
    clients = clients_to(backends.address)
    malformed = denoiser_pb2.DenoiseRequest(num_steps=2)
    malformed.text_tokens.CopyFrom(to_proto(tokens()))
    malformed.text_tokens.data = malformed.text_tokens.data[:-1]
    with pytest.raises(KinoError) as caught:
        async for _ in clients.denoise(malformed):
            pass
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TENSOR")
    assert caught.value.metadata["field"] == "text_tokens"

    request = denoiser_pb2.DenoiseRequest(
        text_tokens=to_proto(tokens()), num_frames=8, height=32, width=32, num_steps=2
    )
    with pytest.raises(KinoError) as caught:
        async for _ in clients.denoise(request):
            pass
    assert (caught.value.reason, caught.value.metadata["backend"]) == ("BACKEND_UNAVAILABLE", "denoiser")
    assert "scaffold" in caught.value.message
