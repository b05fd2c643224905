"""The engine's busy loop: schedule, execute, update, tell the callers. One task per engine.

    while requests are live:
        plan = scheduler.schedule()                      # policy, pure Python, on the event loop
        result = await to_thread(executor.run, plan)     # the model, off the event loop
        events = scheduler.update(plan, result)          # bookkeeping, on the event loop
        hand each event to its caller's stream
        for request in scheduler.take_decodes():         # pipelined decodes (SchedulerConfig)
            queue it for the decode thread, which works beside the next steps (interactive first)

The scheduler is only touched from the event loop, so it needs no lock; the executor runs in a worker
thread, so gRPC streams keep flowing while a step computes. The decode stage is a second worker
thread: a final decode costs as much as a few steps, and run inside a step it would hold up every
request in that step, interactive ones included. Due decodes wait in a queue ordered by priority,
then finishing order, so an interactive request's frames never wait behind batch requests' decodes
that are still queued (only the one in progress); batch decodes wait while interactive requests
are live (for a second at most), since a decode on the other core slows their steps; and batch steps
wait while an interactive request's frames are being made, for the same reason the other way round. Callers get an
async iterator of events; leaving it early (a cancelled RPC) cancels the request, which frees its
rows at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from services.common.errors import internal
from services.denoiser.engine import metrics
from services.denoiser.engine.plan import DenoiseEvent, EventKind, StepPlan, StepResult
from services.denoiser.engine.request import EngineRequest, Priority, RequestStatus, SamplerState, ShapeBucket
from services.denoiser.engine.scheduler import StepScheduler

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs the model for a plan; see services/denoiser/engine/executor.py for the real one."""

    def run(self, plan: StepPlan) -> StepResult: ...

    def profile(self, bucket: ShapeBucket, rows: int) -> float:
        """Seconds one step of `rows` rows of this bucket takes (measured on throwaway inputs)."""
        ...

    def profile_decode(self, bucket: ShapeBucket) -> float:
        """Seconds one decode of a request's frames takes."""
        ...

    def profile_restart(self, bucket: ShapeBucket) -> float:
        """Seconds one request's restart through the autoencoder takes (0 for a model without)."""
        ...

    def decode_final(self, sampler: SamplerState) -> Any:
        """The frames of a request whose steps are done; called from the decode thread."""
        ...

    def restart(self, request: EngineRequest) -> Any:
        """The latents a request restarts from after its main schedule; called from the decode thread."""
        ...


