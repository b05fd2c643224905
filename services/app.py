"""Kino in one process: every built service on one grpc.aio server (`kino up --local`).

The gateway reaches the other services through gRPC on this same server's address, exactly as it
would reach them across a cluster, so the single-process mode exercises the real client path.
Services whose backends are not built yet are not registered; the gateway's client then reports
them as BACKEND_UNAVAILABLE rather than pretending.
"""

from __future__ import annotations

from services.common.server import KinoServer
from services.common.settings import Settings


class LocalKino:
    def __init__(self, settings: Settings) -> None:
        from services.gateway.servicer import registration as gateway_registration
        from services.text_encoder.servicer import registration as text_encoder_registration

        self.settings = settings
        self.server = KinoServer(settings.server)
        target = settings.gateway.services_target or f"127.0.0.1:{self.server.port}"
        gateway_settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update={"services_target": target})}
        )
        self.server.add(text_encoder_registration(settings))
        self.server.add(gateway_registration(gateway_settings))

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def metrics_port(self) -> int | None:
        return self.server.metrics_port

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.server.start()

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)

    async def serve_until_signal(self) -> None:
        await self.server.serve_until_signal()
