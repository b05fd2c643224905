"""Engine metrics of the FeedRanker (RPC counts and latencies come from the server's interceptor)."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

from kino.v1 import ranker_pb2

STAGE_SECONDS = Histogram(
    "kino_ranker_stage_duration_seconds",
    "Wall time of one stage of Rank: state, retrieve, filter, features, score, rerank.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
CANDIDATES = Histogram(
    "kino_ranker_candidates_videos",
    "Videos scored by the model per Rank call (after retrieval and filters).",
    buckets=(0, 10, 50, 100, 250, 500, 750, 1000, 2000),
)
SERVED = Counter(
    "kino_ranker_served_videos_total",
    "Videos returned by Rank, by the source that proposed them.",
    ["source"],
)
COLD_START_FEEDS = Counter(
    "kino_ranker_cold_start_feeds_total", "Rank calls for users without any positive feedback yet."
)
EVENTS = Counter(
    "kino_ranker_ingested_events_total",
    "Feedback events received by Ingest, by outcome: accepted, unknown_video, rejected.",
    ["outcome"],
)
CATALOG = Gauge("kino_ranker_catalog_videos", "Videos in the ranker's catalog.")


# Rank observes a stage six times and a source ten times per call: the labelled children are looked up
# once (a `labels()` call costs about as much as the observation itself).


@functools.cache
def stage_seconds(stage: str):
    return STAGE_SECONDS.labels(stage)


@functools.cache
def served(source: int):
    return SERVED.labels(ranker_pb2.CandidateSource.Name(source))
