"""The RPCs a load test sends, and the weighted mix it draws them from.

Each operation is one client-visible action: `encode` (TextEncoder.Encode of a prompt from a pool of
40, so the prompt cache sees realistic repeats), `rank` (FeedRanker.Rank of a page for one of
`users` users), `ingest` (FeedRanker.Ingest of a few feedback events for videos Rank served), and
`generate` (Generation.Submit of a short clip; with `wait_jobs` the operation lasts until the job
ends, and a failed job counts with its error's status code).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import timestamp_pb2

from kino.v1 import (
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    text_encoder_pb2,
    text_encoder_pb2_grpc,
)

OPERATIONS = ("generate", "rank", "ingest", "encode")

_SUBJECTS = ["a red ball", "a blue cube", "a green cone", "a yellow star", "two white spheres"]
_ACTIONS = ["bounces on the floor", "rolls to the left", "spins in place", "falls and lands", "slides past"]
_SCENES = ["in a bright studio", "on a wooden table", "under soft evening light", "against a grey wall"]
PROMPTS = [f"{s} {a} {c}" for s in _SUBJECTS for a in _ACTIONS for c in _SCENES][:40]


class JobFailed(Exception):
    """A generation job that ended FAILED or CANCELLED; carries the job error's status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Workload:
    """Shared client state: stubs over one channel, the videos Rank served (for Ingest)."""

    channel: grpc.aio.Channel
    users: int = 1000
    wait_jobs: bool = False
    clip_seconds: float = 1.0
    clip_steps: int = 8
    timeout_seconds: float = 30.0
    seen_videos: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.encoder = text_encoder_pb2_grpc.TextEncoderStub(self.channel)
        self.ranker = ranker_pb2_grpc.FeedRankerStub(self.channel)
        self.generation = generation_pb2_grpc.GenerationStub(self.channel)

    def operation(self, name: str) -> Callable[[random.Random], Awaitable[None]]:
        return getattr(self, f"_{name}")

    def _user(self, rng: random.Random) -> str:
        return f"loadtest-user-{rng.randrange(self.users)}"

    async def _encode(self, rng: random.Random) -> None:
        await self.encoder.Encode(
            text_encoder_pb2.EncodeRequest(texts=[rng.choice(PROMPTS)]), timeout=self.timeout_seconds
        )

    async def _rank(self, rng: random.Random) -> None:
        response = await self.ranker.Rank(
            ranker_pb2.RankRequest(user=self._user(rng), page_size=10), timeout=self.timeout_seconds
        )
        videos = [item.video for item in response.items]
        self.seen_videos = (self.seen_videos + videos)[-1000:]

    async def _ingest(self, rng: random.Random) -> None:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        user = self._user(rng)
        videos = self.seen_videos or ["videos/loadtest-unknown"]
        events = [
            ranker_pb2.FeedEvent(
                user=user,
                video=rng.choice(videos),
                type=rng.choice([ranker_pb2.FEED_EVENT_TYPE_IMPRESSION, ranker_pb2.FEED_EVENT_TYPE_WATCH]),
                event_time=now,
                watch_seconds=round(rng.uniform(0.5, 10.0), 2),
            )
            for _ in range(rng.randint(1, 5))
        ]
        await self.ranker.Ingest(ranker_pb2.IngestRequest(events=events), timeout=self.timeout_seconds)

    async def _generate(self, rng: random.Random) -> None:
        spec = generation_pb2.GenerationSpec(
            mode=generation_pb2.GENERATION_MODE_TEXT_TO_VIDEO,
            prompt=rng.choice(PROMPTS),
            duration_seconds=self.clip_seconds,
            num_steps=self.clip_steps,
            seed=rng.randrange(1 << 31),
        )
        job = await self.generation.Submit(
            generation_pb2.SubmitRequest(
                spec=spec, requester=self._user(rng), priority=common_pb2.PRIORITY_BATCH
            ),
            timeout=self.timeout_seconds,
        )
        if not self.wait_jobs:
            return
        final = job
        async for update in self.generation.Watch(generation_pb2.WatchRequest(name=job.name)):
            final = update
        if final.state != generation_pb2.JOB_STATE_SUCCEEDED:
            code = grpc.StatusCode.CANCELLED
            if final.HasField("error"):
                code = next(
                    (c for c in grpc.StatusCode if c.value[0] == final.error.code), grpc.StatusCode.UNKNOWN
                )
            raise JobFailed(code, f"{job.name} ended {generation_pb2.JobState.Name(final.state)}")


def parse_mix(text: str) -> dict[str, float]:
    """`generate=1,rank=6,ingest=2,encode=1` -> normalized weights; unknown names are errors."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in OPERATIONS:
            raise ValueError(f"unknown operation {name!r}; choose from {', '.join(OPERATIONS)}")
        value = float(weight) if weight else 1.0
        if value < 0:
            raise ValueError(f"weight of {name} must be >= 0")
        weights[name] = value
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix needs at least one operation with a positive weight")
    return {name: value / total for name, value in weights.items() if value > 0}
