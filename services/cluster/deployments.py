"""One Ray Serve deployment per Kino service: a thin wrapper around the service's own servicer.

Each deployment builds its service exactly as the single-process server does, through the service's
`registration(settings, ...)`, warms it up before the replica reports ready, and exposes one method
per RPC with the RPC's name, which is what Serve's gRPC proxy calls. The methods only delegate; the
`RpcAdapter` adds what the grpc.aio interceptor adds in a single process (request ids, metrics, the
size limit, errors as statuses with ErrorInfo).

The options in the decorators are the embedded run's defaults (a CPU-only local cluster). Replica
counts, autoscaling, GPUs and queue limits for real clusters live in deploy/serve-*.yaml, which
override these per deployment.
"""

from __future__ import annotations

import importlib
import logging
from typing import ClassVar

from ray import serve

from services.cluster import catalog
from services.cluster.catalog import ServiceSpec
from services.cluster.ingress import RpcAdapter
from services.cluster.metrics_export import mark_this_process_dead
from services.common.logs import configure_logging
from services.common.server import ServiceRegistration
from services.common.settings import MIB, Settings

log = logging.getLogger(__name__)

# Replicas report unhealthy (and are replaced) when check_health fails or takes longer than this.
HEALTH_CHECK_PERIOD_S = 10.0
HEALTH_CHECK_TIMEOUT_S = 30.0
# A replica gets this long to finish in-flight calls when it is stopped (scale-down, redeploy).
GRACEFUL_SHUTDOWN_TIMEOUT_S = 20.0


def _autoscaling(target_ongoing: float, max_replicas: int) -> dict:
    return {
        "min_replicas": 1,
        "initial_replicas": 1,
        "max_replicas": max_replicas,
        "target_ongoing_requests": target_ongoing,
        "upscale_delay_s": 10.0,
        "downscale_delay_s": 120.0,
    }


class KinoDeployment:
    """The shared body of every deployment; subclasses name their service and list its RPCs."""

    spec: ClassVar[ServiceSpec]

    async def __init__(self, settings: Settings) -> None:
        configure_logging(settings.log_level)
        self.settings = settings
        self.adapter = RpcAdapter(self.spec, settings.server.max_message_mb * MIB)
        self._closing = False
        # Built by the first reconfigure(), which Serve calls before the replica takes traffic
        # (every deployment has a user_config, if only {}), so a model loads once, with its tunables.
        self.registration: ServiceRegistration | None = None

    @property
    def servicer(self):
        return self.registration.servicer

    def _register(self, settings: Settings) -> ServiceRegistration:
        module = importlib.import_module(self.spec.servicer_module)
        return module.registration(settings)

    async def _start(self, settings: Settings) -> ServiceRegistration:
        registration = self._register(settings)
        if registration.warmup is not None:
            await registration.warmup()
        log.info("%s replica ready", self.spec.name)
        return registration

    async def reconfigure(self, user_config: dict) -> None:
        """Applies tunables (fields of the service's settings section) without redeploying.

        On a running replica the service is rebuilt with the new section and warmed up beside the
        old one, then swapped in; the old one finishes its in-flight calls and closes. Unchanged
        tunables cost nothing.
        """
        section = self.spec.settings_section
        current = getattr(self.settings, section)
        updated = type(current).model_validate({**current.model_dump(), **(user_config or {})})
        if self.registration is not None and updated == current:
            return
        settings = self.settings.model_copy(update={section: updated})
        if self.registration is None:
            self.registration, self.settings = await self._start(settings), settings
            return
        log.info("%s: reconfiguring %s", self.spec.name, user_config)
        fresh = await self._start(settings)
        previous, self.registration, self.settings = self.registration, fresh, settings
        if previous.close is not None:
            await previous.close()

    async def check_health(self) -> None:
        """Raises when this replica cannot serve; Serve then replaces it.

        A core can add its own check (a dead engine loop, a lost GPU) as an async `check_health`.
        """
        if self._closing:
            raise RuntimeError(f"{self.spec.name} replica is shutting down")
        if self.registration is None:
            raise RuntimeError(f"{self.spec.name} replica has not been configured")
        core_check = getattr(getattr(self.servicer, "core", None), "check_health", None)
        if core_check is not None:
            await core_check()

    async def __del__(self) -> None:
        self._closing = True
        registration = getattr(self, "registration", None)  # None when start-up failed
        if registration is not None and registration.close is not None:
            await registration.close()
        mark_this_process_dead()


def _options(
    cpus: float, max_ongoing: int, max_queued: int, target_ongoing: float, max_replicas: int
) -> dict:
    return {
        "ray_actor_options": {"num_cpus": cpus},
        "max_ongoing_requests": max_ongoing,
        "max_queued_requests": max_queued,
        "autoscaling_config": _autoscaling(target_ongoing, max_replicas),
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "health_check_timeout_s": HEALTH_CHECK_TIMEOUT_S,
        "graceful_shutdown_timeout_s": GRACEFUL_SHUTDOWN_TIMEOUT_S,
        # Tunables over the settings section; {} still makes Serve call reconfigure(), which builds.
        "user_config": {},
    }


