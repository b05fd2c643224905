"""The grpc.aio server every Kino service runs on, one or many services per process.

Start-up: bind, warm every service up (load models), and only then report SERVING on grpc.health.v1.
Shutdown (SIGTERM/SIGINT or stop()): report NOT_SERVING so load balancers stop sending, stop accepting
calls, give in-flight calls `grace_seconds` to finish, then close the services. Reflection is on so
grpcurl and friends can explore the API without the protos.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.interceptors import KinoServerInterceptor
from services.common.metrics import serve_metrics
from services.common.settings import MIB, ServerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceRegistration:
    """One servicer to put on the server, with its lifecycle hooks."""

    descriptor: ServiceDescriptor
    # The generated add_<Service>Servicer_to_server function.
    add_to_server: Callable[[object, grpc.aio.Server], None]
    servicer: object
    # Runs before the service reports SERVING (load weights, run one dummy batch).
    warmup: Callable[[], Awaitable[None]] | None = None
    # Runs after the server stopped (flush, close pools, stop background tasks).
    close: Callable[[], Awaitable[None]] | None = None


def channel_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """Transport limits: twice the per-request limit, so the interceptor can answer INVALID_ARGUMENT."""
    transport_cap = 2 * settings.max_message_mb * MIB
    return [
        ("grpc.max_receive_message_length", transport_cap),
        ("grpc.max_send_message_length", transport_cap),
        ("grpc.so_reuseport", 0),
    ]


class KinoServer:
    """Binds its port on construction, so services added later (the gateway) can be told the address."""

    def __init__(self, settings: ServerSettings, registrations: list[ServiceRegistration] = ()) -> None:
        self.settings = settings
        self.registrations = list(registrations)
        self.metrics_port: int | None = None
        self._health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            interceptors=[KinoServerInterceptor(settings.max_message_mb * MIB)],
            options=channel_options(settings),
        )
        self.port = self._server.add_insecure_port(f"{settings.host}:{settings.port}")
        if self.port == 0:
            raise OSError(f"could not bind {settings.host}:{settings.port} (in use?)")
        self._stopped = asyncio.Event()

    def add(self, registration: ServiceRegistration) -> None:
        self.registrations.append(registration)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    @property
    def service_names(self) -> list[str]:
        return [r.descriptor.full_name for r in self.registrations]

    async def start(self) -> int:
        """Binds, warms up and starts serving; returns the bound port."""
        for registration in self.registrations:
            registration.add_to_server(registration.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if self.settings.reflection:
            reflection.enable_server_reflection(
                [
                    *self.service_names,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ],
                self._server,
            )
        for name in ["", *self.service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.metrics_port >= 0:
            self.metrics_port = serve_metrics(self.settings.host, self.settings.metrics_port)
        await self._server.start()
        for registration in self.registrations:
            if registration.warmup is not None:
                await registration.warmup()
        for name in ["", *self.service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving %s on %s (metrics on :%s)",
            ", ".join(self.service_names),
            self.address,
            self.metrics_port,
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Drains: NOT_SERVING first, then in-flight calls get `grace` seconds, then services close."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace_seconds if grace is None else grace
        await self._health.enter_graceful_shutdown()
        log.info("stopping: draining in-flight calls for up to %.1f s", grace)
        await self._server.stop(grace)
        for registration in reversed(self.registrations):
            if registration.close is not None:
                await registration.close()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        await self._server.wait_for_termination()

    async def serve_until_signal(self) -> None:
        """Runs until SIGTERM or SIGINT, then stops gracefully."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        await stop_requested.wait()
        await self.stop()
