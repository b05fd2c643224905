"""Dynamic batching: concurrent callers' texts share one forward pass of the encoder.

A forward pass over 32 texts costs little more than one over a few on a CPU, so the batcher holds
the first text of a batch for at most `max_wait_ms` to let others join, and starts at once when
`max_batch` texts are waiting. While a batch runs, new texts queue up and form the next one, so
under load batches fill without any waiting. One batch runs at a time, in a worker thread, which
keeps the event loop free to accept calls and matches a model that already uses every core.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.text_encoder import metrics
from services.text_encoder.backends import EncodedText

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """submit() was called after close()."""


@dataclass
class _Pending:
    text: str
    future: asyncio.Future[EncodedText]
    enqueued_at: float  # time.monotonic() at submit


class DynamicBatcher:
    """Groups texts from concurrent `submit` calls into calls of `encode_batch`.

    `encode_batch` is a blocking function (normally `EncoderBackend.encode`) that returns one
    result per text, in order. Its exceptions reach exactly the callers whose texts were in
    that batch; a caller cancelled while waiting has its text dropped from the next batch.
    """

    def __init__(
        self, encode_batch: Callable[[list[str]], list[EncodedText]], *, max_batch: int, max_wait_ms: float
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self._encode_batch = encode_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._pending: collections.deque[_Pending] = collections.deque()
        self._arrived = asyncio.Event()
        self._in_flight: list[_Pending] = []
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Texts waiting for a batch, cancelled callers not yet dropped included."""
        return len(self._pending)

    async def submit(self, text: str) -> EncodedText:
        """Encodes `text` together with whatever else is submitted around the same time."""
        if self._closing:
            raise BatcherClosed("the text encoder is shutting down")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="text-encoder-batcher")
        future: asyncio.Future[EncodedText] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(text, future, time.monotonic()))
        self._arrived.set()
        return await future

    async def close(self) -> None:
        """Stops taking texts, finishes every text already submitted, then ends the background task."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        try:
            while True:
                await self._wait_for_batch()
                batch = self._take_batch()
                if batch:
                    self._in_flight = batch
                    await self._execute(batch)
                    self._in_flight = []
                elif self._closing and not self._pending:
                    return
        except asyncio.CancelledError:
            # The loop itself was cancelled (event loop teardown): nobody will answer these callers.
            for pending in [*self._in_flight, *self._pending]:
                pending.future.cancel()
            self._pending.clear()
            raise

    async def _wait_for_batch(self) -> None:
        """Returns when a batch is full, its first text has waited max_wait, or the batcher closes."""
        while not self._pending and not self._closing:
            self._arrived.clear()
            await self._arrived.wait()
        if not self._pending:
            return
        deadline = self._pending[0].enqueued_at + self.max_wait
        while len(self._pending) < self.max_batch and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Pending]:
        """Up to max_batch texts from the front of the queue, skipping callers that gave up."""
        batch: list[_Pending] = []
        while self._pending and len(batch) < self.max_batch:
            pending = self._pending.popleft()
            if not pending.future.done():
                batch.append(pending)
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        for pending in batch:
            metrics.QUEUE_WAIT.observe(started - pending.enqueued_at)
        metrics.BATCH_SIZE.observe(len(batch))
        try:
            results = await asyncio.to_thread(self._encode_batch, [p.text for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"encoder returned {len(results)} results for {len(batch)} texts")
        except Exception as error:  # handed to the callers of this batch, who re-raise it
            log.debug("batch of %d failed: %r", len(batch), error)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        finally:
            metrics.BATCH_DURATION.observe(time.monotonic() - started)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
