"""Deployments used only by the cluster tests, built from the real deployment classes.

`FailingDenoiserDeployment` is the real VideoDenoiser deployment over a servicer that fails on
purpose (the real denoiser needs its weights and minutes of CPU): it streams `steps_before_error`
progress events and then raises a KinoError, so the tests can watch a streaming error cross Serve's
gRPC proxy.
"""

from __future__ import annotations

import asyncio

from ray import serve

from kino.v1 import denoiser_pb2, denoiser_pb2_grpc
from services.cluster.deployments import VideoDenoiserDeployment
from services.common.errors import resource_exhausted
from services.common.server import ServiceRegistration


class FailingDenoiserServicer(denoiser_pb2_grpc.VideoDenoiserServicer):
    async def Denoise(self, request: denoiser_pb2.DenoiseRequest, context):
        steps = request.num_steps
        for step in range(1, steps + 1):
            await asyncio.sleep(0.01)
            yield denoiser_pb2.DenoiseResponse(
                progress=denoiser_pb2.DenoiseProgress(step=step, total_steps=steps)
            )
        raise resource_exhausted("QUEUE_FULL", "the denoiser is full", retry_after_seconds=2.5, queued=7)

    async def GetModelInfo(self, request, context):
        raise resource_exhausted("QUEUE_FULL", "the denoiser is full", retry_after_seconds=2.5, queued=7)


@serve.deployment(name="VideoDenoiser", num_replicas=1, ray_actor_options={"num_cpus": 0.1}, user_config={})
class FailingDenoiserDeployment(VideoDenoiserDeployment.func_or_class):
    def _register(self, settings) -> ServiceRegistration:
        return ServiceRegistration(
            descriptor=denoiser_pb2.DESCRIPTOR.services_by_name["VideoDenoiser"],
            add_to_server=denoiser_pb2_grpc.add_VideoDenoiserServicer_to_server,
            servicer=FailingDenoiserServicer(),
        )
