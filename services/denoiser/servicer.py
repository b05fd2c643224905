"""The grpc.aio adapter of the VideoDenoiser: it only delegates to `DenoiserCore`.

Errors need no handling here: the server's interceptor maps a KinoError to its status code. When the
caller cancels, grpc.aio cancels this generator, which leaves the engine's event stream and so
cancels the request at the next denoising step; the call's deadline becomes the request's deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from kino.v1 import denoiser_pb2, denoiser_pb2_grpc
from services.common.server import ServiceRegistration
from services.common.settings import Settings
from services.denoiser.core import DenoiserCore


class VideoDenoiserServicer(denoiser_pb2_grpc.VideoDenoiserServicer):
    def __init__(self, core: DenoiserCore) -> None:
        self.core = core

    async def Denoise(
        self, request: denoiser_pb2.DenoiseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[denoiser_pb2.DenoiseResponse]:
        async for response in self.core.denoise(request, context.time_remaining()):
            yield response

    async def GetModelInfo(
        self, request: denoiser_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> denoiser_pb2.ModelInfo:
        return self.core.model_info()


def registration(settings: Settings, core: DenoiserCore | None = None) -> ServiceRegistration:
    """The VideoDenoiser for KinoServer, served by the step-level engine.

    Loads the shipped weights unless a ready `core` is passed in; raises FileNotFoundError naming the
    missing file when they are absent, so the server refuses to start instead of serving noise.
    """
    core = core or DenoiserCore.from_settings(settings.denoiser)
    return ServiceRegistration(
        descriptor=denoiser_pb2.DESCRIPTOR.services_by_name["VideoDenoiser"],
        add_to_server=denoiser_pb2_grpc.add_VideoDenoiserServicer_to_server,
        servicer=VideoDenoiserServicer(core),
        warmup=core.warmup,
        close=core.close,
    )
