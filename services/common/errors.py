"""One error type for every Kino service, and its mapping to gRPC status with ErrorInfo.

Core code raises `KinoError`; the error interceptor (services/common/interceptors.py) turns it into a
rich status (google.rpc.Status with ErrorInfo and, for back-pressure, RetryInfo). Reasons are the closed
list `kino.v1.ErrorReason` from common.proto, so clients switch on a reason, never on message text, and
every dynamic value in a message is also in the ErrorInfo metadata (AIP-193).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from kino.v1 import common_pb2

DOMAIN = "kino.v1"
_KNOWN_REASONS = frozenset(common_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}


class KinoError(Exception):
    """A failure with a gRPC code, a reason from kino.v1.ErrorReason and string metadata."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        if reason not in _KNOWN_REASONS:
            raise ValueError(f"unknown error reason {reason!r}: add it to ErrorReason in common.proto")
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self.retry_after_seconds = retry_after_seconds

    def __repr__(self) -> str:
        return f"KinoError({self.code.name}, {self.reason}, {self.message!r})"

    def to_status(self) -> status_pb2.Status:
        """The google.rpc.Status form: what a failed Job carries and what goes on the wire."""
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        details = [_pack(info)]
        if self.retry_after_seconds is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_seconds * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)

    def to_grpc_status(self) -> grpc.Status:
        return rpc_status.to_status(self.to_status())

    @classmethod
    def from_status(cls, status: status_pb2.Status) -> KinoError:
        """Rebuilds the error from a google.rpc.Status (e.g. a stored Job.error or a client-side status)."""
        code = _CODE_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
        reason, metadata, retry = "INTERNAL_ERROR", {}, None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.reason in _KNOWN_REASONS:
                    reason = info.reason
                metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry_info = error_details_pb2.RetryInfo()
                detail.Unpack(retry_info)
                retry = retry_info.retry_delay.ToNanoseconds() / 1e9
        return cls(code, reason, status.message, metadata, retry)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> KinoError:
        """The KinoError a remote Kino service raised, or a BACKEND_UNAVAILABLE/INTERNAL_ERROR stand-in.

        UNIMPLEMENTED and UNAVAILABLE without Kino details mean the service is not deployed or not
        reachable: callers (the gateway pipeline) see that as BACKEND_UNAVAILABLE.
        """
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
        if status is not None:
            return cls.from_status(status)
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = (error.details() if hasattr(error, "details") else None) or str(error)
        if code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE):
            return unavailable("BACKEND_UNAVAILABLE", f"backend not available: {details}", detail=details)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return cls(code, "DEADLINE_PASSED", details)
        if code == grpc.StatusCode.CANCELLED:
            return cls(code, "JOB_CANCELLED", details)
        return cls(code, "INTERNAL_ERROR", details)


_CODE_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _factory(code: grpc.StatusCode):
    def make(reason: str, message: str, retry_after_seconds: float | None = None, **metadata) -> KinoError:
        return KinoError(code, reason, message, metadata, retry_after_seconds)

    make.__name__ = code.name.lower()
    make.__doc__ = f"A KinoError with code {code.name}; keyword arguments become ErrorInfo metadata."
    return make


invalid_argument = _factory(grpc.StatusCode.INVALID_ARGUMENT)
not_found = _factory(grpc.StatusCode.NOT_FOUND)
failed_precondition = _factory(grpc.StatusCode.FAILED_PRECONDITION)
permission_denied = _factory(grpc.StatusCode.PERMISSION_DENIED)
already_exists = _factory(grpc.StatusCode.ALREADY_EXISTS)
resource_exhausted = _factory(grpc.StatusCode.RESOURCE_EXHAUSTED)
deadline_exceeded = _factory(grpc.StatusCode.DEADLINE_EXCEEDED)
unavailable = _factory(grpc.StatusCode.UNAVAILABLE)
cancelled = _factory(grpc.StatusCode.CANCELLED)
unauthenticated = _factory(grpc.StatusCode.UNAUTHENTICATED)
internal = _factory(grpc.StatusCode.INTERNAL)


def out_of_range(field: str, value, low, high) -> KinoError:
    """The common INVALID_ARGUMENT/OUT_OF_RANGE error for a number outside [low, high]."""
    return invalid_argument(
        "OUT_OF_RANGE",
        f"{field} must be in [{low}, {high}], got {value}",
        field=field,
        value=value,
        min=low,
        max=high,
    )


def too_long(field: str, value: str, max_chars: int) -> KinoError:
    """The common INVALID_ARGUMENT/OUT_OF_RANGE error for text longer than `max_chars`."""
    return invalid_argument(
        "OUT_OF_RANGE",
        f"{field} is {len(value)} characters; the limit is {max_chars}",
        field=field,
        value=len(value),
        min=0,
        max=max_chars,
    )


def require_in_range(field: str, value, low, high) -> None:
    if not (low <= value <= high):
        raise out_of_range(field, value, low, high)


def require_known_enum(field: str, enum_type, value: int, *, allow_unspecified: bool = True) -> None:
    """Rejects enum numbers this server does not know (proto3 keeps unknown values as ints)."""
    known = set(enum_type.values())
    if value not in known or (value == 0 and not allow_unspecified):
        raise invalid_argument(
            "UNKNOWN_ENUM_VALUE", f"{field} has unknown value {value}", field=field, value=value
        )


def error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """(reason, metadata) of a Kino error seen by a client; ("", {}) when it carries none."""
    status = rpc_status.from_call(error)
    if status is None:
        return "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return "", {}
