"""The job runner: which jobs run, how many at once, and what happens when they stop.

Policy: at most `max_running` jobs run at once; the next one is the oldest interactive job, then the
oldest batch job (the store's claim order). A queued job whose deadline passes fails with
DEADLINE_EXCEEDED/DEADLINE_PASSED without spending compute; a running one fails the same way when its
deadline hits mid-run.

Every job state change after Submit goes through the runner (`cancel`, and the end of each run), so
metrics and Watch notifications happen in one place. Changes are compare-and-set in the store: when a
Cancel and the end of a run race, the first write wins and the other is a no-op.

Durability: a runner stamps the jobs it claims with its id (host:pid:nonce) and renews a heartbeat on
them while they run. A RUNNING job is abandoned when its runner is a dead process on this host (a
gateway restarted after a crash: recovered at once, on start-up) or when its heartbeat is older than
the lease (a replica lost elsewhere: recovered by the periodic sweep of any live replica). An abandoned
job is re-queued (its attempt count goes up when it starts again) unless it has already been started
MAX_ATTEMPTS times; then it fails with UNAVAILABLE/JOB_INTERRUPTED, which tells the client that a
resubmission is safe. A graceful stop puts the jobs in flight back to QUEUED, so the next start runs
them again at once; their compute so far is lost either way, since the denoiser keeps no checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from google.rpc import status_pb2

from kino.v1 import generation_pb2
from services.common.errors import KinoError, cancelled, deadline_exceeded, internal, unavailable
from services.gateway import metrics
from services.gateway.events import JobEvents
from services.gateway.progress import DEFAULT_WRITE_INTERVAL_SECONDS, JobNoLongerRunning, LiveProgress
from services.gateway.store import ACTIVE_STATES, JobStore, now

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# The runner also wakes on its own this often, to expire overdue queued jobs and to pick up jobs it
# was not told about.
POLL_SECONDS = 1.0
# After a store error the scheduling loop backs off this long instead of spinning.
STORE_ERROR_BACKOFF_SECONDS = 2.0
# A running job whose runner has not renewed its heartbeat for this long is taken to be abandoned.
# Heartbeats are renewed three times per lease, so one slow database round trip does not lose a job.
LEASE_SECONDS = 30.0
# The runners alive in this process (tests run several gateways in one process).
_RUNNERS_HERE: set[str] = set()


class JobPipeline(Protocol):
    async def run(self, job: generation_pb2.Job, progress: LiveProgress) -> generation_pb2.JobResult: ...

    async def discard(self, result: generation_pb2.JobResult) -> None:
        """Undoes the output of a run whose job did not end SUCCEEDED after all."""


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        pipeline: JobPipeline,
        events: JobEvents,
        *,
        max_running: int,
        progress_write_interval: float = DEFAULT_WRITE_INTERVAL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self._last_heartbeat = self._last_sweep = time.monotonic()
        self.store = store
        self.pipeline = pipeline
        self.events = events
        self.max_running = max_running
        self.progress_write_interval = progress_write_interval
        self._tasks: dict[str, asyncio.Task] = {}
        self._live: dict[str, LiveProgress] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        """Recovers what dead runners left behind, then starts scheduling."""
        _RUNNERS_HERE.add(self.runner_id)
        await self._recover()
        self._scheduler = asyncio.create_task(self._schedule(), name="kino-gateway-scheduler")

    async def _recover(self) -> None:
        requeued, failed = await self.store.recover_interrupted(
            max_attempts=MAX_ATTEMPTS, interrupted_error=_interrupted_error, abandoned=self._abandoned
        )
        for job in requeued:
            log.warning("%s was interrupted on attempt %d; queued again", job.name, job.attempt)
        for job in failed:
            log.warning("%s was interrupted %d times; failed with JOB_INTERRUPTED", job.name, job.attempt)
            self._record_end(job)

    def _abandoned(self, runner_id: str | None, heartbeat_time: datetime | None) -> bool:
        if runner_id == self.runner_id:
            return False
        if runner_id is None or heartbeat_time is None or _dead_process_on_this_host(runner_id):
            return True
        return heartbeat_time < now() - timedelta(seconds=self.lease_seconds)

    async def stop(self) -> None:
        """Stops scheduling and puts the running jobs back in the queue for the next start."""
        self._stopping = True
        tasks = [task for task in (self._scheduler, *self._tasks.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _RUNNERS_HERE.discard(self.runner_id)

    def wake(self) -> None:
        """A job was queued: look for work now rather than at the next poll."""
        self._wake.set()

    def live(self, name: str) -> generation_pb2.Job | None:
        """The in-memory snapshot of a job running here (fresher than the store, with its preview)."""
        progress = self._live.get(name.removeprefix("jobs/"))
        return None if progress is None else progress.copy()

    async def cancel(self, job_id: str, by: str, **metadata: str) -> generation_pb2.Job | None:
        """Cancels a queued or running job; None when it was not queued or running any more."""
        name = f"jobs/{job_id}"
        error = cancelled("JOB_CANCELLED", f"{name} was cancelled ({by})", by=by, **metadata)
        job = await self.store.transition(
            job_id, ACTIVE_STATES, generation_pb2.JOB_STATE_CANCELLED, error=error.to_status()
        )
        if job is None:
            return None
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
        self._record_end(job)
        return job

    async def _schedule(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._fill_slots()
            except Exception:
                log.exception("job scheduling failed; retrying in %.0f s", STORE_ERROR_BACKOFF_SECONDS)
                await asyncio.sleep(STORE_ERROR_BACKOFF_SECONDS)
                continue
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancellation that
            # arrives together with the wake-up, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()

    async def _fill_slots(self) -> None:
        clock = time.monotonic()
        if self._tasks and clock - self._last_heartbeat >= self.lease_seconds / 3:
            self._last_heartbeat = clock
            await self.store.heartbeat(self.runner_id)
        if clock - self._last_sweep >= self.lease_seconds / 3:
            self._last_sweep = clock
            await self._recover()
        for job in await self.store.fail_overdue(now(), _overdue_error):
            log.info("%s: deadline passed while queued", job.name)
            self._record_end(job)
        while len(self._tasks) < self.max_running:
            job = await self.store.claim_next(self.runner_id)
            if job is None:
                break
            job_id = job.name.removeprefix("jobs/")
            self._live[job_id] = LiveProgress(job, self.store, self.events, self.progress_write_interval)
            self._tasks[job_id] = asyncio.create_task(self._run(job_id), name=f"kino-job-{job_id}")
        metrics.JOBS_QUEUED.set(await self.store.count(generation_pb2.JOB_STATE_QUEUED))
        metrics.JOBS_RUNNING.set(len(self._tasks))

    async def _run(self, job_id: str) -> None:
        progress = self._live[job_id]
        job = progress.copy()
        self.events.publish(job)
        log.info("%s started (attempt %d)", job.name, job.attempt)
        deadline_scope = asyncio.timeout(_seconds_left(job))
        try:
            async with deadline_scope:
                result = await self.pipeline.run(job, progress)
            if not await self._end(job_id, generation_pb2.JOB_STATE_SUCCEEDED, result=result):
                log.info("%s finished after it was cancelled; its video is removed", job.name)
                await self.pipeline.discard(result)
        except asyncio.CancelledError:
            if self._stopping:
                requeued = await self.store.transition(
                    job_id, [generation_pb2.JOB_STATE_RUNNING], generation_pb2.JOB_STATE_QUEUED
                )
                if requeued is not None:
                    log.info("%s put back in the queue by shutdown", job.name)
                raise
            # Cancelled by `cancel`, which already recorded the new state.
        except JobNoLongerRunning:
            log.info("%s stopped: it is no longer running in the store", job.name)
        except TimeoutError as error:
            if not deadline_scope.expired():
                await self._fail(job_id, _unexpected(job.name, error))
            else:
                await self._fail(
                    job_id,
                    deadline_exceeded(
                        "DEADLINE_PASSED", f"{job.name} did not finish by its deadline", name=job.name
                    ),
                )
        except KinoError as error:
            await self._fail(job_id, error)
        except Exception as error:
            await self._fail(job_id, _unexpected(job.name, error))
        finally:
            progress.close()
            self._live.pop(job_id, None)
            self._tasks.pop(job_id, None)
            metrics.JOBS_RUNNING.set(len(self._tasks))
            self.wake()

    async def _fail(self, job_id: str, error: KinoError) -> None:
        log.info("jobs/%s failed: %s %s: %s", job_id, error.code.name, error.reason, error.message)
        await self._end(job_id, generation_pb2.JOB_STATE_FAILED, error=error.to_status())

    async def _end(self, job_id: str, state: int, **outcome) -> bool:
        """Moves a RUNNING job to its end state; False when something else ended it first."""
        job = await self.store.transition(job_id, [generation_pb2.JOB_STATE_RUNNING], state, **outcome)
        if job is not None:
            self._record_end(job)
        return job is not None

    def _record_end(self, job: generation_pb2.Job) -> None:
        """Metrics and Watch notification for a job that just reached a terminal state."""
        metrics.JOBS_TOTAL.labels(
            generation_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
        ).inc()
        if job.HasField("start_time"):
            ran = job.end_time.ToDatetime() - job.start_time.ToDatetime()
            metrics.JOB_DURATION.observe(ran.total_seconds())
        self.events.publish(job)


def _dead_process_on_this_host(runner_id: str) -> bool:
    """True when runner_id names a process of this host that no longer runs. A pid now used by another
    process looks alive: that runner's jobs then wait for the lease to expire instead."""
    owner, _, _nonce = runner_id.rpartition(":")
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return runner_id not in _RUNNERS_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _seconds_left(job: generation_pb2.Job) -> float | None:
    if not job.HasField("deadline"):
        return None
    left = (job.deadline.ToDatetime(tzinfo=UTC) - now()).total_seconds()
    return max(left, 0.0)


def _interrupted_error(name: str, attempt: int) -> status_pb2.Status:
    return unavailable(
        "JOB_INTERRUPTED",
        f"{name} was interrupted by server restarts {attempt} times; submitting it again is safe",
        name=name,
        attempt=attempt,
    ).to_status()


def _overdue_error(name: str) -> status_pb2.Status:
    return deadline_exceeded(
        "DEADLINE_PASSED", f"{name} could not start before its deadline", name=name
    ).to_status()


def _unexpected(name: str, error: BaseException) -> KinoError:
    log.error("%s failed with an unexpected error", name, exc_info=error)
    return internal(
        "INTERNAL_ERROR", f"{name} failed with an internal error ({type(error).__name__})", name=name
    )
