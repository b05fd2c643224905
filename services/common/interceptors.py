"""The server interceptor every Kino service runs behind.

For each call it assigns a request id (echoed in initial metadata and on every log line), records
the RPC metrics, enforces the request size limit, refuses bytes that are not the method's message
(grpc.aio would answer those UNKNOWN with no reason), and turns errors into statuses: a KinoError becomes
its code with ErrorInfo; anything else is a defect, logged with its traceback and answered INTERNAL
with reason INTERNAL_ERROR and the request id. Servicers therefore contain no try/except.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from services.common import metrics
from services.common.errors import KinoError, internal, invalid_argument
from services.common.logs import REQUEST_ID_HEADER, new_request_id, request_id_var

log = logging.getLogger(__name__)


def check_request_size(request, limit: int) -> None:
    """The transport cap (twice the limit) stops huge messages in gRPC core with RESOURCE_EXHAUSTED;
    below it, an oversized request is the caller's mistake and gets INVALID_ARGUMENT."""
    size = request.ByteSize()
    if size > limit:
        raise invalid_argument(
            "MESSAGE_TOO_LARGE", f"request is {size} bytes; the limit is {limit}", size=size, max=limit
        )


class UndecodableRequest:
    """Stands in for a request whose bytes the method's message could not be parsed from, so that the
    call gets a reasoned INVALID_ARGUMENT from inside the interceptor instead of grpc.aio's bare UNKNOWN."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    def ByteSize(self) -> int:  # the size check runs first, on whatever arrived
        return 0


def tolerant_deserializer(deserializer: Callable[[bytes], object] | None) -> Callable[[bytes], object] | None:
    """The method's deserializer, returning an UndecodableRequest where it raises."""
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as error:  # protobuf's DecodeError; a string field that is not UTF-8
            return UndecodableRequest(f"{type(error).__name__}: {error}"[:200])

    return parse


def check_decoded(request) -> None:
    if isinstance(request, UndecodableRequest):
        raise invalid_argument(
            "MALFORMED_REQUEST",
            f"the request is not a valid message of this method ({request.detail})",
            detail=request.detail,
        )


def as_kino_error(exc: BaseException, method: str, request_id: str) -> KinoError:
    """The error a failed call answers with, logged: a KinoError as it is, anything else as a defect
    (traceback in the log, INTERNAL/INTERNAL_ERROR with the request id to the caller)."""
    if isinstance(exc, KinoError):
        log.info("%s -> %s %s: %s", method, exc.code.name, exc.reason, exc.message)
        return exc
    log.error("%s failed with an unexpected error", method, exc_info=exc)
    return internal(
        "INTERNAL_ERROR",
        f"internal error ({type(exc).__name__}); request id {request_id}",
        request_id=request_id,
    )


class KinoServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, max_request_bytes: int) -> None:
        self._max_request_bytes = max_request_bytes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        method = details.method
        caller_id = dict(details.invocation_metadata or ()).get(REQUEST_ID_HEADER)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, caller_id, handler.unary_unary),
                request_deserializer=tolerant_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, caller_id, handler.unary_stream),
                request_deserializer=tolerant_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler  # Kino has no client-streaming RPCs.

    def _wrap_unary(self, method: str, caller_id: str | None, behavior):
        async def run(request, context: grpc.aio.ServicerContext):
            async with _Call(self, method, caller_id, request, context) as call:
                call.check_request()
                return await behavior(request, context)

        return run

    def _wrap_stream(self, method: str, caller_id: str | None, behavior):
        async def run(request, context: grpc.aio.ServicerContext) -> AsyncIterator:
            async with _Call(self, method, caller_id, request, context) as call:
                call.check_request()
                async for response in behavior(request, context):
                    yield response

        return run


class _Call:
    """One RPC's bookkeeping: request id, size check, metrics, error mapping."""

    def __init__(self, owner: KinoServerInterceptor, method, caller_id, request, context) -> None:
        self.owner, self.method, self.request, self.context = owner, method, request, context
        self.request_id = caller_id or new_request_id()

    async def __aenter__(self):
        # grpc.aio runs every call in its own task, so the id needs no reset afterwards (a reset from a
        # cancelled stream's finalizer would run in another context and fail).
        request_id_var.set(self.request_id)
        self.start = time.perf_counter()
        metrics.RPC_IN_FLIGHT.labels(self.method).inc()
        await self.context.send_initial_metadata(((REQUEST_ID_HEADER, self.request_id),))
        return self

    def check_request(self) -> None:
        check_decoded(self.request)
        check_request_size(self.request, self.owner._max_request_bytes)

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is None:
                self._record(self.context.code() or grpc.StatusCode.OK)
                return False
            if isinstance(exc, asyncio.CancelledError):
                self._record(grpc.StatusCode.CANCELLED)
                return False
            if isinstance(exc, grpc.aio.AbortError):
                self._record(self.context.code() or grpc.StatusCode.UNKNOWN)
                return False
            error = as_kino_error(exc, self.method, self.request_id)
            self._record(error.code)
            await self.context.abort_with_status(error.to_grpc_status())
        finally:
            metrics.RPC_IN_FLIGHT.labels(self.method).dec()

    def _record(self, code: grpc.StatusCode) -> None:
        metrics.RPC_REQUESTS.labels(self.method, code.name).inc()
        metrics.RPC_LATENCY.labels(self.method).observe(time.perf_counter() - self.start)
