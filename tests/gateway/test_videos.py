"""GetVideo, DownloadVideo and Verify, over real gRPC, on files put into the store through its API."""

from __future__ import annotations

import hashlib

import grpc
import numpy as np
import pytest

from kino.v1 import generation_pb2
from services.gateway import media
from services.gateway.videos import DOWNLOAD_CHUNK_BYTES
from tests.gateway.helpers import expect_error, mp4_shaped_bytes, put_video

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


async def chunks(stub, name: str, offset: int = 0) -> list[generation_pb2.DownloadVideoResponse]:
    return [
        c async for c in stub.DownloadVideo(generation_pb2.DownloadVideoRequest(name=name, offset=offset))
    ]


async def test_get_video_returns_its_metadata(start_gateway):
    gateway = await start_gateway()
    data = mp4_shaped_bytes(10_000)
    stored = await put_video(gateway, data, published=True)
    video = await gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=stored.name))
    assert video == stored
    assert (video.size_bytes, video.sha256, video.mime_type) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        "video/mp4",
    )
    assert video.published and video.job == "jobs/" + "0" * 32 and video.create_time.seconds > 0
    assert (gateway.settings.asset_dir / f"{video.name.removeprefix('videos/')}.mp4").read_bytes() == data


async def test_download_streams_the_file_in_chunks_and_resumes(start_gateway):
    gateway = await start_gateway()
    data = mp4_shaped_bytes(3 * DOWNLOAD_CHUNK_BYTES + 12_345, seed=3)
    video = await put_video(gateway, data)

    whole = await chunks(gateway.stub, video.name)
    assert len(whole) == 4 and all(len(c.chunk) <= DOWNLOAD_CHUNK_BYTES for c in whole)
    assert b"".join(c.chunk for c in whole) == data
    assert [c.offset for c in whole] == [i * DOWNLOAD_CHUNK_BYTES for i in range(4)]
    assert {c.total_size for c in whole} == {len(data)} and {c.mime_type for c in whole} == {"video/mp4"}

    resumed = await chunks(gateway.stub, video.name, offset=300_001)
    assert resumed[0].offset == 300_001 and b"".join(c.chunk for c in resumed) == data[300_001:]
    (at_end,) = await chunks(gateway.stub, video.name, offset=len(data))
    assert (at_end.chunk, at_end.offset, at_end.total_size) == (b"", len(data), len(data))
    for offset in (-1, len(data) + 1):
        await expect_error(chunks(gateway.stub, video.name, offset), INVALID, "OUT_OF_RANGE", field="offset")


async def test_unknown_and_malformed_video_names(start_gateway):
    gateway = await start_gateway()
    for call in (
        lambda name: gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=name)),
        lambda name: chunks(gateway.stub, name),
    ):
        await expect_error(
            call("videos/nosuchvideo"), NOT_FOUND, "VIDEO_NOT_FOUND", name="videos/nosuchvideo"
        )
        await expect_error(call("jobs/abc"), INVALID, "MALFORMED_NAME", field="name")
        await expect_error(call(""), INVALID, "FIELD_REQUIRED", field="name")


async def test_the_store_refuses_a_file_that_is_not_mp4_and_keeps_nothing(start_gateway):
    gateway = await start_gateway()
    with pytest.raises(ValueError, match="not an MP4"):
        await put_video(gateway, b"GIF89a" + b"\0" * 100)
    assert not gateway.settings.asset_dir.exists() or not any(gateway.settings.asset_dir.iterdir())


async def test_verify_refuses_empty_and_non_video_files(start_gateway):
    gateway = await start_gateway()
    verify = gateway.stub.Verify
    await expect_error(verify(generation_pb2.VerifyRequest()), INVALID, "FIELD_REQUIRED", field="file")
    await expect_error(
        verify(generation_pb2.VerifyRequest(file=b"plain text, not a video")), INVALID, "INVALID_MEDIA"
    )


async def test_verify_of_an_unmarked_video_finds_no_manifest_or_watermark(start_gateway):
    gateway = await start_gateway()
    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    verdict = await gateway.stub.Verify(generation_pb2.VerifyRequest(file=media.mux(frames, 8.0, None)))
    assert not verdict.manifest_present and not verdict.manifest_valid
    assert not verdict.watermark_found and verdict.watermark_video == ""
