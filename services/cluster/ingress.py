"""What the gRPC server interceptor does in a single process, done inside a Serve replica.

Under Serve no grpc.aio interceptor runs in the replica, so each deployment method goes through
`RpcAdapter`: request id, request size limit, RPC metrics (the same names and labels as the
interceptor's) and the mapping of errors to statuses.

How a KinoError reaches the caller depends on who called:

* Serve's gRPC proxy passes a `grpc_context`. The proxy copies code, details and trailing metadata
  from that context onto the real call only when a message comes back with it: a raised exception
  loses the trailing metadata, and with it the google.rpc.Status details (ErrorInfo, RetryInfo).
  So the adapter sets code, message and `grpc-status-details-bin` on the context and returns an
  empty response (unary) or yields one empty message (streaming). The client gets the same status,
  ErrorInfo and RetryInfo a single-process server sends; Kino's client routing hides the marker
  message of a stream (services/cluster/routing.py).
* A DeploymentHandle caller (the gateway) gets `RemoteKinoError`, which carries the status as bytes:
  KinoError itself does not survive Ray's pickling (its constructor takes more than the message).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from services.cluster.catalog import ServiceSpec
from services.common import metrics
from services.common.errors import KinoError
from services.common.interceptors import as_kino_error, check_request_size
from services.common.logs import REQUEST_ID_HEADER, new_request_id, request_id_var

log = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class RemoteKinoError(Exception):
    """A KinoError on its way out of a replica through a DeploymentHandle, as google.rpc.Status bytes."""

    def __init__(self, status: bytes) -> None:
        super().__init__(status)
        self.status = status

    @classmethod
    def wrap(cls, error: KinoError) -> RemoteKinoError:
        return cls(error.to_status().SerializeToString())

    def unwrap(self) -> KinoError:
        from google.rpc import status_pb2

        return KinoError.from_status(status_pb2.Status.FromString(self.status))

    def __str__(self) -> str:
        return repr(self.unwrap())


class CallContext:
    """The part of grpc.aio.ServicerContext a Kino servicer may read, for calls that come through Serve."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "ray-serve"

    def time_remaining(self) -> float | None:
        return None

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False


class RpcAdapter:
    """Runs one service's RPCs with Kino's request id, size limit, metrics and error mapping."""

    def __init__(self, spec: ServiceSpec, max_request_bytes: int) -> None:
        self.spec = spec
        self.max_request_bytes = max_request_bytes

    async def unary(
        self, name: str, behavior: Callable[[object, CallContext], Awaitable], request, grpc_context
    ):
        call = _Call(self, name, request, grpc_context)
        try:
            call.check_size()
            response = await behavior(request, call.context)
        except asyncio.CancelledError:
            call.record(grpc.StatusCode.CANCELLED)
            raise
        except Exception as exc:  # every failure becomes a status, like the interceptor's
            error = call.fail(exc)
            if grpc_context is None:
                raise RemoteKinoError.wrap(error) from None
            call.set_error_on(grpc_context, error)
            return self.spec.response_class(name)()
        finally:
            call.end()
        call.record(grpc.StatusCode.OK)
        call.set_request_id_on(grpc_context)
        return response

    async def stream(
        self, name: str, behavior: Callable[[object, CallContext], AsyncIterator], request, grpc_context
    ) -> AsyncIterator:
        call = _Call(self, name, request, grpc_context)
        try:
            call.check_size()
            call.set_request_id_on(grpc_context)
            async for response in behavior(request, call.context):
                yield response
        except (asyncio.CancelledError, GeneratorExit):
            call.record(grpc.StatusCode.CANCELLED)
            raise
        except Exception as exc:
            error = call.fail(exc)
            if grpc_context is None:
                raise RemoteKinoError.wrap(error) from None
            call.set_error_on(grpc_context, error)
            yield self.spec.response_class(name)()
        else:
            call.record(grpc.StatusCode.OK)
        finally:
            call.end()


class _Call:
    def __init__(self, adapter: RpcAdapter, name: str, request, grpc_context) -> None:
        self.adapter, self.request = adapter, request
        self.method = adapter.spec.full_method(name)
        metadata = list(grpc_context.invocation_metadata()) if grpc_context is not None else []
        self.request_id = dict(metadata).get(REQUEST_ID_HEADER) or new_request_id()
        self.context = CallContext(metadata)
        self.start = time.perf_counter()
        self.recorded = False
        # Each call runs in its own task (its own context), so the id needs no reset afterwards.
        request_id_var.set(self.request_id)
        metrics.RPC_IN_FLIGHT.labels(self.method).inc()

    def check_size(self) -> None:
        check_request_size(self.request, self.adapter.max_request_bytes)

    def fail(self, exc: Exception) -> KinoError:
        error = as_kino_error(exc, self.method, self.request_id)
        self.record(error.code)
        return error

    def record(self, code: grpc.StatusCode) -> None:
        if self.recorded:
            return
        self.recorded = True
        metrics.RPC_REQUESTS.labels(self.method, code.name).inc()
        metrics.RPC_LATENCY.labels(self.method).observe(time.perf_counter() - self.start)

    def set_request_id_on(self, grpc_context) -> None:
        if grpc_context is not None:
            grpc_context.set_trailing_metadata([(REQUEST_ID_HEADER, self.request_id)])

    def set_error_on(self, grpc_context, error: KinoError) -> None:
        grpc_context.set_code(error.code)
        grpc_context.set_details(error.message)
        grpc_context.set_trailing_metadata(
            [
                (STATUS_DETAILS_KEY, error.to_status().SerializeToString()),
                (REQUEST_ID_HEADER, self.request_id),
            ]
        )

    def end(self) -> None:
        metrics.RPC_IN_FLIGHT.labels(self.method).dec()
