"""Runs a real `kino up --local` process for tests that need Kino as a separate process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

KINO = [sys.executable, "-m", "services.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_serving(address: str, process: subprocess.Popen, timeout: float = 90) -> None:
    """Polls grpc.health.v1 until the server says SERVING; fails at once if the process died."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"kino up did not become SERVING on {address}")


@contextlib.contextmanager
def kino_up_local(data_dir: Path, **env_overrides: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """(address, process) of a serving `kino up --local`; SIGTERM on exit if it still runs."""
    port = free_port()
    env = {**os.environ, "KINO_SERVER__METRICS_PORT": "-1", "KINO_DATA_DIR": str(data_dir), **env_overrides}
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
        wait_serving(address, process)
        yield address, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
