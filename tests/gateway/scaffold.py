"""Test scaffolding for the gateway's job machinery: stand-ins for the services a job calls.

None of this is used by the product. They exist so the tests can drive the paths that need a service
that answers (running, progress, previews, cancellation, restarts) while the real video model is not
deployed. `SlowDenoiser` streams its steps slowly and then, by default, answers the way an undeployed
model would (UNAVAILABLE/BACKEND_UNAVAILABLE); it never produces a video anyone could mistake for one.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

import numpy as np

from kino.v1 import (
    audio_pb2,
    audio_pb2_grpc,
    denoiser_pb2,
    denoiser_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    text_encoder_pb2,
    text_encoder_pb2_grpc,
)
from services.common.errors import unavailable
from services.common.server import KinoServer, ServiceRegistration
from services.common.settings import load_settings
from services.common.tensors import from_proto, to_proto

TOKEN_DIM = 16


class ScaffoldTextEncoder(text_encoder_pb2_grpc.TextEncoderServicer):
    """Token embeddings drawn from a hash of the text: the right shapes, no meaning.

    malformed=True answers tensors whose bytes disagree with their shape, as a broken backend would.
    """

    def __init__(self, malformed: bool = False) -> None:
        self.malformed = malformed
        self.calls = 0

    async def Encode(self, request, context):
        self.calls += 1
        response = text_encoder_pb2.EncodeResponse(model="scaffold-hash-encoder", dim=TOKEN_DIM)
        for text in request.texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            num_tokens = len(text.split()) + 2
            tokens = np.random.default_rng(seed).standard_normal((num_tokens, TOKEN_DIM)).astype(np.float32)
            pooled = tokens.mean(axis=0)
            pooled /= np.linalg.norm(pooled)
            embedding = response.embeddings.add(pooled=to_proto(pooled), num_tokens=num_tokens)
            embedding.tokens.CopyFrom(to_proto(tokens))
            if self.malformed:
                embedding.tokens.data = embedding.tokens.data[:-4]
        return response


class SlowDenoiser(denoiser_pb2_grpc.VideoDenoiserServicer):
    """Streams `steps` progress events `step_seconds` apart, a preview every `preview_every` steps.

    finish="unavailable" then refuses like an undeployed model; finish="frames" returns flat gray
    frames of the requested shape so the stages after denoising can be exercised.
    """

    def __init__(
        self,
        steps: int = 50,
        step_seconds: float = 0.02,
        finish: str = "unavailable",
        preview_every: int = 10,
    ) -> None:
        self.steps = steps
        self.step_seconds = step_seconds
        self.finish = finish
        self.preview_every = preview_every
        self.requests: list[denoiser_pb2.DenoiseRequest] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def GetModelInfo(self, request, context):
        return denoiser_pb2.ModelInfo(
            model="scaffold-slow-denoiser",
            text_dim=TOKEN_DIM,
            frame_counts=[8, 16],
            resolutions=[
                denoiser_pb2.Resolution(height=32, width=32),
                denoiser_pb2.Resolution(height=32, width=48),
            ],
            fps=8.0,
            max_steps=100,
            default_steps=self.steps,
            default_guidance_scale=1.0,
        )

    async def Denoise(self, request, context):
        from_proto(request.text_tokens, field="text_tokens", dtype=np.float32, ndim=2)
        self.requests.append(request)
        self.started.set()
        try:
            for step in range(1, request.num_steps + 1):
                await asyncio.sleep(self.step_seconds)
                yield denoiser_pb2.DenoiseResponse(
                    progress=denoiser_pb2.DenoiseProgress(step=step, total_steps=request.num_steps)
                )
                if step % self.preview_every == 0:
                    preview = np.full((request.num_frames, 4, 4, 3), step, dtype=np.uint8)
                    yield denoiser_pb2.DenoiseResponse(
                        preview=denoiser_pb2.DenoisePreview(step=step, frames=to_proto(preview))
                    )
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if self.finish == "unavailable":
            raise unavailable(
                "BACKEND_UNAVAILABLE", "the scaffold denoiser has no video model", backend="denoiser"
            )
        yield denoiser_pb2.DenoiseResponse(
            result=denoiser_pb2.DenoiseResult(
                frames=to_proto(self.frames(request)), fps=8.0, model="scaffold-slow-denoiser"
            )
        )

    def frames(self, request: denoiser_pb2.DenoiseRequest) -> np.ndarray:
        return np.full((request.num_frames, request.height, request.width, 3), 128, dtype=np.uint8)


class MovingSquareDenoiser(SlowDenoiser):
    """A white square moving right by `STEP` pixels a frame on black, carried on from where the known
    frames leave it; for the seeds in `jump_seeds` the first new frame lands `JUMP` pixels further on,
    as a continuation drawn off its subject's motion does."""

    SIDE, STEP, JUMP = 4, 1, 6

    def __init__(self, jump_seeds: set[int]) -> None:
        super().__init__(steps=2, step_seconds=0.0, finish="frames")
        self.jump_seeds = jump_seeds

    def frames(self, request: denoiser_pb2.DenoiseRequest) -> np.ndarray:
        known = request.first_frames.shape[0] if request.HasField("first_frames") else 0
        x = 0
        if known:
            last = from_proto(request.first_frames, field="first_frames", dtype=np.uint8, ndim=4)[-1]
            x = int(np.flatnonzero(last.max(axis=(0, 2)))[0]) + self.STEP
        frames = np.zeros((request.num_frames, request.height, request.width, 3), np.uint8)
        for index in range(known, request.num_frames):
            if index == known and request.seed in self.jump_seeds:
                x += self.JUMP
            left = min(x, request.width - self.SIDE)
            frames[index, 4 : 4 + self.SIDE, left : left + self.SIDE] = 255
            x += self.STEP
        return frames


