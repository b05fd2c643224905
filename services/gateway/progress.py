"""A running job's progress: how stages map to an overall fraction, and where updates go.

Watchers see every update at once (in memory, previews included); the store is written at most every
`write_interval` seconds and at every stage change, so a 100-step denoise does not become 100 database
writes, while Get is never more than a fraction of a second behind.
"""

from __future__ import annotations

import time

from kino.v1 import common_pb2, generation_pb2
from services.gateway import metrics
from services.gateway.events import JobEvents
from services.gateway.store import JobStore

# The share of the overall fraction each stage covers, in pipeline order: denoising is the bulk.
STAGE_SPANS: dict[int, tuple[float, float]] = {
    generation_pb2.JOB_STAGE_CHECKING: (0.0, 0.02),
    generation_pb2.JOB_STAGE_ENCODING: (0.02, 0.05),
    generation_pb2.JOB_STAGE_DENOISING: (0.05, 0.85),
    generation_pb2.JOB_STAGE_AUDIO: (0.85, 0.92),
    generation_pb2.JOB_STAGE_PACKAGING: (0.92, 0.98),
    generation_pb2.JOB_STAGE_PUBLISHING: (0.98, 1.0),
}
DEFAULT_WRITE_INTERVAL_SECONDS = 0.25


class JobNoLongerRunning(Exception):
    """The job left RUNNING under the pipeline's feet (cancelled, or failed by another process):
    its work is abandoned at the next progress write."""


class LiveProgress:
    """The progress reporter the pipeline calls; it owns the in-memory snapshot of one running job."""

    def __init__(
        self,
        job: generation_pb2.Job,
        store: JobStore,
        events: JobEvents,
        write_interval: float = DEFAULT_WRITE_INTERVAL_SECONDS,
    ) -> None:
        self.snapshot = generation_pb2.Job()
        self.snapshot.CopyFrom(job)
        self._job_id = job.name.removeprefix("jobs/")
        self._store = store
        self._events = events
        self._write_interval = write_interval
        self._last_write = float("-inf")
        self._stage_started: float | None = None

    async def stage(self, stage: int) -> None:
        """Enters a pipeline stage: always written and published. Raises JobNoLongerRunning when the
        job is not RUNNING in the store any more."""
        self._observe_stage()
        progress = self.snapshot.progress
        progress.stage = stage
        progress.fraction = STAGE_SPANS[stage][0]
        progress.step = 0
        progress.total_steps = 0
        self._stage_started = time.monotonic()
        await self._publish(write=True)

    async def advance(self, within_stage: float, step: int = 0, total_steps: int = 0) -> None:
        """Progress inside the current stage, within_stage in [0, 1]. The fraction never moves back: a
        stage that finds more work on the way (a seam drawn again) holds it until the work catches up."""
        progress = self.snapshot.progress
        start, end = STAGE_SPANS[progress.stage]
        fraction = start + (end - start) * min(max(within_stage, 0.0), 1.0)
        progress.fraction = max(progress.fraction, fraction)
        progress.step = step
        progress.total_steps = total_steps
        await self._publish(write=time.monotonic() - self._last_write >= self._write_interval)

    async def preview(self, frames: common_pb2.Tensor) -> None:
        """Keeps the latest low-resolution look at the video for Watch streams (never stored)."""
        self.snapshot.progress.preview.CopyFrom(frames)
        await self._publish(write=False)

    def close(self) -> None:
        """Records the time spent in the last stage."""
        self._observe_stage()

    def copy(self) -> generation_pb2.Job:
        job = generation_pb2.Job()
        job.CopyFrom(self.snapshot)
        return job

    async def _publish(self, *, write: bool) -> None:
        self.snapshot.update_time.GetCurrentTime()
        self._events.publish(self.copy())
        if write:
            self._last_write = time.monotonic()
            stored = generation_pb2.JobProgress()
            stored.CopyFrom(self.snapshot.progress)
            stored.ClearField("preview")
            if not await self._store.update_progress(self._job_id, stored):
                raise JobNoLongerRunning(self.snapshot.name)

    def _observe_stage(self) -> None:
        if self._stage_started is not None:
            stage = (
                generation_pb2.JobStage.Name(self.snapshot.progress.stage).removeprefix("JOB_STAGE_").lower()
            )
            metrics.STAGE_SECONDS.labels(stage).observe(time.monotonic() - self._stage_started)
            self._stage_started = None
