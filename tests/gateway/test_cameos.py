"""The cameo registry over real gRPC: registration checks, consent policies, owner-only changes, revocation."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import numpy as np

from kino.v1 import common_pb2, generation_pb2
from services.common.tensors import from_proto
from services.gateway.images import MAX_IMAGE_BYTES
from tests.gateway.helpers import (
    encoded_image,
    expect_error,
    job_error,
    mp4_shaped_bytes,
    png_declaring,
    put_video,
    wait_for_job,
    wait_terminal,
)
from tests.gateway.scaffold import RecordingFeedRanker, ScaffoldTextEncoder, SlowDenoiser
from tests.gateway.test_jobs import running_blocker, submit_request

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
PRECONDITION, DENIED = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED
ONLY_ME = generation_pb2.CONSENT_POLICY_ONLY_ME
APPROVED = generation_pb2.CONSENT_POLICY_APPROVED_USERS
EVERYONE = generation_pb2.CONSENT_POLICY_EVERYONE
PNG = encoded_image(120, 80)


def register_request(owner: str = "alice", policy: int = ONLY_ME, data: bytes = PNG, **fields):
    fields.setdefault("display_name", owner.title())
    return generation_pb2.RegisterCameoRequest(
        owner=owner, appearance=common_pb2.Image(data=data), policy=policy, **fields
    )


def with_cameo(cameo: generation_pb2.Cameo, requester: str, **fields) -> generation_pb2.SubmitRequest:
    request = submit_request(requester=requester, **fields)
    request.spec.cameos.append(cameo.name)
    return request


async def test_register_stores_the_image_and_returns_only_its_hash(start_gateway):
    gateway = await start_gateway()
    cameo = await gateway.stub.RegisterCameo(register_request())
    assert cameo.name.startswith("cameos/") and cameo.state == generation_pb2.CAMEO_STATE_ACTIVE
    assert (cameo.owner, cameo.display_name, cameo.policy) == ("alice", "Alice", ONLY_ME)
    assert cameo.appearance_sha256 == hashlib.sha256(PNG).hexdigest()
    stored = gateway.settings.asset_dir / "cameos" / f"{cameo.appearance_sha256}.png"
    assert stored.read_bytes() == PNG
    assert await gateway.stub.GetCameo(generation_pb2.GetCameoRequest(name=cameo.name)) == cameo

    jpeg = encoded_image(64, 64, "JPEG")
    second = await gateway.stub.RegisterCameo(register_request("bob", EVERYONE, jpeg))
    assert (gateway.settings.asset_dir / "cameos" / f"{second.appearance_sha256}.jpg").exists()


async def test_bad_registrations_are_refused_and_store_nothing(start_gateway):
    gateway = await start_gateway()
    register = gateway.stub.RegisterCameo
    cases = [
        (register_request(owner=""), "FIELD_REQUIRED", "owner"),
        (register_request(policy=generation_pb2.CONSENT_POLICY_UNSPECIFIED), "FIELD_REQUIRED", "policy"),
        (register_request(policy=17), "UNKNOWN_ENUM_VALUE", "policy"),
        (generation_pb2.RegisterCameoRequest(owner="alice", policy=ONLY_ME), "FIELD_REQUIRED", "appearance"),
        (register_request(data=b"not an image at all"), "INVALID_MEDIA", "appearance"),
        (register_request(data=PNG[:200]), "INVALID_MEDIA", "appearance"),
        (register_request(data=png_declaring(4097, 10)), "INVALID_MEDIA", "appearance"),
        (register_request(data=png_declaring(60_000, 60_000)), "INVALID_MEDIA", "appearance"),
        (
            register_request(data=b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_IMAGE_BYTES)),
            "INVALID_MEDIA",
            "appearance",
        ),
        (register_request(approved_users=[""]), "FIELD_REQUIRED", "approved_users[0]"),
        (register_request(display_name="x" * 257), "OUT_OF_RANGE", "display_name"),
    ]
    mislabelled = register_request()
    mislabelled.appearance.mime_type = "image/jpeg"
    cases.append((mislabelled, "INVALID_MEDIA", "appearance"))
    for request, reason, field in cases:
        await expect_error(register(request), INVALID, reason, field=field)
    assert not (gateway.settings.asset_dir / "cameos").exists()

    get = gateway.stub.GetCameo
    await expect_error(get(generation_pb2.GetCameoRequest(name="cameos/nope")), NOT_FOUND, "CAMEO_NOT_FOUND")
    await expect_error(
        get(generation_pb2.GetCameoRequest(name="videos/x")), INVALID, "MALFORMED_NAME", field="name"
    )


async def test_consent_policies_decide_who_may_submit(start_gateway):
    gateway = await start_gateway()
    submit = gateway.stub.Submit
    only_me = await gateway.stub.RegisterCameo(register_request())
    approved = await gateway.stub.RegisterCameo(register_request(policy=APPROVED, approved_users=["bob"]))
    everyone = await gateway.stub.RegisterCameo(register_request(policy=EVERYONE))

    assert (await submit(with_cameo(only_me, "alice"))).spec.cameos == [only_me.name]
    await expect_error(
        submit(with_cameo(only_me, "bob")),
        PRECONDITION,
        "CAMEO_CONSENT_MISSING",
        cameo=only_me.name,
        requester="bob",
    )
    await submit(with_cameo(approved, "bob"))
    await expect_error(submit(with_cameo(approved, "carol")), PRECONDITION, "CAMEO_CONSENT_MISSING")
    await submit(with_cameo(everyone, "carol"))
    listed = await gateway.stub.List(generation_pb2.ListRequest())
    assert len(listed.jobs) == 3


async def test_only_the_owner_may_change_consent(start_gateway):
    gateway = await start_gateway()
    cameo = await gateway.stub.RegisterCameo(register_request())
    update = gateway.stub.UpdateCameoConsent
    change = generation_pb2.UpdateCameoConsentRequest(
        name=cameo.name, requester="mallory", policy=APPROVED, approved_users=["carol", "carol"]
    )
    await expect_error(update(change), DENIED, "NOT_OWNER", name=cameo.name)
    change.requester = "alice"
    updated = await update(change)
    assert (updated.policy, list(updated.approved_users)) == (APPROVED, ["carol"])
    assert updated.update_time.ToNanoseconds() >= cameo.update_time.ToNanoseconds()
    await gateway.stub.Submit(with_cameo(cameo, "carol"))

    await expect_error(
        update(generation_pb2.UpdateCameoConsentRequest(name=cameo.name, requester="alice")),
        INVALID,
        "FIELD_REQUIRED",
        field="policy",
    )
    await expect_error(
        update(generation_pb2.UpdateCameoConsentRequest(name=cameo.name, policy=EVERYONE)),
        INVALID,
        "FIELD_REQUIRED",
        field="requester",
    )
    await expect_error(
        update(
            generation_pb2.UpdateCameoConsentRequest(name="cameos/nope", requester="alice", policy=EVERYONE)
        ),
        NOT_FOUND,
        "CAMEO_NOT_FOUND",
    )


async def test_revocation_cancels_jobs_unpublishes_videos_and_blocks_use(start_gateway, start_scaffold):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(),
        denoiser=SlowDenoiser(steps=100, step_seconds=0.05),
        ranker=RecordingFeedRanker(),
    )
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    cameo = await gateway.stub.RegisterCameo(register_request(policy=EVERYONE))
    blocker = await running_blocker(gateway)
    queued = await gateway.stub.Submit(with_cameo(cameo, "bob"))
    unrelated = await gateway.stub.Submit(submit_request("no cameo", requester="bob"))
    finished_video = await put_video(
        gateway, mp4_shaped_bytes(2048), job_id=queued.name.removeprefix("jobs/"), published=True
    )

    revoke = gateway.stub.RevokeCameo
    await expect_error(
        revoke(generation_pb2.RevokeCameoRequest(name=cameo.name, requester="bob")), DENIED, "NOT_OWNER"
    )
    revoked = await revoke(generation_pb2.RevokeCameoRequest(name=cameo.name, requester="alice"))
    assert revoked.state == generation_pb2.CAMEO_STATE_REVOKED
    assert await revoke(generation_pb2.RevokeCameoRequest(name=cameo.name, requester="alice")) == revoked

    job = await gateway.stub.Get(generation_pb2.GetRequest(name=queued.name))
    error = job_error(job)
    assert (job.state, error.reason) == (generation_pb2.JOB_STATE_CANCELLED, "JOB_CANCELLED")
    assert (error.metadata["by"], error.metadata["cameo"]) == ("cameo_revocation", cameo.name)
    assert (
        await gateway.stub.Get(generation_pb2.GetRequest(name=unrelated.name))
    ).state == generation_pb2.JOB_STATE_QUEUED
    video = await gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=finished_video.name))
    assert not video.published
    assert [list(r.videos) for r in backends.ranker.removals] == [[finished_video.name]]  # out of the feed

    await expect_error(
        gateway.stub.Submit(with_cameo(cameo, "alice")), PRECONDITION, "CAMEO_REVOKED", cameo=cameo.name
    )
    await expect_error(
        gateway.stub.UpdateCameoConsent(
            generation_pb2.UpdateCameoConsentRequest(name=cameo.name, requester="alice", policy=EVERYONE)
        ),
        PRECONDITION,
        "CAMEO_REVOKED",
    )
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))


async def test_revoking_stops_a_running_job_that_uses_the_cameo(start_gateway, start_scaffold):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=100, step_seconds=0.05)
    )
    gateway = await start_gateway(backends.address)
    cameo = await gateway.stub.RegisterCameo(register_request())
    job = await gateway.stub.Submit(with_cameo(cameo, "alice"))
    await wait_for_job(gateway.stub, job.name, lambda j: j.progress.step >= 1)
    (sent,) = backends.denoiser.requests
    reference = from_proto(sent.reference_image, field="reference_image", dtype=np.uint8, ndim=3)
    assert reference.shape == (32, 32, 3) and reference.std() > 0

    await gateway.stub.RevokeCameo(generation_pb2.RevokeCameoRequest(name=cameo.name, requester="alice"))
    job = await gateway.stub.Get(generation_pb2.GetRequest(name=job.name))
    assert job.state == generation_pb2.JOB_STATE_CANCELLED
    await asyncio.wait_for(backends.denoiser.cancelled.wait(), 5)


async def test_consent_is_checked_again_when_a_queued_job_starts(start_gateway, start_scaffold):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=100, step_seconds=0.05)
    )
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    cameo = await gateway.stub.RegisterCameo(register_request(policy=EVERYONE))
    blocker = await running_blocker(gateway)
    queued = await gateway.stub.Submit(with_cameo(cameo, "bob"))
    await gateway.stub.UpdateCameoConsent(
        generation_pb2.UpdateCameoConsentRequest(name=cameo.name, requester="alice", policy=ONLY_ME)
    )
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))
    job = await wait_terminal(gateway.stub, queued.name)
    error = job_error(job)
    assert (job.state, error.code, error.reason) == (
        generation_pb2.JOB_STATE_FAILED,
        PRECONDITION,
        "CAMEO_CONSENT_MISSING",
    )
    assert job.progress.stage == generation_pb2.JOB_STAGE_CHECKING
    assert len(backends.denoiser.requests) == 1


async def test_consent_to_a_remixed_videos_cameo_is_checked_again_when_the_remix_starts(
    start_gateway, start_scaffold
):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(), denoiser=SlowDenoiser(steps=100, step_seconds=0.05)
    )
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    cameo = await gateway.stub.RegisterCameo(register_request(policy=EVERYONE))
    blocker = await running_blocker(gateway)
    made_with_it = await gateway.stub.Submit(with_cameo(cameo, "alice"))
    video = await put_video(gateway, mp4_shaped_bytes(2048), job_id=made_with_it.name.removeprefix("jobs/"))
    remix = await gateway.stub.Submit(
        submit_request(
            "now in green",
            requester="bob",
            mode=generation_pb2.GENERATION_MODE_REMIX,
            source_video=video.name,
        )
    )
    await gateway.stub.UpdateCameoConsent(
        generation_pb2.UpdateCameoConsentRequest(name=cameo.name, requester="alice", policy=ONLY_ME)
    )
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=made_with_it.name))
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))
    job = await wait_terminal(gateway.stub, remix.name)
    error = job_error(job)
    assert (job.state, error.reason, error.metadata["source"]) == (
        generation_pb2.JOB_STATE_FAILED,
        "CAMEO_CONSENT_MISSING",
        video.name,
    )


async def test_a_remix_of_a_video_with_a_cameo_carries_its_consent_and_its_revocation(
    start_gateway, start_scaffold
):
    backends = await start_scaffold(
        encoder=ScaffoldTextEncoder(),
        denoiser=SlowDenoiser(steps=100, step_seconds=0.05),
        ranker=RecordingFeedRanker(),
    )
    gateway = await start_gateway(backends.address, max_running_jobs=1)
    cameo = await gateway.stub.RegisterCameo(register_request(policy=ONLY_ME))
    blocker = await running_blocker(gateway)
    made_with_it = await gateway.stub.Submit(with_cameo(cameo, "alice"))
    video = await put_video(
        gateway, mp4_shaped_bytes(2048), job_id=made_with_it.name.removeprefix("jobs/"), published=True
    )
    remix = {"mode": generation_pb2.GENERATION_MODE_REMIX, "source_video": video.name}

    await expect_error(  # bob may not use alice's likeness by remixing a video that shows it
        gateway.stub.Submit(submit_request("now in green", requester="bob", **remix)),
        PRECONDITION,
        "CAMEO_CONSENT_MISSING",
        cameo=cameo.name,
        source=video.name,
    )
    mine = await gateway.stub.Submit(submit_request("now in green", requester="alice", **remix))
    extended = await gateway.stub.Submit(
        submit_request(
            "and on",
            requester="alice",
            mode=generation_pb2.GENERATION_MODE_EXTEND,
            source_video=video.name,
            duration_seconds=1.0,
        )
    )

    await gateway.stub.RevokeCameo(generation_pb2.RevokeCameoRequest(name=cameo.name, requester="alice"))
    for job in (mine, extended):  # revocation reaches what is being made from the video, too
        job = await gateway.stub.Get(generation_pb2.GetRequest(name=job.name))
        assert (job.state, job_error(job).reason) == (generation_pb2.JOB_STATE_CANCELLED, "JOB_CANCELLED")
    await expect_error(
        gateway.stub.Submit(submit_request("again", requester="alice", **remix)),
        PRECONDITION,
        "CAMEO_REVOKED",
        cameo=cameo.name,
        source=video.name,
    )
    unrelated = await put_video(gateway, mp4_shaped_bytes(2048))  # made by a job with no cameo
    await gateway.stub.Submit(
        submit_request(
            "no likeness",
            requester="bob",
            mode=generation_pb2.GENERATION_MODE_REMIX,
            source_video=unrelated.name,
        )
    )
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=blocker.name))


class FeedRankerDownOnce(RecordingFeedRanker):
    """Refuses the first RemoveItems as a restarting ranker would, then records as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def RemoveItems(self, request, context):
        if not self.refused:
            self.refused += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return await super().RemoveItems(request, context)


