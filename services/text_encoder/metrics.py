"""Engine metrics of the TextEncoder (RPC counts and latencies come from the server's interceptor)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BATCH_SIZE = Histogram(
    "kino_text_encoder_batch_size_texts",
    "Texts per forward pass of the encoder.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
BATCH_DURATION = Histogram(
    "kino_text_encoder_batch_duration_seconds",
    "Wall time of one forward pass of the encoder, tokenization included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
QUEUE_WAIT = Histogram(
    "kino_text_encoder_queue_wait_seconds",
    "Time a text waits in the batcher before its forward pass starts.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
CACHE_HITS = Counter("kino_text_encoder_cache_hits", "Prompts answered from the prompt cache.")
CACHE_MISSES = Counter("kino_text_encoder_cache_misses", "Prompts that had to be encoded.")
