"""The one interface through which the pipeline reaches the other Kino services.

The pipeline is written against `ServiceClients` and never learns how the services are deployed.
`GrpcServiceClients` reaches them over gRPC (the single-process server or a cluster address); a
Ray Serve handle implementation belongs with the cluster deployment. Every failure comes out as a
KinoError: a service that is not deployed (UNIMPLEMENTED) or not reachable (UNAVAILABLE) is
BACKEND_UNAVAILABLE with the service in the `backend` metadata, so a failed job says what is missing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import grpc

from kino.v1 import (
    audio_pb2,
    audio_pb2_grpc,
    denoiser_pb2,
    denoiser_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    text_encoder_pb2,
    text_encoder_pb2_grpc,
)
from services.common.errors import KinoError, unavailable
from services.common.server import channel_options
from services.common.settings import ServerSettings

TEXT_ENCODER, DENOISER, AUDIO, FEED_RANKER = "text_encoder", "denoiser", "audio", "feed_ranker"
# Unary calls are short (an encode, an audio render, an upsert); a stuck backend must not hold a job
# forever. Denoising streams have no fixed limit: the job's deadline bounds them.
UNARY_TIMEOUT_SECONDS = 120.0


class ServiceClients(Protocol):
    async def encode(self, request: text_encoder_pb2.EncodeRequest) -> text_encoder_pb2.EncodeResponse: ...

    def denoise(
        self, request: denoiser_pb2.DenoiseRequest
    ) -> AsyncGenerator[denoiser_pb2.DenoiseResponse, None]: ...

    async def denoiser_model_info(self) -> denoiser_pb2.ModelInfo: ...

    async def generate_audio(self, request: audio_pb2.GenerateRequest) -> audio_pb2.GenerateResponse: ...

    async def upsert_items(
        self, request: ranker_pb2.UpsertItemsRequest
    ) -> ranker_pb2.UpsertItemsResponse: ...

    async def remove_items(
        self, request: ranker_pb2.RemoveItemsRequest
    ) -> ranker_pb2.RemoveItemsResponse: ...

    async def close(self) -> None: ...


class GrpcServiceClients:
    """ServiceClients over one grpc.aio channel to `target` (all services behind one address).

    The channel is opened on first use, inside the event loop that uses it.
    """

    def __init__(self, target: str, server_settings: ServerSettings) -> None:
        if not target:
            raise ValueError("GrpcServiceClients needs a target address (host:port)")
        self.target = target
        self._options = channel_options(server_settings)
        self._channel: grpc.aio.Channel | None = None

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
        return self._channel

    async def encode(self, request: text_encoder_pb2.EncodeRequest) -> text_encoder_pb2.EncodeResponse:
        stub = text_encoder_pb2_grpc.TextEncoderStub(self._open())
        try:
            return await stub.Encode(request, timeout=UNARY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise backend_error(error, TEXT_ENCODER) from error

    async def denoise(
        self, request: denoiser_pb2.DenoiseRequest
    ) -> AsyncGenerator[denoiser_pb2.DenoiseResponse, None]:
        """The Denoise stream; closing the iterator early cancels the call, which stops the compute."""
        call = denoiser_pb2_grpc.VideoDenoiserStub(self._open()).Denoise(request)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise backend_error(error, DENOISER) from error
        finally:
            call.cancel()

    async def denoiser_model_info(self) -> denoiser_pb2.ModelInfo:
        stub = denoiser_pb2_grpc.VideoDenoiserStub(self._open())
        try:
            return await stub.GetModelInfo(denoiser_pb2.GetModelInfoRequest(), timeout=UNARY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise backend_error(error, DENOISER) from error

    async def generate_audio(self, request: audio_pb2.GenerateRequest) -> audio_pb2.GenerateResponse:
        stub = audio_pb2_grpc.AudioGeneratorStub(self._open())
        try:
            return await stub.Generate(request, timeout=UNARY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise backend_error(error, AUDIO) from error

    async def upsert_items(self, request: ranker_pb2.UpsertItemsRequest) -> ranker_pb2.UpsertItemsResponse:
        stub = ranker_pb2_grpc.FeedRankerStub(self._open())
        try:
            return await stub.UpsertItems(request, timeout=UNARY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise backend_error(error, FEED_RANKER) from error

    async def remove_items(self, request: ranker_pb2.RemoveItemsRequest) -> ranker_pb2.RemoveItemsResponse:
        stub = ranker_pb2_grpc.FeedRankerStub(self._open())
        try:
            return await stub.RemoveItems(request, timeout=UNARY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise backend_error(error, FEED_RANKER) from error

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


def backend_error(error: grpc.aio.AioRpcError, backend: str) -> KinoError:
    """The KinoError a backend raised, or BACKEND_UNAVAILABLE naming the backend when it sent none."""
    converted = KinoError.from_rpc_error(error)
    if converted.reason == "BACKEND_UNAVAILABLE" and "backend" not in converted.metadata:
        detail = error.details() or error.code().name
        return unavailable(
            "BACKEND_UNAVAILABLE",
            f"the {backend} service is not available ({error.code().name}: {detail})",
            backend=backend,
            detail=detail,
        )
    return converted
