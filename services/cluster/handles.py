"""`ServeHandleClients`: the gateway's ServiceClients over Ray Serve DeploymentHandles.

Inside the cluster the gateway calls the other deployments directly through handles (no gRPC hop,
no proxy); the pipeline cannot tell this from `GrpcServiceClients`. Every failure comes out as the
same KinoError the gRPC client would raise:

* a KinoError raised by the service arrives as `RemoteKinoError` and is unwrapped;
* Serve's back-pressure (max_queued_requests reached) is RESOURCE_EXHAUSTED/QUEUE_FULL with a retry
  delay, as the proxy answers it;
* a service that is not deployed is UNAVAILABLE/BACKEND_UNAVAILABLE naming the backend.

A replica that dies in the middle of a call (node lost, OOM, killed) is not the caller's problem:
the call is sent again, to a replacement replica, up to `MAX_ATTEMPTS` times. All four calls can be
repeated safely: encode, audio and upserts are idempotent, and a denoising stream starts over (its
seed is in the request; the gateway sees progress restart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from prometheus_client import Counter
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from kino.v1 import audio_pb2, denoiser_pb2, ranker_pb2, text_encoder_pb2
from services.cluster import catalog
from services.cluster.ingress import RemoteKinoError
from services.common.errors import KinoError, deadline_exceeded, resource_exhausted, unavailable
from services.gateway.clients import AUDIO, DENOISER, FEED_RANKER, TEXT_ENCODER, UNARY_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# What a caller refused by back-pressure is told to wait before trying again.
BACKPRESSURE_RETRY_SECONDS = 1.0
_REPLICA_LOST = (ActorDiedError, ActorUnavailableError, RayActorError)

HANDLE_RETRIES = Counter(
    "kino_cluster_handle_retries_total",
    "Calls from the gateway sent again because the replica serving them died, by backend.",
    ["backend"],
)

_SPEC_BY_BACKEND = {
    TEXT_ENCODER: catalog.TEXT_ENCODER,
    DENOISER: catalog.VIDEO_DENOISER,
    AUDIO: catalog.AUDIO_GENERATOR,
    FEED_RANKER: catalog.FEED_RANKER,
}


class ServeHandleClients:
    """ServiceClients through DeploymentHandles to the applications of the same Serve instance."""

    def __init__(
        self,
        unary_timeout_seconds: float = UNARY_TIMEOUT_SECONDS,
        applications: dict[str, str] | None = None,
    ) -> None:
        """`applications` maps a backend (services.gateway.clients names) to a Serve application
        other than the one named after its service."""
        self.unary_timeout_seconds = unary_timeout_seconds
        self.applications = {backend: spec.name for backend, spec in _SPEC_BY_BACKEND.items()}
        self.applications.update(applications or {})
        self._handles: dict[str, DeploymentHandle] = {}

    def _handle(self, backend: str) -> DeploymentHandle:
        """Looked up on first use: the other applications may be deployed after the gateway."""
        if backend not in self._handles:
            spec = _SPEC_BY_BACKEND[backend]
            try:
                self._handles[backend] = serve.get_deployment_handle(
                    spec.name, app_name=self.applications[backend]
                )
            except Exception as error:  # Serve raises a bare ValueError/KeyError for a missing app
                raise _not_deployed(backend, error) from error
        return self._handles[backend]

    async def _unary(self, backend: str, method: str, request):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            response = getattr(self._handle(backend), method).remote(request)
            try:
                return await asyncio.wait_for(_result(response, backend), self.unary_timeout_seconds)
            except TimeoutError:
                response.cancel()
                raise deadline_exceeded(
                    "DEADLINE_PASSED",
                    f"the {backend} service did not answer within {self.unary_timeout_seconds:g} s",
                    backend=backend,
                    timeout_seconds=self.unary_timeout_seconds,
                ) from None
            except _REPLICA_LOST as error:
                _replica_lost(backend, attempt, error)
        raise AssertionError("unreachable")

    async def encode(self, request: text_encoder_pb2.EncodeRequest) -> text_encoder_pb2.EncodeResponse:
        return await self._unary(TEXT_ENCODER, "Encode", request)

    async def denoise(
        self, request: denoiser_pb2.DenoiseRequest
    ) -> AsyncIterator[denoiser_pb2.DenoiseResponse]:
        """The Denoise stream; closing the iterator early cancels the call, which stops the compute."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            stream = self._handle(DENOISER).options(stream=True).Denoise.remote(request)
            try:
                async for response in stream:
                    yield response
                return
            except _REPLICA_LOST as error:
                _replica_lost(DENOISER, attempt, error)
            except Exception as error:
                raise _kino_error(DENOISER, error) from error
            finally:
                stream.cancel()

    async def denoiser_model_info(self) -> denoiser_pb2.ModelInfo:
        return await self._unary(DENOISER, "GetModelInfo", denoiser_pb2.GetModelInfoRequest())

    async def generate_audio(self, request: audio_pb2.GenerateRequest) -> audio_pb2.GenerateResponse:
        return await self._unary(AUDIO, "Generate", request)

    async def upsert_items(self, request: ranker_pb2.UpsertItemsRequest) -> ranker_pb2.UpsertItemsResponse:
        return await self._unary(FEED_RANKER, "UpsertItems", request)

    async def remove_items(self, request: ranker_pb2.RemoveItemsRequest) -> ranker_pb2.RemoveItemsResponse:
        return await self._unary(FEED_RANKER, "RemoveItems", request)

    async def close(self) -> None:
        self._handles.clear()


async def _result(response, backend: str):
    try:
        return await response
    except _REPLICA_LOST:
        raise
    except Exception as error:
        raise _kino_error(backend, error) from error


def _kino_error(backend: str, error: Exception) -> KinoError:
    cause = getattr(error, "cause", None)
    for candidate in (error, cause):
        if isinstance(candidate, RemoteKinoError):
            return candidate.unwrap()
        if isinstance(candidate, KinoError):
            return candidate
    if isinstance(error, BackPressureError):
        return resource_exhausted(
            "QUEUE_FULL",
            f"the {backend} service is at capacity; retry in {BACKPRESSURE_RETRY_SECONDS:g} s",
            retry_after_seconds=BACKPRESSURE_RETRY_SECONDS,
            backend=backend,
        )
    if isinstance(error, DeploymentUnavailableError):
        return _not_deployed(backend, error)
    return unavailable(
        "BACKEND_UNAVAILABLE",
        f"the {backend} service failed: {type(error).__name__}",
        backend=backend,
        detail=str(error)[:500],
    )


def _not_deployed(backend: str, error: Exception) -> KinoError:
    return unavailable(
        "BACKEND_UNAVAILABLE",
        f"the {backend} service is not deployed in this Serve instance",
        backend=backend,
        detail=str(error)[:500],
    )


def _replica_lost(backend: str, attempt: int, error: Exception) -> None:
    """Counts the loss, or gives up after MAX_ATTEMPTS with BACKEND_UNAVAILABLE."""
    if attempt >= MAX_ATTEMPTS:
        raise unavailable(
            "BACKEND_UNAVAILABLE",
            f"the {backend} service lost its replica {attempt} times in a row",
            backend=backend,
            attempts=attempt,
        ) from error
    HANDLE_RETRIES.labels(backend).inc()
    log.warning(
        "%s replica lost (%s); sending the call again (attempt %d)",
        backend,
        type(error).__name__,
        attempt + 1,
    )