@serve.deployment(name="TextEncoder", **_options(0.5, 64, 256, 16, 2))
class TextEncoderDeployment(KinoDeployment):
    spec = catalog.TEXT_ENCODER

    async def Encode(self, request, grpc_context=None):
        return await self.adapter.unary("Encode", self.servicer.Encode, request, grpc_context)


@serve.deployment(name="VideoDenoiser", **_options(0.5, 8, 32, 4, 2))
class VideoDenoiserDeployment(KinoDeployment):
    spec = catalog.VIDEO_DENOISER

    async def Denoise(self, request, grpc_context=None):
        async for response in self.adapter.stream("Denoise", self.servicer.Denoise, request, grpc_context):
            yield response

    async def GetModelInfo(self, request, grpc_context=None):
        return await self.adapter.unary("GetModelInfo", self.servicer.GetModelInfo, request, grpc_context)


@serve.deployment(name="AudioGenerator", **_options(0.5, 8, 32, 4, 2))
class AudioGeneratorDeployment(KinoDeployment):
    spec = catalog.AUDIO_GENERATOR

    async def Generate(self, request, grpc_context=None):
        return await self.adapter.unary("Generate", self.servicer.Generate, request, grpc_context)


# One replica: the embedded run keeps online features in the replica (ranker.store "memory").
@serve.deployment(name="FeedRanker", **_options(0.5, 64, 256, 16, 1))
class FeedRankerDeployment(KinoDeployment):
    spec = catalog.FEED_RANKER

    async def Rank(self, request, grpc_context=None):
        return await self.adapter.unary("Rank", self.servicer.Rank, request, grpc_context)

    async def Ingest(self, request, grpc_context=None):
        return await self.adapter.unary("Ingest", self.servicer.Ingest, request, grpc_context)

    async def UpsertItems(self, request, grpc_context=None):
        return await self.adapter.unary("UpsertItems", self.servicer.UpsertItems, request, grpc_context)

    async def RemoveItems(self, request, grpc_context=None):
        return await self.adapter.unary("RemoveItems", self.servicer.RemoveItems, request, grpc_context)


# One replica: the embedded run keeps jobs in one SQLite file.
@serve.deployment(name="Generation", **_options(0.5, 256, 512, 64, 1))
class GenerationDeployment(KinoDeployment):
    """The gateway; it reaches the other services through DeploymentHandles (ServeHandleClients).

    Watch and DownloadVideo are long-lived streams and count as ongoing requests while they run,
    hence the high max_ongoing_requests: the jobs themselves are bounded by the gateway's own
    max_running_jobs and max_queued_jobs.
    """

    spec = catalog.GENERATION

    def _register(self, settings: Settings) -> ServiceRegistration:
        from services.cluster.handles import ServeHandleClients

        module = importlib.import_module(self.spec.servicer_module)
        return module.registration(settings, clients=ServeHandleClients())

    async def Submit(self, request, grpc_context=None):
        return await self.adapter.unary("Submit", self.servicer.Submit, request, grpc_context)

    async def Get(self, request, grpc_context=None):
        return await self.adapter.unary("Get", self.servicer.Get, request, grpc_context)

    async def Watch(self, request, grpc_context=None):
        async for response in self.adapter.stream("Watch", self.servicer.Watch, request, grpc_context):
            yield response

    async def Cancel(self, request, grpc_context=None):
        return await self.adapter.unary("Cancel", self.servicer.Cancel, request, grpc_context)

    async def List(self, request, grpc_context=None):
        return await self.adapter.unary("List", self.servicer.List, request, grpc_context)

    async def RegisterCameo(self, request, grpc_context=None):
        return await self.adapter.unary("RegisterCameo", self.servicer.RegisterCameo, request, grpc_context)

    async def GetCameo(self, request, grpc_context=None):
        return await self.adapter.unary("GetCameo", self.servicer.GetCameo, request, grpc_context)

    async def UpdateCameoConsent(self, request, grpc_context=None):
        return await self.adapter.unary(
            "UpdateCameoConsent", self.servicer.UpdateCameoConsent, request, grpc_context
        )

    async def RevokeCameo(self, request, grpc_context=None):
        return await self.adapter.unary("RevokeCameo", self.servicer.RevokeCameo, request, grpc_context)

    async def GetVideo(self, request, grpc_context=None):
        return await self.adapter.unary("GetVideo", self.servicer.GetVideo, request, grpc_context)

    async def DownloadVideo(self, request, grpc_context=None):
        async for response in self.adapter.stream(
            "DownloadVideo", self.servicer.DownloadVideo, request, grpc_context
        ):
            yield response

    async def Verify(self, request, grpc_context=None):
        return await self.adapter.unary("Verify", self.servicer.Verify, request, grpc_context)


DEPLOYMENTS = {
    catalog.TEXT_ENCODER.name: TextEncoderDeployment,
    catalog.VIDEO_DENOISER.name: VideoDenoiserDeployment,
    catalog.AUDIO_GENERATOR.name: AudioGeneratorDeployment,
    catalog.FEED_RANKER.name: FeedRankerDeployment,
    catalog.GENERATION.name: GenerationDeployment,
}