class RequestStream:
    """The events of one request, as an async iterator; closing it early cancels the request."""

    def __init__(self, engine: DenoiseEngine, request: EngineRequest) -> None:
        self.engine = engine
        self.request = request
        self.queue: asyncio.Queue[DenoiseEvent] = asyncio.Queue()
        self.done = False

    def __aiter__(self) -> AsyncIterator[DenoiseEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[DenoiseEvent]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                if event.last:
                    return
        finally:
            self.cancel()

    def cancel(self) -> None:
        if not self.done:
            self.engine.cancel(self.request.request_id)


class DenoiseEngine:
    def __init__(self, scheduler: StepScheduler, executor: Executor) -> None:
        self.scheduler = scheduler
        self.executor = executor
        self._streams: dict[str, RequestStream] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._first_preview_seen: set[str] = set()
        self._decode_thread: ThreadPoolExecutor | None = None  # from start() to close()
        # Requests waiting for the decode thread, most urgent first: (priority, order, due since
        # (monotonic), restart, request), finished ones for their frames and (restart True) restarting
        # ones for their round trip. One at a time, so an interactive request's frames wait for at most
        # the job in progress, never for a queue of batch requests' decodes that came before it.
        self._due_decodes: list[tuple[int, int, float, bool, EngineRequest]] = []
        self._decode_order = itertools.count()
        self._decode_wake = asyncio.Event()
        self._decode_task: asyncio.Task | None = None
        # When interactive work became live (monotonic), None while there is none: a batch decode that
        # was already due then has been held back only since then.
        self._interactive_since: float | None = None
        self._interactive_decodes = 0  # interactive requests' decodes due or in progress

    @property
    def clock(self):
        return self.scheduler.clock

    def profile(self, buckets: Iterable[ShapeBucket]) -> None:
        """Measures step times of every bucket at batch sizes 1, 2, 4, ... up to its row limit, and
        the times of a decode and of a restart."""
        for bucket in buckets:
            limit = self.scheduler.row_limit(bucket)
            sizes = sorted({*(2**i for i in range(limit.bit_length()) if 2**i <= limit), limit})
            for rows in sizes:
                self.executor.profile(bucket, rows)  # the first call of a size pays for lazy set-up
                seconds = statistics.median(self.executor.profile(bucket, rows) for _ in range(3))
                self.scheduler.step_times.observe(bucket, rows, seconds)
            self.executor.profile_decode(bucket)
            seconds = statistics.median(self.executor.profile_decode(bucket) for _ in range(3))
            self.scheduler.step_times.observe_decode(bucket, seconds)
            self.executor.profile_restart(bucket)
            seconds = statistics.median(self.executor.profile_restart(bucket) for _ in range(3))
            self.scheduler.step_times.observe_restart(bucket, seconds)

    def start(self) -> None:
        if self._decode_thread is None:
            self._decode_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kino-decode")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="denoise-engine")
        if self._decode_task is None:
            self._decode_task = asyncio.get_running_loop().create_task(
                self._decode_loop(), name="denoise-decode"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._decode_task is not None:
            self._decode_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._decode_task
            self._decode_task = None
        if self._decode_thread is not None:
            self._decode_thread.shutdown(wait=True)
            self._decode_thread = None

    def submit(self, request: EngineRequest) -> RequestStream:
        """Admits the request (or raises its KinoError at once) and returns its event stream."""
        self.scheduler.add(request)
        stream = RequestStream(self, request)
        self._streams[request.request_id] = stream
        if request.priority == Priority.INTERACTIVE and self._interactive_since is None:
            self._interactive_since = time.monotonic()  # batch decodes are held back from now
        self._record_queue_depth()
        self._wake.set()
        return stream

    def cancel(self, request_id: str) -> None:
        self.scheduler.cancel(request_id)
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            if not self.scheduler.has_pending or self._batch_steps_held:
                self._wake.clear()
                await self._wake.wait()
                continue
            plan = self.scheduler.schedule()
            self._record_plan(plan)
            if plan.runs_model:
                try:
                    result = await asyncio.to_thread(self.executor.run, plan)
                except Exception as exc:
                    log.exception("denoising step %d failed", plan.step_id)
                    error = internal("INTERNAL_ERROR", f"denoising step failed: {type(exc).__name__}")
                    events = self.scheduler.fail(plan, error)
                else:
                    metrics.STEP_DURATION.observe(result.duration_seconds)
                    events = self.scheduler.update(plan, result)
            else:
                events = self.scheduler.update(plan, StepResult.make_empty())
            self._dispatch(events)
            if not self.scheduler.has_interactive_work:
                self._interactive_since = None
            restarts = [(True, r) for r in self.scheduler.take_restarts()]  # batch requests only
            for restart, request in [*restarts, *((False, r) for r in self.scheduler.take_decodes())]:
                self._interactive_decodes += not restart and request.priority == Priority.INTERACTIVE
                due = (int(request.priority), next(self._decode_order), time.monotonic(), restart, request)
                heapq.heappush(self._due_decodes, due)
            self._decode_wake.set()  # a deferred batch decode may go now

    @property
    def _batch_steps_held(self) -> bool:
        """Only batch work is left to step, and an interactive request's frames are due or being made:
        the steps wait for them (`SchedulerConfig.batch_steps_wait_for_interactive_decodes`; the end
        of that decode wakes the loop)."""
        return (
            self.scheduler.config.batch_steps_wait_for_interactive_decodes
            and self._interactive_decodes > 0
            and not self.scheduler.has_interactive_work
        )

    async def _decode_loop(self) -> None:
        """The decode stage: one request's frames at a time, the most urgent due request first. A batch
        request's decode waits while interactive requests are live (a decode beside their steps would
        slow every one of them), for `SchedulerConfig.batch_decode_deferral_s` at most, counted from
        when it was first held back: from when it became due, or from when interactive work began if
        it was already waiting then (for the decode in progress). Counted from its due time alone, a
        decode queued just before an interactive arrival would start part-way through that request's
        steps, and its frames could then wait behind it."""
        deferral = self.scheduler.config.batch_decode_deferral_s
        while True:
            wait = None
            now = time.monotonic()
            if self._due_decodes:
                priority, _, due_since, _, _ = self._due_decodes[0]
                held = now - max(due_since, self._interactive_since or due_since)
                if (
                    priority == Priority.INTERACTIVE
                    or held >= deferral
                    or not self.scheduler.has_interactive_work
                ):
                    *_, restart, request = heapq.heappop(self._due_decodes)
                    await (self._restart(request) if restart else self._decode(request))
                    continue
                wait = deferral - held
            self._decode_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._decode_wake.wait(), wait)

    async def _decode(self, request: EngineRequest) -> None:
        """Decodes a finished request's frames in the decode thread, then tells its caller."""
        try:
            frames, seconds = await self._in_decode_thread(self.executor.decode_final, request.sampler)
        except Exception as exc:
            log.exception("decoding the frames of %s failed", request.request_id)
            error = internal("INTERNAL_ERROR", f"decoding the frames failed: {type(exc).__name__}")
            event = self.scheduler.decode_failed(request, error)
        else:
            metrics.DECODE_DURATION.observe(seconds)
            event = self.scheduler.decoded(request, frames, seconds)
        finally:
            if request.priority == Priority.INTERACTIVE:
                self._interactive_decodes -= 1
                self._wake.set()  # batch steps held for these frames may go
        self._dispatch([event])

    async def _restart(self, request: EngineRequest) -> None:
        """Makes the latents a request restarts from in the decode thread, then queues it for its last
        steps (`StepScheduler.restarted`). Only batch requests restart here: an interactive one's
        round trip runs inside its own step (`StepItem.restart_inline`)."""
        events = []
        try:
            if request.status != RequestStatus.RESTARTING:  # it left while it waited: nothing to make
                return
            latents, seconds = await self._in_decode_thread(self.executor.restart, request)
        except Exception as exc:
            log.exception("the restart of %s failed", request.request_id)
            error = internal("INTERNAL_ERROR", f"the restart failed: {type(exc).__name__}")
            events = self.scheduler.restart_failed(request, error)
        else:
            self.scheduler.restarted(request, latents, seconds)
        finally:
            self._wake.set()  # its last steps may go
        self._dispatch(events)

    async def _in_decode_thread(self, work: Callable[[Any], Any], argument: Any) -> tuple[Any, float]:
        """work(argument) run in the decode thread: its result and the seconds it took there."""

        def timed() -> tuple[Any, float]:
            start = time.perf_counter()
            result = work(argument)
            return result, time.perf_counter() - start

        return await asyncio.get_running_loop().run_in_executor(self._decode_thread, timed)

    def _record_queue_depth(self) -> None:
        for priority, count in self.scheduler.waiting_by_priority().items():
            metrics.QUEUE_DEPTH.labels(priority.name.lower()).set(count)

    def _record_plan(self, plan: StepPlan) -> None:
        self._record_queue_depth()
        if plan.runs_model:
            metrics.BATCH_SIZE.observe(plan.num_rows)
        if plan.preempted_ids:
            metrics.PREEMPTIONS.inc(len(plan.preempted_ids))

    def _dispatch(self, events: list[DenoiseEvent]) -> None:
        now = self.clock()
        for event in events:
            stream = self._streams.get(event.request_id)
            if stream is None:
                continue
            request = stream.request
            priority = request.priority.name.lower()
            if event.kind == EventKind.PREVIEW and event.request_id not in self._first_preview_seen:
                self._first_preview_seen.add(event.request_id)
                metrics.TIME_TO_FIRST_PREVIEW.labels(priority).observe(now - request.arrival)
            if event.last:
                stream.done = True
                del self._streams[event.request_id]
                self._first_preview_seen.discard(event.request_id)
                outcome = "ok" if event.kind == EventKind.RESULT else event.error.reason.lower()
                metrics.REQUESTS.labels(priority, outcome).inc()
                if event.kind == EventKind.RESULT:
                    metrics.LATENCY.labels(priority).observe(now - request.arrival)
            stream.queue.put_nowait(event)
