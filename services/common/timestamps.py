"""google.protobuf.Timestamp fields from the wire, checked one way in every service.

proto3 lets a client send any seconds and nanos; a Timestamp outside years 1 to 9999, or with nanos
outside [0, 1e9), is not a time, and converting it raises deep in protobuf or datetime. Each is
refused here as INVALID_ARGUMENT/OUT_OF_RANGE naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from services.common.errors import invalid_argument

# What google.protobuf.Timestamp can hold (0001-01-01 to 9999-12-31).
MIN_TIMESTAMP_SECONDS, MAX_TIMESTAMP_SECONDS = -62_135_596_800, 253_402_300_799


def timestamp_seconds(timestamp: timestamp_pb2.Timestamp, field: str) -> float:
    """The Timestamp as unix seconds."""
    seconds, nanos = timestamp.seconds, timestamp.nanos
    if not (MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS and 0 <= nanos < 1_000_000_000):
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{field} is not a valid timestamp (seconds {seconds}, nanos {nanos}): it must lie in years "
            "1 to 9999 with nanos in [0, 999999999]",
            field=field,
            seconds=seconds,
            nanos=nanos,
        )
    return seconds + nanos / 1e9


def timestamp_datetime(timestamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """The Timestamp as an aware UTC datetime."""
    timestamp_seconds(timestamp, field)
    return timestamp.ToDatetime(tzinfo=UTC)
