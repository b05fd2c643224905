"""Kino in one process: every built service on one grpc.aio server (`kino up --local`).

The gateway reaches the other services through gRPC on this same server's address, exactly as it
would reach them across a cluster, so the single-process mode exercises the real client path.
A service that cannot start here (the VideoDenoiser without its weights file) is left out with a
warning naming what is missing; the gateway's client then reports it as BACKEND_UNAVAILABLE rather
than pretending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.common.server import KinoServer, ServiceRegistration
from services.common.settings import Settings

log = logging.getLogger(__name__)


class LocalKino:
    def __init__(self, settings: Settings) -> None:
        from services.audio.servicer import registration as audio_registration
        from services.denoiser.servicer import registration as denoiser_registration
        from services.gateway.servicer import registration as gateway_registration
        from services.ranker.servicer import registration as ranker_registration
        from services.text_encoder.servicer import registration as text_encoder_registration

        self.settings = settings
        self.server = KinoServer(settings.server)
        target = settings.gateway.services_target or f"127.0.0.1:{self.server.port}"
        gateway_settings = settings.model_copy(
            update={"gateway": settings.gateway.model_copy(update={"services_target": target})}
        )
        self.missing: dict[str, str] = {}
        self.server.add(text_encoder_registration(settings))
        self._add_if_available("VideoDenoiser", lambda: denoiser_registration(settings))
        self.server.add(audio_registration(settings))
        self.server.add(ranker_registration(settings))
        self.server.add(gateway_registration(gateway_settings))

    def _add_if_available(self, name: str, build: Callable[[], ServiceRegistration]) -> None:
        try:
            self.server.add(build())
        except FileNotFoundError as missing:
            self.missing[name] = str(missing)
            log.warning("%s is not started: %s", name, missing)

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def metrics_port(self) -> int | None:
        return self.server.metrics_port

    async def start(self) -> None:
        """Starts every service; if one fails to warm up, the others are stopped before re-raising."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await self.server.start()
        except BaseException:
            log.exception("Kino failed to start")
            await self.server.stop(0)
            raise

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)

    async def serve_until_signal(self) -> None:
        await self.server.serve_until_signal()
