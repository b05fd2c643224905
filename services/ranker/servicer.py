"""The grpc.aio adapter of the FeedRanker: it only delegates to `RankerCore`.

Errors need no handling here: the server's interceptor maps a KinoError to its status code.
"""

from __future__ import annotations

import grpc

from kino.v1 import ranker_pb2, ranker_pb2_grpc
from services.common.server import ServiceRegistration
from services.common.settings import Settings
from services.ranker.core import RankerCore


class FeedRankerServicer(ranker_pb2_grpc.FeedRankerServicer):
    def __init__(self, core: RankerCore) -> None:
        self.core = core

    async def Rank(
        self, request: ranker_pb2.RankRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.RankResponse:
        return await self.core.rank(request)

    async def Ingest(
        self, request: ranker_pb2.IngestRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.IngestResponse:
        return await self.core.ingest(request)

    async def UpsertItems(
        self, request: ranker_pb2.UpsertItemsRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.UpsertItemsResponse:
        return await self.core.upsert_items(request)

    async def RemoveItems(
        self, request: ranker_pb2.RemoveItemsRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.RemoveItemsResponse:
        return await self.core.remove_items(request)


def registration(settings: Settings, core: RankerCore | None = None) -> ServiceRegistration:
    """The FeedRanker for KinoServer; builds the core (store, model weights) unless one is passed in."""
    core = core or RankerCore.from_settings(settings.ranker)
    return ServiceRegistration(
        descriptor=ranker_pb2.DESCRIPTOR.services_by_name["FeedRanker"],
        add_to_server=ranker_pb2_grpc.add_FeedRankerServicer_to_server,
        servicer=FeedRankerServicer(core),
        warmup=core.warmup,
        close=core.close,
    )
