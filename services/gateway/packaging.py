"""The PACKAGING stage: a job's frames and sound become a marked, signed MP4 in the video store.

The video's name is chosen before the file is made, because the file carries it twice: in the
invisible watermark and in the C2PA manifest (`provenance.package_video` does the marking, muxing and
signing). The signing credentials are loaded once, on first use, since the development chain is
generated on disk the first time. ffmpeg and the signing run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math

import numpy as np

from kino.v1 import generation_pb2
from services.common.settings import Settings
from services.gateway import media
from services.gateway.names import video_name
from services.gateway.provenance import (
    ProvenanceClaims,
    SigningCredentials,
    load_credentials,
    package_video,
    prompt_digest,
)
from services.gateway.provenance.manifest import DIGITAL_SOURCE_TYPE
from services.gateway.store import new_id
from services.gateway.validation import MAX_SIDE
from services.gateway.videos import VideoFacts, VideoStore

# Unless the request names a size, a video is shown at least this large on its short side: the model's
# native frames are scaled up by a whole factor (sharp edges, same aspect ratio), which also gives
# the watermark's blocks enough pixels to survive re-encoding.
MIN_VIEWING_SIDE = 256


class SigningKeys:
    """The C2PA signing credentials, loaded (or generated, for development) once, on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._credentials: SigningCredentials | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> SigningCredentials:
        async with self._lock:
            if self._credentials is None:
                self._credentials = await asyncio.to_thread(load_credentials, self._settings)
            return self._credentials


def viewing_size(
    spec: generation_pb2.GenerationSpec, native_width: int, native_height: int
) -> tuple[int, int]:
    """(width, height) of the file: the requested size, or the native size scaled by a whole factor."""
    if spec.width:
        return spec.width, spec.height
    factor = max(1, math.ceil(MIN_VIEWING_SIDE / min(native_width, native_height)))
    factor = min(factor, max(1, MAX_SIDE // max(native_width, native_height)))
    return native_width * factor, native_height * factor


class Packager:
    def __init__(self, videos: VideoStore, keys: SigningKeys) -> None:
        self.videos = videos
        self.keys = keys

    async def package(
        self,
        job: generation_pb2.Job,
        prompt: str,
        frames: np.ndarray,
        fps: float,
        pcm: np.ndarray,
        sample_rate: int,
        model: str,
    ) -> generation_pb2.Video:
        """Makes and stores the MP4; the video starts unpublished. frames uint8 (F, H, W, 3), pcm int16 (S, C)."""
        video_id = new_id()
        name = video_name(video_id)
        spec = job.spec
        claims = ProvenanceClaims(
            model=model,
            prompt_sha256=prompt_digest(prompt),
            job=job.name,
            video=name,
            parent_video=spec.source_video,
        )
        options = dataclasses.replace(
            media.DEFAULT_OPTIONS, size=viewing_size(spec, frames.shape[2], frames.shape[1])
        )
        credentials = await self.keys.get()
        mp4 = await asyncio.to_thread(
            package_video,
            frames,
            fps,
            pcm,
            sample_rate,
            claims,
            credentials,
            options=options,
            visible_label=spec.visible_label,
        )
        info = await asyncio.to_thread(media.probe, mp4, count_frames=False)
        provenance = generation_pb2.Provenance(
            digital_source_type=DIGITAL_SOURCE_TYPE,
            model=model,
            prompt_sha256=claims.prompt_sha256,
            job=job.name,
            parent_video=spec.source_video,
            c2pa_signed=True,
            watermark=name,
        )
        facts = VideoFacts(
            job_id=job.name.removeprefix("jobs/"),
            requester=job.requester,
            duration_seconds=info.video.num_frames / float(info.video.fps),
            width=info.video.width,
            height=info.video.height,
            fps=float(info.video.fps),
            num_frames=info.video.num_frames,
            provenance=provenance,
        )
        return await self.videos.add(video_id, mp4, facts)
