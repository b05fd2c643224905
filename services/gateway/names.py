"""Resource names ("jobs/{id}", "videos/{id}", "cameos/{id}") and their parsing.

A malformed name is the caller's mistake (INVALID_ARGUMENT/MALFORMED_NAME); a well-formed name that
names nothing is NOT_FOUND, decided by the caller of `parse_name`, which knows the collection.
"""

from __future__ import annotations

import re

from services.common.errors import invalid_argument
from services.common.text import MAX_ECHOED_CHARS

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def parse_name(name: str, collection: str, field: str) -> str:
    """The id in "{collection}/{id}"; FIELD_REQUIRED when empty, MALFORMED_NAME when it does not fit."""
    if not name:
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    prefix = f"{collection}/"
    resource_id = name[len(prefix) :] if name.startswith(prefix) else ""
    if not _ID.fullmatch(resource_id):
        shown = name[:MAX_ECHOED_CHARS]
        raise invalid_argument(
            "MALFORMED_NAME",
            f"{field} must look like {collection}/ID, got {shown!r}",
            field=field,
            value=shown,
        )
    return resource_id


def job_name(job_id: str) -> str:
    return f"jobs/{job_id}"


def video_name(video_id: str) -> str:
    return f"videos/{video_id}"


def cameo_name(cameo_id: str) -> str:
    return f"cameos/{cameo_id}"
