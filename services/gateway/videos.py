"""Finished videos: their rows in the database and their files under the asset dir.

`add` is how a video enters the store (the packaging stage calls it with the MP4 it made): the file is
written under a temporary name and renamed, hashed, and only then recorded, so a row never points at
a missing or half-written file. Downloads stream the file in chunks from any offset,
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

from sqlalchemy import delete as sql_delete
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kino.v1 import generation_pb2
from services.common.errors import not_found, out_of_range
from services.gateway.names import job_name, parse_name, video_name
from services.gateway.store import Database, VideoRow, now

MP4_MIME_TYPE = "video/mp4"
DOWNLOAD_CHUNK_BYTES = 256 * 1024


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

    async def add(self, video_id: str, data: bytes, facts: VideoFacts) -> generation_pb2.Video:
        """Stores an MP4 file under video_id and records it. The bytes must be an ISO-BMFF (MP4) file."""
        if len(data) < 12 or data[4:8] != b"ftyp":
            raise ValueError("not an MP4 file (no ftyp box at the start)")
        file_name = f"{video_id}.mp4"
        sha256 = await asyncio.to_thread(_write_file, self.asset_dir / file_name, data)
        row = VideoRow(
            id=video_id,
            job_id=facts.job_id,
            requester=facts.requester,
            duration_seconds=facts.duration_seconds,
            width=facts.width,
            height=facts.height,
            fps=facts.fps,
            num_frames=facts.num_frames,
            size_bytes=len(data),
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

    async def remove(self, video_id: str) -> None:
        """Deletes a video nobody references (its job did not succeed): row first, then the file."""
        row = await self.db.run(lambda session: session.get(VideoRow, video_id))
        if row is None:
            return

        def delete(session: Session) -> None:
            session.execute(sql_delete(VideoRow).where(VideoRow.id == video_id))

        await self.db.run(delete)
        (self.asset_dir / row.file_name).unlink(missing_ok=True)

    async def set_published(self, video_ids: list[str], published: bool) -> None:
        """Marks the videos published or not, in one write."""

        def write(session: Session) -> None:
            session.execute(update(VideoRow).where(VideoRow.id.in_(video_ids)).values(published=published))

        await self.db.run(write)

    async def resolve_prefix(self, prefix: str) -> str | None:
        """The one video whose id starts with prefix (a watermark carries 16 hex digits), else None."""
        if not prefix:
            return None

        def read(session: Session) -> list[str]:
            query = select(VideoRow.id).where(VideoRow.id.startswith(prefix, autoescape=True)).limit(2)
            return list(session.scalars(query))

        matches = await self.db.run(read)
        return matches[0] if len(matches) == 1 else None

    async def get(self, name: str, field: str = "name") -> generation_pb2.Video:
        return _video_from_row(await self._row(parse_name(name, "videos", field)))

    async def load(self, name: str, field: str = "name") -> tuple[generation_pb2.Video, bytes]:
        """A video's metadata and its whole file: the source of a remix or an extension."""
        row = await self._row(parse_name(name, "videos", field))
        data = await asyncio.to_thread((self.asset_dir / row.file_name).read_bytes)
        return _video_from_row(row), data

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


def _write_file(destination: Path, data: bytes) -> str:
    """Writes via a temporary file and a rename, so the store never holds half a file; returns the sha256."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".incoming-")
    try:
        with os.fdopen(descriptor, "wb") as writer:
            writer.write(data)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()
