"""Every built service through Serve's gRPC proxy; errors keep their code, ErrorInfo and RetryInfo."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from ray import serve
from ray.serve.generated import serve_pb2, serve_pb2_grpc

from kino.v1 import denoiser_pb2, denoiser_pb2_grpc, text_encoder_pb2, text_encoder_pb2_grpc
from services.cluster import catalog, routing
from services.cluster.handles import ServeHandleClients
from services.common.errors import KinoError, error_info
from services.common.logs import REQUEST_ID_HEADER
from services.gateway.clients import AUDIO, DENOISER
from tests.cluster.probes import FailingDenoiserDeployment

pytestmark = pytest.mark.ray

PROBE_APP = "DenoiserProbe"


@pytest.fixture(scope="module")
def denoiser_probe(kino_on_ray) -> str:
    serve.run(
        FailingDenoiserDeployment.bind(kino_on_ray.settings), name=PROBE_APP, route_prefix=f"/{PROBE_APP}"
    )
    yield PROBE_APP
    serve.delete(PROBE_APP)


def _retry_seconds(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


async def test_every_built_service_is_an_application(kino_on_ray):
    async with grpc.aio.insecure_channel(kino_on_ray.endpoint.address) as channel:
        stub = serve_pb2_grpc.RayServeAPIServiceStub(channel)
        listed = await stub.ListApplications(serve_pb2.ListApplicationsRequest())
    assert "TextEncoder" in kino_on_ray.endpoint.services
    assert set(kino_on_ray.endpoint.services) <= set(listed.application_names)


async def test_encode_through_the_proxy(kino_on_ray):
    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
        call = stub.Encode(
            text_encoder_pb2.EncodeRequest(texts=["a red ball", "a blue cube"]),
            metadata=((REQUEST_ID_HEADER, "req-cluster-1"),),
        )
        response = await call
        trailing = dict(await call.trailing_metadata())
    assert response.model == "all-MiniLM-L6-v2"
    assert response.dim == 384
    assert [e.pooled.shape for e in response.embeddings] == [[384], [384]]
    assert trailing[REQUEST_ID_HEADER] == "req-cluster-1"


async def test_a_kino_error_keeps_its_code_reason_and_metadata(kino_on_ray):
    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.Encode(text_encoder_pb2.EncodeRequest(texts=[]))
        with pytest.raises(grpc.aio.AioRpcError) as too_long:
            await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["x" * 2001]))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(empty.value) == ("FIELD_REQUIRED", {"field": "texts"})
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, metadata = error_info(too_long.value)
    assert reason == "PROMPT_TOO_LONG"
    assert metadata["length"] == "2001"
    assert KinoError.from_rpc_error(too_long.value).reason == "PROMPT_TOO_LONG"


async def test_without_application_metadata_the_proxy_cannot_route(kino_on_ray):
    async with grpc.aio.insecure_channel(kino_on_ray.endpoint.address) as channel:
        stub = text_encoder_pb2_grpc.TextEncoderStub(channel)
        if len(catalog.built_services()) == 1:
            pytest.skip("with one application the proxy routes everything to it")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Encode(text_encoder_pb2.EncodeRequest(texts=["a red ball"]))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_stream_error_arrives_with_error_info_after_the_messages(kino_on_ray, denoiser_probe):
    request = denoiser_pb2.DenoiseRequest(num_steps=3)
    metadata = ((routing.APPLICATION_METADATA_KEY, denoiser_probe),)
    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for response in denoiser_pb2_grpc.VideoDenoiserStub(channel).Denoise(
                request, metadata=metadata
            ):
                received.append(response)
    assert [r.progress.step for r in received] == [1, 2, 3]
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(error.value) == ("QUEUE_FULL", {"queued": "7"})
    assert _retry_seconds(error.value) == pytest.approx(2.5)


async def test_a_plain_client_sees_the_one_marker_message_of_a_failed_stream(kino_on_ray, denoiser_probe):
    request = denoiser_pb2.DenoiseRequest(num_steps=0)
    metadata = ((routing.APPLICATION_METADATA_KEY, denoiser_probe),)
    async with grpc.aio.insecure_channel(kino_on_ray.endpoint.address) as channel:
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for response in denoiser_pb2_grpc.VideoDenoiserStub(channel).Denoise(
                request, metadata=metadata
            ):
                received.append(response)
    assert [r.ByteSize() for r in received] == [0]
    assert error_info(error.value)[0] == "QUEUE_FULL"


async def test_a_unary_error_keeps_its_retry_info(kino_on_ray, denoiser_probe):
    metadata = ((routing.APPLICATION_METADATA_KEY, denoiser_probe),)
    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await denoiser_pb2_grpc.VideoDenoiserStub(channel).GetModelInfo(
                denoiser_pb2.GetModelInfoRequest(), metadata=metadata
            )
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _retry_seconds(error.value) == pytest.approx(2.5)


async def test_handle_clients_raise_the_services_kino_errors(kino_on_ray, denoiser_probe):
    clients = ServeHandleClients(applications={DENOISER: denoiser_probe})
    encoded = await clients.encode(text_encoder_pb2.EncodeRequest(texts=["a red ball"]))
    assert encoded.dim == 384
    with pytest.raises(KinoError) as bad_input:
        await clients.encode(text_encoder_pb2.EncodeRequest(texts=[]))
    assert (bad_input.value.code, bad_input.value.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_REQUIRED",
    )
    steps = []
    with pytest.raises(KinoError) as full:
        async for event in clients.denoise(denoiser_pb2.DenoiseRequest(num_steps=2)):
            steps.append(event.progress.step)
    assert steps == [1, 2]
    assert full.value.reason == "QUEUE_FULL"
    assert full.value.retry_after_seconds == pytest.approx(2.5)
    assert full.value.metadata == {"queued": "7"}


async def test_handle_clients_report_a_missing_service_as_backend_unavailable(kino_on_ray):
    if catalog.AUDIO_GENERATOR.is_built():
        pytest.skip("the audio service is built and deployed")
    from kino.v1 import audio_pb2

    with pytest.raises(KinoError) as error:
        await ServeHandleClients().generate_audio(audio_pb2.GenerateRequest())
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert error.value.reason == "BACKEND_UNAVAILABLE"
    assert error.value.metadata["backend"] == AUDIO


def test_every_built_service_deployed(kino_on_ray):
    assert kino_on_ray.endpoint.failed == {}
    assert kino_on_ray.endpoint.services == [spec.name for spec in catalog.built_services()]


def _probe_calls(channel) -> dict[str, object]:
    """One cheap call per service; each must be answered by the service itself."""
    from kino.v1 import (
        audio_pb2,
        audio_pb2_grpc,
        generation_pb2,
        generation_pb2_grpc,
        ranker_pb2,
        ranker_pb2_grpc,
    )

    return {
        "TextEncoder": text_encoder_pb2_grpc.TextEncoderStub(channel).Encode(
            text_encoder_pb2.EncodeRequest(texts=["probe"])
        ),
        "VideoDenoiser": denoiser_pb2_grpc.VideoDenoiserStub(channel).GetModelInfo(
            denoiser_pb2.GetModelInfoRequest()
        ),
        # No frames: the service's own validation answers.
        "AudioGenerator": audio_pb2_grpc.AudioGeneratorStub(channel).Generate(audio_pb2.GenerateRequest()),
        "FeedRanker": ranker_pb2_grpc.FeedRankerStub(channel).Rank(
            ranker_pb2.RankRequest(user="probe-user", page_size=5)
        ),
        "Generation": generation_pb2_grpc.GenerationStub(channel).List(
            generation_pb2.ListRequest(page_size=5)
        ),
    }


async def test_every_deployed_service_answers_through_the_proxy(kino_on_ray):
    answered = {}
    async with routing.insecure_channel(kino_on_ray.endpoint.address) as channel:
        calls = _probe_calls(channel)
        for name in kino_on_ray.endpoint.services:
            try:
                await calls[name]
                answered[name] = "OK"
            except grpc.aio.AioRpcError as error:
                reason, _ = error_info(error)
                answered[name] = f"{error.code().name} {reason}"
        for name, call in calls.items():
            if name not in kino_on_ray.endpoint.services:
                call.cancel()
    for name, outcome in answered.items():
        assert outcome == "OK" or (
            outcome.split()[0] not in {"UNIMPLEMENTED", "INTERNAL", "UNKNOWN"} and len(outcome.split()) == 2
        ), (name, outcome)
    assert answered["TextEncoder"] == "OK"