class SilentAudio(audio_pb2_grpc.AudioGeneratorServicer):
    """Silence of the clip's length: lets a job get past AUDIO to PACKAGING."""

    def __init__(self) -> None:
        self.requests: list[audio_pb2.GenerateRequest] = []

    async def Generate(self, request, context):
        self.requests.append(request)
        frames = from_proto(request.frames, field="frames", dtype=np.uint8, ndim=4)
        samples = round(frames.shape[0] / request.fps * 48000)
        return audio_pb2.GenerateResponse(
            pcm=to_proto(np.zeros((samples, 2), dtype=np.int16)), sample_rate=48000, channels=2
        )


class RecordingFeedRanker(ranker_pb2_grpc.FeedRankerServicer):
    def __init__(self) -> None:
        self.upserts: list[ranker_pb2.UpsertItemsRequest] = []
        self.removals: list[ranker_pb2.RemoveItemsRequest] = []

    async def UpsertItems(self, request, context):
        self.upserts.append(request)
        return ranker_pb2.UpsertItemsResponse(upserted=len(request.items))

    async def RemoveItems(self, request, context):
        self.removals.append(request)
        return ranker_pb2.RemoveItemsResponse(removed=len(request.videos))


class FeedRankerLosingReplies(RecordingFeedRanker):
    """Applies every upsert, then fails the call, as when the reply is lost on the way back."""

    async def UpsertItems(self, request, context):
        await super().UpsertItems(request, context)
        raise unavailable("BACKEND_UNAVAILABLE", "connection reset after the write", backend="feed_ranker")


@dataclass
class Backends:
    server: KinoServer
    encoder: ScaffoldTextEncoder | None = None
    denoiser: SlowDenoiser | None = None
    audio: SilentAudio | None = None
    ranker: RecordingFeedRanker | None = None

    @property
    def address(self) -> str:
        return self.server.address


async def start_backends(
    *,
    encoder: ScaffoldTextEncoder | None = None,
    denoiser: SlowDenoiser | None = None,
    audio: SilentAudio | None = None,
    ranker: RecordingFeedRanker | None = None,
) -> Backends:
    """A real KinoServer on a free loopback port hosting the given scaffold services."""
    settings = load_settings(env={}, server={"port": 0, "metrics_port": -1})
    server = KinoServer(settings.server)
    services = [
        (encoder, text_encoder_pb2, "TextEncoder", text_encoder_pb2_grpc.add_TextEncoderServicer_to_server),
        (denoiser, denoiser_pb2, "VideoDenoiser", denoiser_pb2_grpc.add_VideoDenoiserServicer_to_server),
        (audio, audio_pb2, "AudioGenerator", audio_pb2_grpc.add_AudioGeneratorServicer_to_server),
        (ranker, ranker_pb2, "FeedRanker", ranker_pb2_grpc.add_FeedRankerServicer_to_server),
    ]
    for servicer, module, name, add in services:
        if servicer is not None:
            server.add(ServiceRegistration(module.DESCRIPTOR.services_by_name[name], add, servicer))
    await server.start()
    return Backends(server, encoder, denoiser, audio, ranker)
