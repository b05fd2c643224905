"""A real `kino up --local` with a tiny video model of random weights: every mode's plumbing end to end.

The frames the tiny model makes mean nothing; what these tests check is that each mode reaches the
model with the right conditioning and comes back as a signed, watermarked MP4 with sound, and that
bad requests are refused with the right code and reason. What the shipped model does with the same
requests is measured by `python -m services.gateway.evaluate_modes` (docs/modes/REPORT.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kino.v1 import generation_pb2_grpc
from tests.denoiser.engine.helpers import save_tiny_weights
from tests.test_cli import _free_port

KINO = [sys.executable, "-m", "services.cli"]


@dataclass
class RunningKino:
    address: str
    channel: grpc.Channel
    stub: generation_pb2_grpc.GenerationStub


def _wait_serving(address: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"kino up did not become SERVING on {address}")


@pytest.fixture(scope="package")
def kino(tmp_path_factory):
    weights = save_tiny_weights(tmp_path_factory.mktemp("tiny-weights"))
    data_dir = tmp_path_factory.mktemp("kino-modes")
    port = _free_port()
    env = {
        **os.environ,
        "KINO_SERVER__METRICS_PORT": "-1",
        "KINO_DATA_DIR": str(data_dir),
        "KINO_DENOISER__WEIGHTS_DIR": str(weights),
    }
    env.pop("KINO_TARGET", None)
    process = subprocess.Popen(
        [*KINO, "up", "--local", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        _wait_serving(address, process)
        with grpc.insecure_channel(address) as channel:
            yield RunningKino(address, channel, generation_pb2_grpc.GenerationStub(channel))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
