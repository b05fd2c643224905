"""Runners that share one store: whose running jobs are abandoned, and replicas that do not steal
each other's work but can cancel and watch it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from kino.v1 import generation_pb2
from services.gateway.events import JobEvents
from services.gateway.runner import JobRunner
from services.gateway.store import Database, JobStore, now
from tests.gateway.helpers import job_error, wait_for_job
from tests.gateway.scaffold import ScaffoldTextEncoder, SlowDenoiser
from tests.gateway.test_jobs import submit_request


@pytest.fixture
async def runner(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    await db.create_tables()
    yield JobRunner(JobStore(db), pipeline=None, events=JobEvents(), max_running=1, lease_seconds=30)
    await db.close()


def test_which_running_jobs_count_as_abandoned(runner):
    host, fresh, stale = socket.gethostname(), now(), now() - timedelta(seconds=31)
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(finished.stdout)
    assert not runner._abandoned(runner.runner_id, stale)
    assert runner._abandoned(None, None)
    assert runner._abandoned(f"{host}:{dead_pid}:0001", fresh)
    assert not runner._abandoned(f"{host}:{os.getppid()}:0001", fresh)
    assert runner._abandoned(f"{host}:{os.getppid()}:0001", stale)
    assert runner._abandoned(f"{host}:{os.getpid()}:0001", fresh)  # this process, but no runner of it
    assert not runner._abandoned(f"elsewhere:{dead_pid}:0001", fresh)
    assert runner._abandoned(f"elsewhere:{dead_pid}:0001", stale)


async def test_replicas_on_one_store_share_jobs_without_stealing_them(
    tmp_path, start_gateway, start_scaffold
):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=100, step_seconds=0.05)
    )
    first = await start_gateway(backends.address, data_dir=tmp_path)
    job = await first.stub.Submit(submit_request())
    await wait_for_job(first.stub, job.name, lambda j: j.progress.step >= 2)

    second = await start_gateway(backends.address, data_dir=tmp_path)
    running = await second.stub.Get(generation_pb2.GetRequest(name=job.name))
    assert (running.state, running.attempt) == (generation_pb2.JOB_STATE_RUNNING, 1)

    watched = []

    async def watch_from_the_second_replica() -> None:
        async for update in second.stub.Watch(generation_pb2.WatchRequest(name=job.name)):
            watched.append(update)

    watcher = asyncio.create_task(watch_from_the_second_replica())
    await asyncio.sleep(1.5)
    cancelled = await second.stub.Cancel(generation_pb2.CancelRequest(name=job.name))
    assert cancelled.state == generation_pb2.JOB_STATE_CANCELLED
    await asyncio.wait_for(backends.denoiser.cancelled.wait(), 5)
    await asyncio.wait_for(watcher, 5)
    steps = [u.progress.step for u in watched if u.state == generation_pb2.JOB_STATE_RUNNING]
    assert len(set(steps)) >= 2 and steps == sorted(steps)
    assert watched[-1].state == generation_pb2.JOB_STATE_CANCELLED
    await asyncio.sleep(0.5)
    final = await first.stub.Get(generation_pb2.GetRequest(name=job.name))
    assert final.state == generation_pb2.JOB_STATE_CANCELLED and job_error(final).reason == "JOB_CANCELLED"
    assert len(backends.denoiser.requests) == 1
