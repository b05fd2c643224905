"""`kino up` without --local: its own Ray cluster in a child process, every built service behind the
proxy, a clean stop on SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from kino.v1 import text_encoder_pb2, text_encoder_pb2_grpc
from services.cluster import routing

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SCRIPT = """
import asyncio, sys
from services.cluster.up import run_cluster
from services.common.settings import load_settings
settings = load_settings(data_dir=sys.argv[1], server={"metrics_port": 0})
asyncio.run(run_cluster(settings, 0, num_cpus=2))
"""


async def test_kino_up_serves_every_built_service_and_stops_on_sigint(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "KINO_LOG_LEVEL": "WARNING"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = await asyncio.to_thread(process.stdout.readline)
            if not line:
                break
            lines.append(line)
            if line.startswith("clients must send"):
                break
        output = "".join(lines)
        assert "Kino is serving on" in output, output
        address = output.split("Kino is serving on ", 1)[1].split()[0]
        assert "services: TextEncoder" in output
        assert "metrics: http://" in output
        async with routing.insecure_channel(address) as channel:
            response = await text_encoder_pb2_grpc.TextEncoderStub(channel).Encode(
                text_encoder_pb2.EncodeRequest(texts=["kino up works"])
            )
        assert response.dim == 384
        process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
