"""The job store on both of its databases: SQLite (the embedded default) and the local PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from kino.v1 import common_pb2, generation_pb2
from services.common.errors import KinoError, unavailable
from services.gateway.store import ACTIVE_STATES, Database, JobStore, NewJob, PageCursor, now
from tests.gateway.helpers import encoded_image, expect_error, wait_terminal

QUEUED, RUNNING = generation_pb2.JOB_STATE_QUEUED, generation_pb2.JOB_STATE_RUNNING
RUNNER = "testhost:1:runner"
SUCCEEDED, FAILED, CANCELLED = (
    generation_pb2.JOB_STATE_SUCCEEDED,
    generation_pb2.JOB_STATE_FAILED,
    generation_pb2.JOB_STATE_CANCELLED,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(database_url):
    db = Database(database_url)
    await db.create_tables()
    yield JobStore(db)
    await db.close()


def new_job(
    prompt: str = "a red ball",
    *,
    requester: str = "alice",
    key: str = "",
    priority: int = common_pb2.PRIORITY_INTERACTIVE,
    deadline=None,
    cameos: tuple[str, ...] = (),
) -> NewJob:
    return NewJob(
        requester=requester,
        spec=generation_pb2.GenerationSpec(prompt=prompt, seed=1),
        priority=priority,
        idempotency_key=key,
        publish_to_feed=False,
        deadline=deadline,
        request_sha256=prompt.encode().hex().ljust(64, "0")[:64],
        cameo_ids=cameos,
    )


def job_id(job: generation_pb2.Job) -> str:
    return job.name.removeprefix("jobs/")


async def test_create_get_and_idempotency(store):
    job = await store.create(new_job(key="k1"), max_queued=10)
    assert (job.state, job.attempt, job.idempotency_key) == (QUEUED, 0, "k1")
    assert await store.get(job_id(job)) == job
    assert await store.get("nosuchjob") is None
    assert (await store.create(new_job(key="k1"), max_queued=10)).name == job.name
    with pytest.raises(KinoError) as caught:
        await store.create(new_job("a blue cube", key="k1"), max_queued=10)
    assert (caught.value.code, caught.value.reason) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert caught.value.metadata["job"] == job.name
    without_key = [await store.create(new_job(), max_queued=10) for _ in range(2)]
    assert without_key[0].name != without_key[1].name
    assert (await store.create(new_job(key="k1", requester="bob"), max_queued=10)).name != job.name


async def test_concurrent_submits_with_one_key_make_one_job(store):
    jobs = await asyncio.gather(*(store.create(new_job(key="same"), max_queued=100) for _ in range(8)))
    assert len({job.name for job in jobs}) == 1
    assert await store.count(QUEUED) == 1


async def test_queue_bound(store):
    for i in range(2):
        await store.create(new_job(f"job {i}"), max_queued=2)
    with pytest.raises(KinoError) as caught:
        await store.create(new_job("one too many"), max_queued=2)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL")
    assert caught.value.retry_after_seconds > 0
    assert await store.count(QUEUED) == 2


async def test_claims_interactive_before_batch_then_oldest_first(store):
    batch = await store.create(new_job("batch", priority=common_pb2.PRIORITY_BATCH), max_queued=10)
    older = await store.create(new_job("older"), max_queued=10)
    newer = await store.create(new_job("newer"), max_queued=10)
    claimed = [await store.claim_next(RUNNER) for _ in range(3)]
    assert [job.name for job in claimed] == [older.name, newer.name, batch.name]
    assert all(job.state == RUNNING and job.attempt == 1 and job.HasField("start_time") for job in claimed)
    assert claimed[0].progress.stage == generation_pb2.JOB_STAGE_CHECKING
    assert await store.claim_next(RUNNER) is None


async def test_transitions_are_compare_and_set(store):
    job = await store.create(new_job(), max_queued=10)
    await store.claim_next(RUNNER)
    succeed = store.transition(
        job_id(job), [RUNNING], SUCCEEDED, result=generation_pb2.JobResult(video="videos/v")
    )
    cancel = store.transition(job_id(job), ACTIVE_STATES, CANCELLED)
    outcomes = await asyncio.gather(succeed, cancel)
    winners = [outcome for outcome in outcomes if outcome is not None]
    assert len(winners) == 1
    final = await store.get(job_id(job))
    assert final.state == winners[0].state and final.HasField("end_time")
    for state in (QUEUED, RUNNING, FAILED):
        assert await store.transition(job_id(job), ACTIVE_STATES, state) is None
    assert not await store.update_progress(job_id(job), generation_pb2.JobProgress(stage=3, fraction=0.5))
    assert (await store.get(job_id(job))).state == final.state


async def test_progress_is_written_only_while_running(store):
    job = await store.create(new_job(), max_queued=10)
    progress = generation_pb2.JobProgress(
        stage=generation_pb2.JOB_STAGE_DENOISING, fraction=0.4, step=7, total_steps=20
    )
    assert not await store.update_progress(job_id(job), progress)
    await store.claim_next(RUNNER)
    assert await store.update_progress(job_id(job), progress)
    assert (await store.get(job_id(job))).progress == progress


async def test_recovery_requeues_interrupted_jobs_until_the_attempt_limit(store):
    once = await store.create(new_job("once"), max_queued=10)
    await store.claim_next(RUNNER)
    thrice = await store.create(new_job("thrice"), max_queued=10)
    for _ in range(3):
        claimed = await store.claim_next(RUNNER)
        assert claimed.name == thrice.name
        if claimed.attempt < 3:
            await store.transition(job_id(thrice), [RUNNING], QUEUED)
    waiting = await store.create(new_job("waiting"), max_queued=10)

    def interrupted(name: str, attempt: int):
        return unavailable("JOB_INTERRUPTED", f"{name} interrupted", name=name, attempt=attempt).to_status()

    def everyone_is_gone(runner_id, heartbeat_time):
        return True

    requeued, failed = await store.recover_interrupted(
        max_attempts=3, interrupted_error=interrupted, abandoned=everyone_is_gone
    )
    assert [job.name for job in requeued] == [once.name] and requeued[0].state == QUEUED
    assert requeued[0].attempt == 1 and not requeued[0].HasField("progress")
    assert [job.name for job in failed] == [thrice.name]
    error = KinoError.from_status(failed[0].error)
    assert (failed[0].state, error.code, error.reason) == (
        FAILED,
        grpc.StatusCode.UNAVAILABLE,
        "JOB_INTERRUPTED",
    )
    assert error.metadata == {"name": thrice.name, "attempt": "3"}
    assert (await store.get(job_id(waiting))).state == QUEUED
    assert (await store.claim_next(RUNNER)).attempt == 2


async def test_recovery_leaves_the_jobs_of_live_runners_alone(store):
    mine = await store.create(new_job("mine"), max_queued=10)
    await store.claim_next("live:1:a")
    theirs = await store.create(new_job("theirs"), max_queued=10)
    await store.claim_next("gone:2:b")
    seen = []

    def only_gone(runner_id, heartbeat_time):
        seen.append((runner_id, heartbeat_time is not None))
        return runner_id.startswith("gone")

    requeued, failed = await store.recover_interrupted(
        max_attempts=3, interrupted_error=lambda name, attempt: None, abandoned=only_gone
    )
    assert sorted(seen) == [("gone:2:b", True), ("live:1:a", True)]
    assert [job.name for job in requeued] == [theirs.name] and failed == []
    assert (await store.get(job_id(mine))).state == RUNNING
    assert await store.heartbeat("live:1:a") == 1 and await store.heartbeat("gone:2:b") == 0


async def test_list_uses_keyset_pages_newest_first(store):
    names = [
        (await store.create(new_job(f"job {i}", requester="ab"[i % 2]), max_queued=100)).name
        for i in range(7)
    ]
    seen, cursor = [], None
    while True:
        page = await store.list(requester="", state=0, limit=3, after=cursor)
        seen += [job.name for job in page]
        if len(page) < 3:
            break
        last = page[-1]
        cursor = PageCursor(last.create_time.ToDatetime().replace(tzinfo=now().tzinfo), job_id(last))
    assert seen == names[::-1]
    only_b = await store.list(requester="b", state=0, limit=10, after=None)
    assert [job.name for job in only_b] == names[1::2][::-1]
    assert await store.list(requester="", state=RUNNING, limit=10, after=None) == []


async def test_overdue_queued_jobs_fail(store):
    overdue = await store.create(new_job("late", deadline=now() - timedelta(seconds=1)), max_queued=10)
    on_time = await store.create(new_job("on time", deadline=now() + timedelta(hours=1)), max_queued=10)
    no_deadline = await store.create(new_job("whenever"), max_queued=10)
    failed = await store.fail_overdue(now(), lambda name: unavailable("DEADLINE_PASSED", name).to_status())
    assert [job.name for job in failed] == [overdue.name] and failed[0].state == FAILED
    assert (await store.get(job_id(on_time))).state == QUEUED
    assert (await store.get(job_id(no_deadline))).state == QUEUED


async def test_jobs_using_a_cameo(store):
    uses = await store.create(new_job("with cameo", cameos=("c1",)), max_queued=10)
    await store.create(new_job("without"), max_queued=10)
    done = await store.create(new_job("done with cameo", cameos=("c1",)), max_queued=10)
    await store.transition(job_id(done), ACTIVE_STATES, CANCELLED)
    assert await store.active_jobs_using_cameo("c1") == [job_id(uses)]
    assert await store.active_jobs_using_cameo("c2") == []


@pytest.mark.postgres
async def test_the_generation_service_on_postgresql(start_gateway, postgres_url):
    gateway = await start_gateway(database_url=postgres_url)
    request = generation_pb2.SubmitRequest(
        requester="alice", idempotency_key="pg-1", spec=generation_pb2.GenerationSpec(prompt="a red ball")
    )
    jobs = await asyncio.gather(*(gateway.stub.Submit(request) for _ in range(4)))
    assert len({job.name for job in jobs}) == 1
    job = await wait_terminal(gateway.stub, jobs[0].name)
    assert job.state == FAILED and job.attempt == 1
    request.spec.prompt = "a blue cube"
    await expect_error(gateway.stub.Submit(request), grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    listed = await gateway.stub.List(generation_pb2.ListRequest(requester="alice"))
    assert [j.name for j in listed.jobs] == [job.name]


async def test_names_and_keys_with_control_characters_are_refused_with_a_reason_on_either_store(
    start_gateway, database_url
):
    """PostgreSQL text cannot hold NUL at all: a user name, key or display name carrying a control
    character is the caller's mistake, refused with the field before the store sees it."""
    gateway = await start_gateway(database_url=database_url)
    stub = gateway.stub
    appearance = common_pb2.Image(data=encoded_image(32, 32))

    def submit(requester: str = "alice", idempotency_key: str = ""):
        spec = generation_pb2.GenerationSpec(prompt="a red ball")
        return stub.Submit(
            generation_pb2.SubmitRequest(spec=spec, requester=requester, idempotency_key=idempotency_key)
        )

    def register(owner: str = "bob", display_name: str = "", approved_users=()):
        return stub.RegisterCameo(
            generation_pb2.RegisterCameoRequest(
                owner=owner,
                display_name=display_name,
                appearance=appearance,
                policy=generation_pb2.CONSENT_POLICY_APPROVED_USERS,
                approved_users=approved_users,
            )
        )

    calls = [
        ("requester", lambda: submit(requester="al\x00ice")),
        ("idempotency_key", lambda: submit(idempotency_key="key\x00")),
        ("requester", lambda: stub.List(generation_pb2.ListRequest(requester="al\x00ice"))),
        ("owner", lambda: register(owner="b\x00b")),
        ("display_name", lambda: register(display_name="Bob\x00")),
        ("approved_users[0]", lambda: register(approved_users=["carol\n"])),
    ]
    for field, call in calls:
        await expect_error(call(), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_NAME", field=field)
    assert list((await stub.List(generation_pb2.ListRequest())).jobs) == []
