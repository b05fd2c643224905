"""Logging with the current request id on every line.

The interceptor puts each call's id (the caller's x-request-id, or a new one) into a context variable;
a filter copies it onto every record logged while the call runs, so one grep finds one call's story.
"""

from __future__ import annotations

import contextvars
import logging
import uuid

REQUEST_ID_HEADER = "x-request-id"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("kino_request_id", default="-")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: one stderr handler on the root logger with request ids."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if getattr(handler, "_kino", False):
            return
    handler = logging.StreamHandler()
    handler._kino = True  # type: ignore[attr-defined]
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