async def test_a_revocation_the_feed_cannot_take_yet_is_finished_by_a_retry(start_gateway, start_scaffold):
    """The video stays published until the feed has let it go, so revoking again completes the job."""
    backends = await start_scaffold(encoder=ScaffoldTextEncoder(), ranker=FeedRankerDownOnce())
    gateway = await start_gateway(backends.address)
    cameo = await gateway.stub.RegisterCameo(register_request(policy=EVERYONE))
    job = await gateway.stub.Submit(with_cameo(cameo, "bob"))
    await gateway.stub.Cancel(generation_pb2.CancelRequest(name=job.name))
    video = await put_video(
        gateway, mp4_shaped_bytes(2048), job_id=job.name.removeprefix("jobs/"), published=True
    )
    revoke = generation_pb2.RevokeCameoRequest(name=cameo.name, requester="alice")

    await expect_error(
        gateway.stub.RevokeCameo(revoke),
        grpc.StatusCode.UNAVAILABLE,
        "BACKEND_UNAVAILABLE",
        backend="feed_ranker",
    )
    assert (await gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=video.name))).published
    assert (await gateway.stub.GetCameo(generation_pb2.GetCameoRequest(name=cameo.name))).state == (
        generation_pb2.CAMEO_STATE_REVOKED
    )
    await gateway.stub.RevokeCameo(revoke)
    assert [list(r.videos) for r in backends.ranker.removals] == [[video.name]]
    assert not (await gateway.stub.GetVideo(generation_pb2.GetVideoRequest(name=video.name))).published
