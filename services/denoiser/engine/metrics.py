"""Engine metrics of the VideoDenoiser (RPC counts and latencies come from the server's interceptor)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

QUEUE_DEPTH = Gauge(
    "kino_denoiser_queue_depth_requests",
    "Requests admitted but not started yet, by priority.",
    ["priority"],
)
BATCH_SIZE = Histogram(
    "kino_denoiser_batch_size_rows",
    "Model batch rows per denoising step (a guided request takes two).",
    buckets=(1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64),
)
STEP_DURATION = Histogram(
    "kino_denoiser_step_duration_seconds",
    "Wall time of one denoising step of the whole batch, previews included (and final decodes, when "
    "they are not pipelined).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DECODE_DURATION = Histogram(
    "kino_denoiser_decode_duration_seconds",
    "Wall time of one request's final decode in the decode stage (pipelined decodes).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TIME_TO_FIRST_PREVIEW = Histogram(
    "kino_denoiser_time_to_first_preview_seconds",
    "From admission to a request's first preview, by priority.",
    ["priority"],
    buckets=_SECONDS,
)
LATENCY = Histogram(
    "kino_denoiser_latency_seconds",
    "From admission to the final frames, by priority.",
    ["priority"],
    buckets=_SECONDS,
)
REQUESTS = Counter(
    "kino_denoiser_requests_total",
    "Requests that left the engine, by priority and outcome (ok, or the error reason).",
    ["priority", "outcome"],
)
PREEMPTIONS = Counter(
    "kino_denoiser_preemptions_total",
    "Times a started request was left out of a step because more urgent work took its rows.",
)
