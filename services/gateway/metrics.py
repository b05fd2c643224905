"""The gateway's job metrics (RPC metrics come from the shared interceptor)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS_TOTAL = Counter("kino_gateway_jobs_total", "Jobs that reached a terminal state, by state.", ["state"])
JOBS_QUEUED = Gauge("kino_gateway_jobs_queued", "Jobs waiting to start.")
JOBS_RUNNING = Gauge("kino_gateway_jobs_running", "Jobs running in this gateway.")
JOB_DURATION = Histogram(
    "kino_gateway_job_duration_seconds",
    "Time from a job's start to its end, for jobs that ran.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600),
)
STAGE_SECONDS = Histogram(
    "kino_gateway_stage_seconds",
    "Time a job spent in each pipeline stage.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
SEAM_CHECKS = Counter(
    "kino_gateway_seam_checks_total",
    "Continuation calls by how their seam came out: smooth, redrawn (a redraw was smooth), kept_jump (every "
    "draw jumped or lost the subject; the smoothest was kept), kept_lost (every draw lost the subject in some "
    "frame; the one losing it least was kept), untracked (no subject to follow).",
    ["outcome"],
)
