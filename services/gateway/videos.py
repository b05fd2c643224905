"""Finished videos: their rows in the database and their files under the asset dir.

`add` is how a video enters the store (the packaging stage calls it once it has muxed an MP4): the file
is copied in under a new id via a temporary name and a rename, hashed, and only then recorded, so a row
never points at a missing or half-written file. Downloads stream the file in chunks from any offset,
so an interrupted download resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from kino.v1 import generation_pb2
from services.common.errors import not_found, out_of_range
from services.gateway.names import job_name, parse_name, video_name
from services.gateway.store import Database, VideoRow, new_id, now

MP4_MIME_TYPE = "video/mp4"
DOWNLOAD_CHUNK_BYTES = 256 * 1024
_HASH_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class VideoFacts:
    """What the packaging stage knows about a video it made."""

    job_id: str
    requester: str
    duration_seconds: float
    width: int
    height: int
    fps: float
    num_frames: int
    provenance: generation_pb2.Provenance
    published: bool = False


@dataclass(frozen=True)
class Chunk:
    data: bytes
    offset: int
    total_size: int


class VideoStore:
    def __init__(self, db: Database, asset_dir: Path) -> None:
        self.db = db
        self.asset_dir = asset_dir

    async def add(self, source: Path, facts: VideoFacts) -> generation_pb2.Video:
        """Copies an MP4 file into the store and records it. The file must be an ISO-BMFF (MP4) file."""
        video_id = new_id()
        file_name = f"{video_id}.mp4"
        size, sha256 = await asyncio.to_thread(_copy_in, source, self.asset_dir / file_name)
        row = VideoRow(
            id=video_id,
            job_id=facts.job_id,
            requester=facts.requester,
            duration_seconds=facts.duration_seconds,
            width=facts.width,
            height=facts.height,
            fps=facts.fps,
            num_frames=facts.num_frames,
            size_bytes=size,
            sha256=sha256,
            mime_type=MP4_MIME_TYPE,
            file_name=file_name,
            provenance=facts.provenance.SerializeToString(),
            published=facts.published,
            create_time=now(),
        )

        def insert(session: Session) -> generation_pb2.Video:
            session.add(row)
            session.flush()
            return _video_from_row(row)

        try:
            return await self.db.run(insert)
        except BaseException:
            (self.asset_dir / file_name).unlink(missing_ok=True)
            raise

    async def get(self, name: str, field: str = "name") -> generation_pb2.Video:
        return _video_from_row(await self._row(parse_name(name, "videos", field)))

    async def require(self, video_id: str) -> None:
        """NOT_FOUND/VIDEO_NOT_FOUND unless the video exists."""
        await self._row(video_id)

    async def read(self, name: str, offset: int) -> AsyncIterator[Chunk]:
        """The file from `offset` on, in chunks; offset == size yields one empty chunk (nothing left)."""
        row = await self._row(parse_name(name, "videos", "name"))
        if not (0 <= offset <= row.size_bytes):
            raise out_of_range("offset", offset, 0, row.size_bytes)
        path = self.asset_dir / row.file_name
        file = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(file.seek, offset)
            position = offset
            while True:
                data = await asyncio.to_thread(file.read, DOWNLOAD_CHUNK_BYTES)
                if data or position == offset:
                    yield Chunk(data, position, row.size_bytes)
                if not data:
                    return
                position += len(data)
        finally:
            await asyncio.to_thread(file.close)

    async def _row(self, video_id: str) -> VideoRow:
        row = await self.db.run(lambda session: session.get(VideoRow, video_id))
        if row is None:
            name = video_name(video_id)
            raise not_found("VIDEO_NOT_FOUND", f"{name} does not exist", name=name)
        return row


def _video_from_row(row: VideoRow) -> generation_pb2.Video:
    video = generation_pb2.Video(
        name=video_name(row.id),
        job=job_name(row.job_id),
        requester=row.requester,
        duration_seconds=row.duration_seconds,
        width=row.width,
        height=row.height,
        fps=row.fps,
        num_frames=row.num_frames,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        mime_type=row.mime_type,
        published=row.published,
    )
    video.provenance.ParseFromString(row.provenance)
    video.create_time.FromDatetime(row.create_time)
    return video


def _copy_in(source: Path, destination: Path) -> tuple[int, str]:
    """Copies source to destination via a temporary file and a rename; returns (size, sha256)."""
    with source.open("rb") as file:
        header = file.read(12)
    if len(header) < 12 or header[4:8] != b"ftyp":
        raise ValueError(f"{source} is not an MP4 file (no ftyp box at the start)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".incoming-")
    digest, size = hashlib.sha256(), 0
    try:
        with source.open("rb") as reader, os.fdopen(descriptor, "wb") as writer:
            while block := reader.read(_HASH_BLOCK_BYTES):
                digest.update(block)
                writer.write(block)
                size += len(block)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()
