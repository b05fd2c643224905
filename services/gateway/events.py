"""In-process fan-out of job changes to Watch streams.

Every change the gateway makes to a job (state, stage, progress, preview) is published here after it is
written; each Watch holds a subscription. A slow watcher never slows a job down and never grows without
bound: when updates pile up, consecutive updates within one state collapse into the newest, so a
watcher may skip intermediate progress but always sees every state change, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Iterator

from kino.v1 import generation_pb2


class Subscription:
    def __init__(self) -> None:
        self._pending: deque[generation_pb2.Job] = deque()
        self._ready = asyncio.Event()

    def push(self, job: generation_pb2.Job) -> None:
        if self._pending and self._pending[-1].state == job.state:
            self._pending[-1] = job
        else:
            self._pending.append(job)
        self._ready.set()

    async def next(self, timeout: float) -> generation_pb2.Job | None:
        """The next update, or None when none came within timeout seconds."""
        if not self._pending:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        return self._pending.popleft() if self._pending else None


class JobEvents:
    def __init__(self) -> None:
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)

    @contextlib.contextmanager
    def subscribe(self, name: str) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscriptions[name].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscriptions.get(name)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscriptions[name]

    def publish(self, job: generation_pb2.Job) -> None:
        for subscription in self._subscriptions.get(job.name, ()):
            subscription.push(job)
