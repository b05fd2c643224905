"""Small helpers for the gateway tests: error assertions, polling, and real image files."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

import grpc
import numpy as np
import pytest
from PIL import Image

from kino.v1 import generation_pb2
from services.common.errors import KinoError, error_info
from services.gateway.store import new_id
from services.gateway.videos import VideoFacts

TERMINAL = {
    generation_pb2.JOB_STATE_SUCCEEDED,
    generation_pb2.JOB_STATE_FAILED,
    generation_pb2.JOB_STATE_CANCELLED,
}


async def expect_error(awaitable, code: grpc.StatusCode, reason: str, **metadata) -> dict[str, str]:
    """Awaits a call that must fail with this code and reason (and these metadata values)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    error = caught.value
    got_reason, got_metadata = error_info(error)
    assert (error.code(), got_reason) == (code, reason), error.details()
    for key, value in metadata.items():
        assert got_metadata.get(key) == str(value), (key, got_metadata)
    return got_metadata


def job_error(job: generation_pb2.Job) -> KinoError:
    assert job.HasField("error"), job
    return KinoError.from_status(job.error)


async def wait_for_job(stub, name: str, predicate, timeout: float = 15.0) -> generation_pb2.Job:
    """Polls Get until predicate(job) holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        job = await stub.Get(generation_pb2.GetRequest(name=name))
        if predicate(job):
            return job
        if loop.time() > end:
            raise AssertionError(f"timed out waiting on {name}; last seen:\n{job}")
        await asyncio.sleep(0.02)


async def wait_terminal(stub, name: str, timeout: float = 15.0) -> generation_pb2.Job:
    return await wait_for_job(stub, name, lambda job: job.state in TERMINAL, timeout)


def state_name(state: int) -> str:
    return generation_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


def encoded_image(width: int, height: int, image_format: str = "PNG") -> bytes:
    """A real image file: a color gradient, so it does not compress to nothing."""
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None]
    pixels = np.concatenate(np.broadcast_arrays(x, y, (x // 2 + y // 2)), axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format=image_format)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares width x height: a decompression bomb's shape."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def mp4_shaped_bytes(size: int, seed: int = 0) -> bytes:
    """Bytes that begin with an ISO-BMFF ftyp box, for exercising storage and download transport."""
    ftyp = struct.pack(">I", 24) + b"ftyp" + b"isom" + struct.pack(">I", 512) + b"isomavc1"
    return ftyp + np.random.default_rng(seed).integers(0, 256, size - len(ftyp), dtype=np.uint8).tobytes()


async def put_video(
    gateway, data: bytes, *, job_id: str = "0" * 32, published: bool = False, duration_seconds: float = 1.0
) -> generation_pb2.Video:
    """Puts a file into the gateway's video store through the store's own API (at 8 fps)."""
    facts = VideoFacts(
        job_id=job_id,
        requester="alice",
        duration_seconds=duration_seconds,
        width=64,
        height=64,
        fps=8.0,
        num_frames=round(duration_seconds * 8),
        provenance=generation_pb2.Provenance(job=f"jobs/{job_id}"),
        published=published,
    )
    return await gateway.core.videos.add(new_id(), data, facts)
