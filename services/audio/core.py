"""The AudioGenerator service without its transport: GenerateRequest in, GenerateResponse out.

Validation lives here, so every backend receives sane NumPy inputs: frames uint8 (F, H, W, 3), a
positive frame rate, a clip no longer than the configured limit, dialogue lines of at most 200
characters inside the clip. Synthesis is CPU-bound and runs in worker threads, at most
`max_concurrency` at a time.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from kino.v1 import audio_pb2
from services.audio.backends import (
    SOUND_AMBIENCE,
    SOUND_DIALOGUE,
    SOUND_IMPACT,
    AudioBackend,
    AudioRequest,
    backend_from_name,
)
from services.audio.speech import SpeechCue
from services.common.errors import invalid_argument, out_of_range
from services.common.limits import MAX_AUDIO_PROMPT_CHARS
from services.common.settings import AudioSettings
from services.common.tensors import from_proto, to_proto
from services.common.text import is_blank

DEFAULT_SAMPLE_RATE = 48000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 96000
MAX_FPS = 120.0
MAX_SIDE = 1920
MAX_DIALOGUE_LINES = 16
MAX_LINE_CHARS = 200  # common.proto DialogueLine.text
_KIND = {
    SOUND_IMPACT: audio_pb2.SOUND_EVENT_KIND_IMPACT,
    SOUND_AMBIENCE: audio_pb2.SOUND_EVENT_KIND_AMBIENCE,
    SOUND_DIALOGUE: audio_pb2.SOUND_EVENT_KIND_DIALOGUE,
}


class AudioGeneratorCore:
    def __init__(
        self, backend: AudioBackend, *, max_duration_seconds: float = 60.0, max_concurrency: int = 2
    ) -> None:
        self.backend = backend
        self.max_duration_seconds = max_duration_seconds
        self._slots = asyncio.Semaphore(max_concurrency)

    @classmethod
    def from_settings(cls, settings: AudioSettings) -> AudioGeneratorCore:
        return cls(
            backend_from_name(settings.backend, settings.espeak_binary),
            max_duration_seconds=settings.max_duration_seconds,
            max_concurrency=settings.max_concurrency,
        )

    async def warmup(self) -> None:
        """One short clip through the backend, so the first request does not pay for imports and caches."""
        frames = np.zeros((2, 16, 16, 3), np.uint8)
        await asyncio.to_thread(
            self.backend.generate, AudioRequest(frames, 8.0, "", (), 0, DEFAULT_SAMPLE_RATE)
        )

    async def close(self) -> None:
        return None

    async def generate(self, request: audio_pb2.GenerateRequest) -> audio_pb2.GenerateResponse:
        validated = self.validate(request)
        async with self._slots:
            track = await asyncio.to_thread(self.backend.generate, validated)
        return audio_pb2.GenerateResponse(
            pcm=to_proto(track.pcm),
            sample_rate=track.sample_rate,
            channels=track.pcm.shape[1],
            events=[
                audio_pb2.SoundEvent(
                    kind=_KIND[e.kind],
                    start_seconds=e.start_s,
                    duration_seconds=e.duration_s,
                    gain=e.gain,
                    label=e.label,
                )
                for e in track.events
            ],
        )

    def validate(self, request: audio_pb2.GenerateRequest) -> AudioRequest:
        """The request as backend inputs; INVALID_ARGUMENT with a reason for anything out of bounds."""
        if not request.HasField("frames"):
            raise invalid_argument("FIELD_REQUIRED", "frames is required: uint8 (F, H, W, 3)", field="frames")
        frames = from_proto(request.frames, field="frames", dtype=np.uint8, ndim=4)
        if frames.shape[3] != 3:
            detail = f"expected 3 colour channels (F, H, W, 3), got shape {frames.shape}"
            raise invalid_argument("INVALID_TENSOR", f"frames: {detail}", field="frames", detail=detail)
        if frames.shape[0] < 1:
            raise out_of_range("frames.shape[0]", frames.shape[0], 1, "fps * max duration")
        for name, side in (("height", frames.shape[1]), ("width", frames.shape[2])):
            if not (8 <= side <= MAX_SIDE):
                raise out_of_range(f"frames.{name}", side, 8, MAX_SIDE)
        fps = request.fps
        if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
            raise out_of_range("fps", fps, "> 0", MAX_FPS)
        duration = frames.shape[0] / fps
        if duration > self.max_duration_seconds:
            raise out_of_range("duration_seconds", round(duration, 3), 0, self.max_duration_seconds)
        if request.seed < 0:
            raise out_of_range("seed", request.seed, 0, 2**63 - 1)
        sample_rate = request.sample_rate or DEFAULT_SAMPLE_RATE
        if not (MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE):
            raise out_of_range("sample_rate", sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
        if len(request.prompt) > MAX_AUDIO_PROMPT_CHARS:
            raise invalid_argument(
                "PROMPT_TOO_LONG",
                f"prompt has {len(request.prompt)} characters; the limit is {MAX_AUDIO_PROMPT_CHARS}",
                length=len(request.prompt),
                max=MAX_AUDIO_PROMPT_CHARS,
            )
        if len(request.dialogue) > MAX_DIALOGUE_LINES:
            raise out_of_range("dialogue", len(request.dialogue), 0, MAX_DIALOGUE_LINES)
        cues = []
        for i, line in enumerate(request.dialogue):
            field = f"dialogue[{i}]"
            if is_blank(line.text):
                raise invalid_argument("FIELD_REQUIRED", f"{field}.text is empty", field=f"{field}.text")
            if len(line.text) > MAX_LINE_CHARS:
                raise out_of_range(f"{field}.text length", len(line.text), 1, MAX_LINE_CHARS)
            start = line.start_seconds
            if not (math.isfinite(start) and 0 <= start < duration):
                raise out_of_range(f"{field}.start_seconds", start, 0, f"< {duration:g}")
            cues.append(SpeechCue(line.text.strip(), start, line.speaker, field))
        return AudioRequest(
            np.ascontiguousarray(frames), fps, request.prompt, tuple(cues), request.seed, sample_rate
        )
