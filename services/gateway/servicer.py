"""The grpc.aio adapter of the Generation service: it only delegates to `GenerationCore`.

Errors need no handling here: the server's interceptor maps a KinoError to its status code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from kino.v1 import generation_pb2, generation_pb2_grpc
from services.common.server import ServiceRegistration
from services.common.settings import Settings
from services.gateway.clients import GrpcServiceClients, ServiceClients
from services.gateway.core import GenerationCore


class GenerationServicer(generation_pb2_grpc.GenerationServicer):
    def __init__(self, core: GenerationCore) -> None:
        self.core = core

    async def Submit(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Job:
        return await self.core.submit(request)

    async def Get(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Job:
        return await self.core.get(request)

    async def Watch(self, request, context: grpc.aio.ServicerContext) -> AsyncIterator[generation_pb2.Job]:
        async for job in self.core.watch(request):
            if not request.include_previews and job.progress.HasField("preview"):
                # The update may be shared with other watchers: strip a copy.
                stripped = generation_pb2.Job()
                stripped.CopyFrom(job)
                stripped.progress.ClearField("preview")
                job = stripped
            yield job

    async def Cancel(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Job:
        return await self.core.cancel(request)

    async def List(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.ListResponse:
        return await self.core.list(request)

    async def RegisterCameo(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Cameo:
        return await self.core.register_cameo(request)

    async def GetCameo(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Cameo:
        return await self.core.get_cameo(request)

    async def UpdateCameoConsent(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Cameo:
        return await self.core.update_cameo_consent(request)

    async def RevokeCameo(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Cameo:
        return await self.core.revoke_cameo(request)

    async def GetVideo(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.Video:
        return await self.core.get_video(request)

    async def DownloadVideo(
        self, request, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.DownloadVideoResponse]:
        async for response in self.core.download_video(request):
            yield response

    async def Verify(self, request, context: grpc.aio.ServicerContext) -> generation_pb2.VerifyResponse:
        return await self.core.verify(request)


def registration(settings: Settings, clients: ServiceClients | None = None) -> ServiceRegistration:
    """The Generation service for KinoServer.

    Without `clients`, the pipeline reaches the other services over gRPC at
    settings.gateway.services_target; empty means this same server (settings.server's address), which
    then needs a fixed port. Warm-up opens the store, recovers interrupted jobs and starts the runner;
    close stops the runner, putting jobs in flight back in the queue for the next start.
    """
    if clients is None:
        target = settings.gateway.services_target or f"{settings.server.host}:{settings.server.port}"
        if target.endswith(":0"):
            raise ValueError(
                "gateway.services_target is empty and the server port is 0 (chosen at bind time): "
                "pass the bound address as services_target"
            )
        clients = GrpcServiceClients(target, settings.server)
    core = GenerationCore(settings, clients)
    return ServiceRegistration(
        descriptor=generation_pb2.DESCRIPTOR.services_by_name["Generation"],
        add_to_server=generation_pb2_grpc.add_GenerationServicer_to_server,
        servicer=GenerationServicer(core),
        warmup=core.start,
        close=core.close,
    )
