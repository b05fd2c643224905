"""List page tokens: opaque to clients, a keyset cursor inside.

A token is base64url JSON holding the last job's (create_time, id) and a fingerprint of the filters it
was issued for. Keyset paging stays correct while jobs are inserted (no skipped or repeated rows, as
OFFSET would give), and a token replayed with different filters is refused instead of silently
paging through the wrong list (AIP-158).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime, timedelta

from kino.v1 import generation_pb2
from services.common.errors import invalid_argument
from services.gateway.store import PageCursor

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"page_size must be >= 0, got {requested}",
            field="page_size",
            value=requested,
            min=0,
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(last: generation_pb2.Job, request: generation_pb2.ListRequest) -> str:
    payload = {
        "t": last.create_time.ToMicroseconds(),
        "id": last.name.removeprefix("jobs/"),
        "f": _filters_fingerprint(request),
    }
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_page_token(request: generation_pb2.ListRequest) -> PageCursor | None:
    token = request.page_token
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        create_time = _EPOCH + timedelta(microseconds=int(payload["t"]))
        job_id, filters = str(payload["id"]), str(payload["f"])
    except (ValueError, KeyError, TypeError, OverflowError, OSError, UnicodeError, binascii.Error) as error:
        raise _malformed(token, "not a page token from this service") from error
    if filters != _filters_fingerprint(request):
        raise _malformed(token, "issued for different filters")
    return PageCursor(create_time, job_id)


def _filters_fingerprint(request: generation_pb2.ListRequest) -> str:
    return hashlib.sha256(f"{request.requester}\x00{request.state}".encode()).hexdigest()[:16]


def _malformed(token: str, why: str):
    return invalid_argument(
        "MALFORMED_NAME", f"page_token is invalid: {why}", field="page_token", value=token[:200], detail=why
    )
