"""Reaching Kino's services through Serve's gRPC proxy with ordinary stubs.

Serve's proxy routes a call to an application by the `application` request metadata. Kino names each
application after its proto service (`/kino.v1.TextEncoder/Encode` goes to application `TextEncoder`),
so a client interceptor can fill the metadata from the method name alone. The metadata is ignored by a
single-process Kino, which lets one client reach either kind of endpoint.

A streaming RPC that fails under Serve ends with one empty message that carries the error's status
and ErrorInfo (the proxy forwards trailing metadata only together with a message; see
services/cluster/ingress.py). The interceptor holds back empty messages and drops such a marker when
the stream then ends with an error, so Kino clients see exactly what a single-process server sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc

APPLICATION_METADATA_KEY = "application"


def application_for(method: str | bytes) -> str:
    """`/kino.v1.TextEncoder/Encode` -> `TextEncoder`: the Serve application that serves the method."""
    if isinstance(method, bytes):
        method = method.decode()
    service = method.lstrip("/").split("/", 1)[0]
    return service.rsplit(".", 1)[-1]


def _with_application(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    if APPLICATION_METADATA_KEY not in metadata:
        metadata.add(APPLICATION_METADATA_KEY, application_for(details.method))
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


# grpc.aio files an interceptor under the first call type it implements, so one class per type.
class UnaryRoutingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the `application` metadata Serve's proxy routes on."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_with_application(client_call_details), request)


class StreamRoutingInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """Adds the `application` metadata and hides the error marker of a failed stream."""

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        call = await continuation(_with_application(client_call_details), request)
        return _without_error_marker(call)


async def _without_error_marker(call) -> AsyncIterator:
    held = []
    async for message in call:
        if message.ByteSize() == 0:
            held.append(message)
            continue
        for empty in held:
            yield empty
        held.clear()
        yield message
    # Inside an interceptor the stream ends quietly even when the call failed (grpc raises the
    # error to the caller afterwards): a failed call's held message was the marker and is dropped.
    if await call.code() == grpc.StatusCode.OK:
        for empty in held:
            yield empty


def interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    return [UnaryRoutingInterceptor(), StreamRoutingInterceptor()]


def insecure_channel(target: str, options: Sequence[tuple[str, object]] | None = None) -> grpc.aio.Channel:
    """A grpc.aio channel to a Kino endpoint, Serve proxy or single process alike."""
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors())
