"""Resource names ("jobs/{id}", "videos/{id}", "cameos/{id}") and their parsing.

A malformed name is the caller's mistake (INVALID_ARGUMENT/MALFORMED_NAME); a well-formed name that
names nothing is NOT_FOUND, decided by the caller of `parse_name`, which knows the collection.
"""

from __future__ import annotations

import re

from services.common.errors import invalid_argument

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# C0 controls and DEL. PostgreSQL text cannot hold NUL at all, and none of them belongs in a user name,
# an idempotency key or a display name.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
# Metadata carries the offending value; a megabyte of it helps nobody.
_MAX_ECHOED_CHARS = 200


def parse_name(name: str, collection: str, field: str) -> str:
    """The id in "{collection}/{id}"; FIELD_REQUIRED when empty, MALFORMED_NAME when it does not fit."""
    if not name:
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    prefix = f"{collection}/"
    resource_id = name[len(prefix) :] if name.startswith(prefix) else ""
    if not _ID.fullmatch(resource_id):
        shown = name[:_MAX_ECHOED_CHARS]
        raise invalid_argument(
            "MALFORMED_NAME",
            f"{field} must look like {collection}/ID, got {shown!r}",
            field=field,
            value=shown,
        )
    return resource_id


def check_no_control_characters(field: str, value: str) -> None:
    """MALFORMED_NAME when a single-line identifier (a user, a key, a display name) holds a control
    character: refused here, not left to fail in the store."""
    found = _CONTROL_CHARACTER.search(value)
    if found is not None:
        code_point = f"U+{ord(found.group()):04X}"
        raise invalid_argument(
            "MALFORMED_NAME",
            f"{field} contains the control character {code_point} at position {found.start()}",
            field=field,
            value=value[:_MAX_ECHOED_CHARS].encode("unicode_escape").decode("ascii"),
            detail=f"control character {code_point}",
        )


def job_name(job_id: str) -> str:
    return f"jobs/{job_id}"


def video_name(video_id: str) -> str:
    return f"videos/{video_id}"


def cameo_name(cameo_id: str) -> str:
    return f"cameos/{cameo_id}"
