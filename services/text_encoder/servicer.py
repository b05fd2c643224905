"""The grpc.aio adapter of the TextEncoder: it only delegates to `TextEncoderCore`.

Errors need no handling here: the server's interceptor maps a KinoError to its status code.
"""

from __future__ import annotations

import grpc

from kino.v1 import text_encoder_pb2, text_encoder_pb2_grpc
from services.common.server import ServiceRegistration
from services.common.settings import Settings
from services.text_encoder.core import TextEncoderCore


class TextEncoderServicer(text_encoder_pb2_grpc.TextEncoderServicer):
    def __init__(self, core: TextEncoderCore) -> None:
        self.core = core

    async def Encode(
        self, request: text_encoder_pb2.EncodeRequest, context: grpc.aio.ServicerContext
    ) -> text_encoder_pb2.EncodeResponse:
        return await self.core.encode(request)


def registration(settings: Settings, core: TextEncoderCore | None = None) -> ServiceRegistration:
    """The TextEncoder for KinoServer; loads the encoder unless a ready `core` is passed in."""
    core = core or TextEncoderCore.from_settings(settings.text_encoder)
    return ServiceRegistration(
        descriptor=text_encoder_pb2.DESCRIPTOR.services_by_name["TextEncoder"],
        add_to_server=text_encoder_pb2_grpc.add_TextEncoderServicer_to_server,
        servicer=TextEncoderServicer(core),
        warmup=core.warmup,
        close=core.close,
    )
