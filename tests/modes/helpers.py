"""Blocking helpers for the mode tests: submit and wait, download, real image files."""

from __future__ import annotations

import io
import time

import grpc
import numpy as np
from PIL import Image

from kino.v1 import generation_pb2
from services.common.errors import KinoError, error_info

TERMINAL = {
    generation_pb2.JOB_STATE_SUCCEEDED,
    generation_pb2.JOB_STATE_FAILED,
    generation_pb2.JOB_STATE_CANCELLED,
}


def run_job(
    stub, spec: generation_pb2.GenerationSpec, requester: str = "alice", timeout: float = 60, **request
):
    """Submits and polls Get until the job ends; returns the final Job."""
    job = stub.Submit(generation_pb2.SubmitRequest(spec=spec, requester=requester, **request))
    deadline = time.monotonic() + timeout
    while job.state not in TERMINAL:
        assert time.monotonic() < deadline, f"{job.name} still {generation_pb2.JobState.Name(job.state)}"
        time.sleep(0.1)
        job = stub.Get(generation_pb2.GetRequest(name=job.name))
    return job


def succeeded(job: generation_pb2.Job) -> generation_pb2.JobResult:
    assert job.state == generation_pb2.JOB_STATE_SUCCEEDED, job.error
    return job.result


def job_error(job: generation_pb2.Job) -> KinoError:
    assert job.HasField("error"), job
    return KinoError.from_status(job.error)


def refused(call, code: grpc.StatusCode, reason: str) -> dict[str, str]:
    """Runs a call that must fail with this code and reason; returns the ErrorInfo metadata."""
    try:
        call()
    except grpc.RpcError as error:
        got_reason, metadata = error_info(error)
        assert (error.code(), got_reason) == (code, reason), error.details()
        return metadata
    raise AssertionError(f"expected {code.name} {reason}, the call succeeded")


def download(stub, video: str) -> bytes:
    return b"".join(c.chunk for c in stub.DownloadVideo(generation_pb2.DownloadVideoRequest(name=video)))


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def scene(size: int, color=(230, 40, 40), at=(0.3, 0.5), radius: float = 0.18) -> np.ndarray:
    """uint8 (size, size, 3): a disc of `color` on black, centred at `at` (fractions of the frame)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    image = np.zeros((size, size, 3), np.uint8)
    inside = (xs - at[0] * size) ** 2 + (ys - at[1] * size) ** 2 <= (radius * size) ** 2
    image[inside] = color
    return image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
