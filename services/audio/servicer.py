"""The grpc.aio adapter of the AudioGenerator: it only delegates to `AudioGeneratorCore`.

Errors need no handling here: the server's interceptor maps a KinoError to its status code.
"""

from __future__ import annotations

import grpc

from kino.v1 import audio_pb2, audio_pb2_grpc
from services.audio.core import AudioGeneratorCore
from services.common.server import ServiceRegistration
from services.common.settings import Settings


class AudioGeneratorServicer(audio_pb2_grpc.AudioGeneratorServicer):
    def __init__(self, core: AudioGeneratorCore) -> None:
        self.core = core

    async def Generate(
        self, request: audio_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> audio_pb2.GenerateResponse:
        return await self.core.generate(request)


def registration(settings: Settings, core: AudioGeneratorCore | None = None) -> ServiceRegistration:
    """The AudioGenerator for KinoServer; builds the configured backend unless a ready `core` is passed in."""
    core = core or AudioGeneratorCore.from_settings(settings.audio)
    return ServiceRegistration(
        descriptor=audio_pb2.DESCRIPTOR.services_by_name["AudioGenerator"],
        add_to_server=audio_pb2_grpc.add_AudioGeneratorServicer_to_server,
        servicer=AudioGeneratorServicer(core),
        warmup=core.warmup,
        close=core.close,
    )
