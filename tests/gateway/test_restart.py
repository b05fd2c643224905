"""A job survives the gateway: killed with SIGKILL mid-run, the gateway comes back on the same SQLite
file and the job is run again (attempt 2) to a terminal state; stopped gracefully, the job goes back to
the queue and is run again by the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from kino.v1 import generation_pb2, generation_pb2_grpc
from services.gateway.store import Database, JobStore
from tests.gateway.helpers import job_error, wait_for_job, wait_terminal
from tests.gateway.scaffold import ScaffoldTextEncoder, SlowDenoiser

REPO_ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess:
    """`python -m tests.gateway.serve_gateway` in a child process."""

    def __init__(self, data_dir: Path, services_target: str) -> None:
        self.port_file = data_dir / f"port-{os.urandom(4).hex()}"
        self.log = (data_dir / "gateway.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.gateway.serve_gateway",
                str(data_dir),
                services_target,
                str(self.port_file),
            ],
            cwd=REPO_ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def address(self, timeout: float = 30.0) -> str:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"the gateway exited with {self.process.returncode}")
            if loop.time() > end:
                raise AssertionError("the gateway did not start in time")
            await asyncio.sleep(0.05)
        return f"127.0.0.1:{self.port_file.read_text()}"

    def signal(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code

    def ensure_stopped(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def gateway_processes():
    started: list[GatewayProcess] = []

    def start(data_dir: Path, services_target: str) -> GatewayProcess:
        process = GatewayProcess(data_dir, services_target)
        started.append(process)
        return process

    yield start
    for process in started:
        process.ensure_stopped()


async def stored_job(data_dir: Path, name: str) -> generation_pb2.Job:
    """The job as the database file holds it, read while no gateway runs."""
    db = Database(f"sqlite:///{data_dir / 'jobs.db'}")
    try:
        return await JobStore(db).get(name.removeprefix("jobs/"))
    finally:
        await db.close()


async def test_a_job_survives_a_killed_gateway(tmp_path, start_scaffold, gateway_processes):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=40, step_seconds=0.03)
    )
    first = gateway_processes(tmp_path, backends.address)
    async with grpc.aio.insecure_channel(await first.address()) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        job = await stub.Submit(
            generation_pb2.SubmitRequest(
                requester="alice", spec=generation_pb2.GenerationSpec(prompt="a red ball")
            )
        )
        await wait_for_job(stub, job.name, lambda j: j.progress.step >= 3)
    assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    await asyncio.wait_for(backends.denoiser.cancelled.wait(), 10)

    orphan = await stored_job(tmp_path, job.name)
    assert (orphan.state, orphan.attempt) == (generation_pb2.JOB_STATE_RUNNING, 1)

    second = gateway_processes(tmp_path, backends.address)
    async with grpc.aio.insecure_channel(await second.address()) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        final = await wait_terminal(stub, job.name, timeout=30)
    assert final.attempt == 2 and final.state == generation_pb2.JOB_STATE_FAILED
    # The scaffold denoiser refuses at the end of its run, as an undeployed model would: the job ran
    # to the end of its second attempt instead of being lost or stuck.
    assert job_error(final).reason == "BACKEND_UNAVAILABLE"
    assert len(backends.denoiser.requests) == 2
    assert second.signal(signal.SIGTERM) == 0


async def test_a_graceful_stop_puts_running_jobs_back_in_the_queue(
    tmp_path, start_scaffold, gateway_processes
):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=40, step_seconds=0.03)
    )
    first = gateway_processes(tmp_path, backends.address)
    async with grpc.aio.insecure_channel(await first.address()) as channel:
        stub = generation_pb2_grpc.GenerationStub(channel)
        job = await stub.Submit(
            generation_pb2.SubmitRequest(
                requester="alice", spec=generation_pb2.GenerationSpec(prompt="a red ball")
            )
        )
        await wait_for_job(stub, job.name, lambda j: j.progress.step >= 3)
    assert first.signal(signal.SIGTERM) == 0
    parked = await stored_job(tmp_path, job.name)
    assert (parked.state, parked.attempt) == (generation_pb2.JOB_STATE_QUEUED, 1)
    assert not parked.HasField("progress")

    second = gateway_processes(tmp_path, backends.address)
    async with grpc.aio.insecure_channel(await second.address()) as channel:
        final = await wait_terminal(generation_pb2_grpc.GenerationStub(channel), job.name, timeout=30)
    assert (final.state, final.attempt) == (generation_pb2.JOB_STATE_FAILED, 2)
    assert second.signal(signal.SIGTERM) == 0
