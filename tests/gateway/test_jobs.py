"""Jobs over real gRPC: Submit, Get, Watch, Cancel, List, idempotency, queue bound, deadlines, priorities."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from kino.v1 import common_pb2, generation_pb2, generation_pb2_grpc
from services.common.errors import KinoError
from services.common.server import KinoServer
from services.gateway.paging import MAX_PAGE_SIZE, page_size
from services.gateway.servicer import registration
from services.text_encoder.servicer import registration as text_encoder_registration
from tests.gateway.conftest import gateway_settings
from tests.gateway.helpers import expect_error, job_error, state_name, wait_for_job, wait_terminal
from tests.gateway.scaffold import ScaffoldTextEncoder, SlowDenoiser

QUEUED, RUNNING = generation_pb2.JOB_STATE_QUEUED, generation_pb2.JOB_STATE_RUNNING
FAILED, CANCELLED = generation_pb2.JOB_STATE_FAILED, generation_pb2.JOB_STATE_CANCELLED
INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


def submit_request(
    prompt: str = "a red ball bounces", requester: str = "alice", **fields
) -> generation_pb2.SubmitRequest:
    request = generation_pb2.SubmitRequest(
        requester=requester, spec=generation_pb2.GenerationSpec(prompt=prompt)
    )
    for key, value in fields.items():
        if key in generation_pb2.GenerationSpec.DESCRIPTOR.fields_by_name:
            setattr(request.spec, key, value)
        elif isinstance(value, timestamp_pb2.Timestamp):
            request.deadline.CopyFrom(value)
        else:
            setattr(request, key, value)
    return request


def in_seconds(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(seconds=seconds))
    return stamp


async def slow_backends(start_scaffold, **denoiser):
    return await start_scaffold(encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(**denoiser))


async def running_blocker(gateway, steps: int = 100) -> generation_pb2.Job:
    """A job that holds the only running slot until cancelled."""
    job = await gateway.stub.Submit(submit_request("the blocker", requester="blocker", num_steps=steps))
    return await wait_for_job(
        gateway.stub, job.name, lambda j: j.progress.stage == generation_pb2.JOB_STAGE_DENOISING
    )


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_get_and_unknown_or_malformed_names(start_gateway):
    gateway = await start_gateway()
    job = await gateway.stub.Submit(submit_request())
    assert job.name.startswith("jobs/") and job.state == QUEUED and job.requester == "alice"
    got = await gateway.stub.Get(generation_pb2.GetRequest(name=job.name))
    assert (got.name, got.spec.prompt, got.spec.seed) == (job.name, "a red ball bounces", job.spec.seed)

    stub = gateway.stub
    for call in (
        lambda name: stub.Get(generation_pb2.GetRequest(name=name)),
        lambda name: stub.Cancel(generation_pb2.CancelRequest(name=name)),
        lambda name: anext(aiter(stub.Watch(generation_pb2.WatchRequest(name=name)))),
    ):
        await expect_error(call("jobs/doesnotexist"), NOT_FOUND, "JOB_NOT_FOUND", name="jobs/doesnotexist")
        await expect_error(call("videos/abc"), INVALID, "MALFORMED_NAME", field="name")
        await expect_error(call("jobs/../../etc"), INVALID, "MALFORMED_NAME", field="name")
        await expect_error(call(""), INVALID, "FIELD_REQUIRED", field="name")


async def test_without_backends_a_job_fails_with_backend_unavailable_and_counts(start_gateway):
    gateway = await start_gateway()
    failed_before = counter("kino_gateway_jobs_total", state="failed")
    checking_before = counter("kino_gateway_stage_seconds_count", stage="checking")
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(submit_request())).name)
    error = job_error(job)
    assert (job.state, error.code, error.reason) == (
        FAILED,
        grpc.StatusCode.UNAVAILABLE,
        "BACKEND_UNAVAILABLE",
    )
    assert error.metadata["backend"] == "text_encoder"
    assert job.attempt == 1 and job.HasField("end_time") and not job.HasField("result")
    assert counter("kino_gateway_jobs_total", state="failed") == failed_before + 1
    assert counter("kino_gateway_stage_seconds_count", stage="checking") == checking_before + 1
    assert counter("kino_gateway_job_duration_seconds_count") >= 1
    assert REGISTRY.get_sample_value("kino_gateway_jobs_queued") is not None


async def test_product_path_without_a_video_model_fails_backend_unavailable(tmp_path):
    """The real TextEncoder and the gateway on one server, as `kino up --local` runs them: with no
    video model deployed the job fails with BACKEND_UNAVAILABLE naming the denoiser, and no video exists."""
    settings = gateway_settings(tmp_path)
    server = KinoServer(settings.server)
    settings = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"services_target": server.address})}
    )
    server.add(text_encoder_registration(settings))
    server.add(registration(settings))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = generation_pb2_grpc.GenerationStub(channel)
            job = await wait_terminal(stub, (await stub.Submit(submit_request())).name, timeout=60)
    finally:
        await server.stop(0)
    error = job_error(job)
    assert (job.state, error.reason, error.metadata["backend"]) == (FAILED, "BACKEND_UNAVAILABLE", "denoiser")
    assert job.progress.stage == generation_pb2.JOB_STAGE_DENOISING
    assert not list(settings.asset_dir.rglob("*.mp4"))


async def test_idempotency_key_returns_the_same_job(start_gateway):
    gateway = await start_gateway()
    request = submit_request(idempotency_key="create-button-1")
    first = await gateway.stub.Submit(request)
    again = await gateway.stub.Submit(request)
    assert again.name == first.name and again.spec.seed == first.spec.seed

    racing = submit_request("a blue cube", idempotency_key="create-button-2")
    racers = await asyncio.gather(*(gateway.stub.Submit(racing) for _ in range(8)))
    assert len({job.name for job in racers}) == 1

    other_user = await gateway.stub.Submit(submit_request(requester="bob", idempotency_key="create-button-1"))
    assert other_user.name != first.name

    changed = submit_request("a green cone", idempotency_key="create-button-1")
    await expect_error(
        gateway.stub.Submit(changed),
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
        idempotency_key="create-button-1",
        job=first.name,
    )
    listed = await gateway.stub.List(generation_pb2.ListRequest())
    assert len(listed.jobs) == 3


async def test_list_pages_newest_first_with_filters(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    blocker = await running_blocker(gateway)
    alice = [(await gateway.stub.Submit(submit_request(f"alice {i}"))).name for i in range(25)]
    bob = [(await gateway.stub.Submit(submit_request(f"bob {i}", requester="bob"))).name for i in range(3)]
    for name in alice[:4]:
        await gateway.stub.Cancel(generation_pb2.CancelRequest(name=name))

    pages, token = [], ""
    while True:
        response = await gateway.stub.List(
            generation_pb2.ListRequest(requester="alice", page_size=10, page_token=token)
        )
        pages.append([job.name for job in response.jobs])
        token = response.next_page_token
        if not token:
            break
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [name for page in pages for name in page] == alice[::-1]

    everyone = await gateway.stub.List(generation_pb2.ListRequest())
    assert len(everyone.jobs) == 20 and everyone.next_page_token
    assert [job.name for job in everyone.jobs][:3] == bob[::-1]
    times = [job.create_time.ToNanoseconds() for job in everyone.jobs]
    assert times == sorted(times, reverse=True)

    cancelled = await gateway.stub.List(generation_pb2.ListRequest(requester="alice", state=CANCELLED))
    assert {job.name for job in cancelled.jobs} == set(alice[:4])
    running = await gateway.stub.List(generation_pb2.ListRequest(state=RUNNING))
    assert [job.name for job in running.jobs] == [blocker.name]
    assert (await gateway.stub.List(generation_pb2.ListRequest(requester="carol"))).jobs == []
    capped = await gateway.stub.List(generation_pb2.ListRequest(page_size=1000))
    assert len(capped.jobs) == 29 and not capped.next_page_token
    assert page_size(1000) == MAX_PAGE_SIZE and page_size(0) == 20


async def test_list_rejects_bad_arguments(start_gateway):
    gateway = await start_gateway()
    for i in range(3):
        await gateway.stub.Submit(submit_request(f"job {i}"))
    first = await gateway.stub.List(generation_pb2.ListRequest(requester="alice", page_size=1))
    assert first.next_page_token
    list_ = gateway.stub.List
    await expect_error(
        list_(generation_pb2.ListRequest(page_size=-1)), INVALID, "OUT_OF_RANGE", field="page_size"
    )
    await expect_error(
        list_(generation_pb2.ListRequest(state=42)), INVALID, "UNKNOWN_ENUM_VALUE", field="state"
    )
    for token in ("not-a-token", "eyJ0IjoxfQ", "%%%", first.next_page_token[:-3]):
        await expect_error(
            list_(generation_pb2.ListRequest(page_token=token, requester="alice")),
            INVALID,
            "MALFORMED_NAME",
            field="page_token",
        )
    await expect_error(
        list_(generation_pb2.ListRequest(requester="bob", page_token=first.next_page_token)),
        INVALID,
        "MALFORMED_NAME",
        field="page_token",
    )


async def test_watch_streams_every_state_change_in_order_and_ends(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=20, step_seconds=0.02, preview_every=5)
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    blocker = await running_blocker(gateway)
    job = await gateway.stub.Submit(submit_request())
    stream = gateway.stub.Watch(generation_pb2.WatchRequest(name=job.name, include_previews=True))
    updates = [await anext(aiter(stream))]
    assert updates[0].state == QUEUED
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))
    async for update in stream:
        updates.append(update)

    states = [state_name(u.state) for u in updates]
    assert [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]] == [
        "QUEUED",
        "RUNNING",
        "FAILED",
    ]
    running = [u for u in updates if u.state == RUNNING]
    stages = [u.progress.stage for u in running]
    assert stages == sorted(stages)
    assert {
        generation_pb2.JOB_STAGE_CHECKING,
        generation_pb2.JOB_STAGE_ENCODING,
        generation_pb2.JOB_STAGE_DENOISING,
    } <= set(stages)
    fractions = [u.progress.fraction for u in running]
    assert fractions == sorted(fractions) and 0.05 < fractions[-1] <= 0.85
    steps = [u.progress.step for u in running if u.progress.stage == generation_pb2.JOB_STAGE_DENOISING]
    assert steps == sorted(steps) and len(set(steps)) >= 5 and steps[-1] == 20
    assert all(u.progress.total_steps == 20 for u in running if u.progress.step)
    assert any(u.progress.HasField("preview") for u in running)
    final = updates[-1]
    assert final.state == FAILED and job_error(final).reason == "BACKEND_UNAVAILABLE"
    assert final.attempt == 1
    # Get agrees with the end of the stream; the stored progress carries no preview.
    stored = await gateway.stub.Get(generation_pb2.GetRequest(name=job.name))
    assert stored.state == FAILED and not stored.progress.HasField("preview")


async def test_watchers_with_and_without_previews_and_on_a_finished_job(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=10, step_seconds=0.02, preview_every=2)
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    blocker = await running_blocker(gateway)
    job = await gateway.stub.Submit(submit_request())

    async def watch(include_previews: bool) -> list[generation_pb2.Job]:
        request = generation_pb2.WatchRequest(name=job.name, include_previews=include_previews)
        return [update async for update in gateway.stub.Watch(request)]

    watchers = asyncio.gather(watch(False), watch(True))
    await asyncio.sleep(0.2)
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))
    plain, with_previews = await watchers
    assert plain[-1].state == with_previews[-1].state == FAILED
    assert not any(u.progress.HasField("preview") for u in plain)
    assert any(u.progress.HasField("preview") for u in with_previews)
    again = [u async for u in gateway.stub.Watch(generation_pb2.WatchRequest(name=job.name))]
    assert len(again) == 1 and again[0] == plain[-1]


async def test_cancel_a_queued_job(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    blocker = await running_blocker(gateway)
    queued = await gateway.stub.Submit(submit_request())
    cancelled = await gateway.stub.Cancel(generation_pb2.CancelRequest(name=queued.name))
    error = job_error(cancelled)
    assert (cancelled.state, error.code, error.reason) == (
        CANCELLED,
        grpc.StatusCode.CANCELLED,
        "JOB_CANCELLED",
    )
    assert error.metadata["by"] == "requester" and cancelled.HasField("end_time")
    again = await gateway.stub.Cancel(generation_pb2.CancelRequest(name=queued.name))
    assert again == cancelled
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))
    await asyncio.sleep(0.3)
    assert len(backends.denoiser.requests) == 1
    assert (await gateway.stub.Get(generation_pb2.GetRequest(name=queued.name))).attempt == 0


async def test_cancel_a_running_job_stops_the_denoiser(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address)
    job = await gateway.stub.Submit(submit_request())
    await wait_for_job(gateway.stub, job.name, lambda j: j.progress.step >= 2)
    cancelled = await gateway.stub.Cancel(generation_pb2.CancelRequest(name=job.name))
    assert cancelled.state == CANCELLED and job_error(cancelled).reason == "JOB_CANCELLED"
    await asyncio.wait_for(backends.denoiser.cancelled.wait(), 5)
    await asyncio.sleep(0.3)
    final = await gateway.stub.Get(generation_pb2.GetRequest(name=job.name))
    assert final.state == CANCELLED and job_error(final).reason == "JOB_CANCELLED"


async def test_cancel_of_a_finished_job_is_refused(start_gateway):
    gateway = await start_gateway()
    job = await wait_terminal(gateway.stub, (await gateway.stub.Submit(submit_request())).name)
    assert job.state == FAILED
    await expect_error(
        gateway.stub.Cancel(generation_pb2.CancelRequest(name=job.name)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "JOB_ALREADY_FINISHED",
        name=job.name,
        state="JOB_STATE_FAILED",
    )
    assert (await gateway.stub.Get(generation_pb2.GetRequest(name=job.name))) == job


async def test_full_queue_is_resource_exhausted_with_retry_info(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address, max_running_jobs=1, max_queued_jobs=1)
    await running_blocker(gateway)
    waiting = await gateway.stub.Submit(submit_request("second", idempotency_key="second"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Submit(submit_request("third"))
    error = KinoError.from_status(rpc_status.from_call(caught.value))
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL")
    assert error.retry_after_seconds and error.retry_after_seconds > 0
    assert error.metadata == {"queued": "1", "max": "1"}
    # A retry of an accepted Submit is still answered: it creates nothing.
    assert (
        await gateway.stub.Submit(submit_request("second", idempotency_key="second"))
    ).name == waiting.name


async def test_deadline_passing_in_the_queue_fails_without_running(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    await running_blocker(gateway)
    job = await gateway.stub.Submit(submit_request(deadline=in_seconds(0.5)))
    assert job.HasField("deadline")
    job = await wait_terminal(gateway.stub, job.name, timeout=5)
    error = job_error(job)
    assert (job.state, error.code, error.reason) == (
        FAILED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "DEADLINE_PASSED",
    )
    assert job.attempt == 0 and not job.HasField("start_time")


async def test_deadline_passing_while_running_fails_and_stops_the_work(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address)
    job = await gateway.stub.Submit(submit_request(deadline=in_seconds(2.0)))
    await asyncio.wait_for(backends.denoiser.started.wait(), 5)
    job = await wait_terminal(gateway.stub, job.name, timeout=10)
    error = job_error(job)
    assert (job.state, error.code, error.reason) == (
        FAILED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "DEADLINE_PASSED",
    )
    assert job.HasField("start_time") and job.progress.stage == generation_pb2.JOB_STAGE_DENOISING
    await asyncio.wait_for(backends.denoiser.cancelled.wait(), 5)


async def test_interactive_jobs_start_before_batch_jobs(start_gateway, start_scaffold):
    backends = await slow_backends(start_scaffold, steps=100, step_seconds=0.05)
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    blocker = await running_blocker(gateway)
    batch = await gateway.stub.Submit(
        submit_request("batch", requester="backfill", priority=common_pb2.PRIORITY_BATCH)
    )
    interactive = await gateway.stub.Submit(submit_request("interactive", requester="person"))
    assert interactive.priority == common_pb2.PRIORITY_INTERACTIVE
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))
    started = await wait_for_job(gateway.stub, interactive.name, lambda j: j.state != QUEUED)
    assert started.state == RUNNING
    assert (await gateway.stub.Get(generation_pb2.GetRequest(name=batch.name))).state == QUEUED
    assert [r.tenant for r in backends.denoiser.requests[1:]] in ([], ["person"])
