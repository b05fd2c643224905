"""The Generation service without its transport: proto messages in, proto messages out.

The grpc.aio servicer (and later the Ray Serve deployment) only delegate here. Submit checks
everything that can be checked before it writes (request, deadline, source video, cameo consent,
queue room) and then writes the job in one transaction, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from kino.v1 import generation_pb2, ranker_pb2
from services.common.errors import failed_precondition, invalid_argument, not_found, require_known_enum
from services.common.limits import MAX_FEED_ITEMS_PER_CALL
from services.common.settings import Settings
from services.common.text import check_no_control_characters
from services.gateway.cameos import CameoRegistry
from services.gateway.clients import ServiceClients
from services.gateway.events import JobEvents
from services.gateway.names import parse_name, video_name
from services.gateway.packaging import Packager, SigningKeys
from services.gateway.paging import decode_page_token, encode_page_token, page_size
from services.gateway.pipeline import Pipeline
from services.gateway.provenance import verify_file
from services.gateway.runner import JobRunner
from services.gateway.store import TERMINAL_STATES, Database, JobStore, NewJob, now
from services.gateway.validation import SubmitLimits, check_deadline, check_source, validate_submit
from services.gateway.videos import MP4_MIME_TYPE, VideoStore

# A Watch with no news re-reads the store this often, so it also follows jobs that another gateway
# replica runs or cancels.
WATCH_RESYNC_SECONDS = 1.0


class GenerationCore:
    def __init__(self, settings: Settings, clients: ServiceClients) -> None:
        self.limits = SubmitLimits.from_settings(settings.gateway)
        self.max_queued = settings.gateway.max_queued_jobs
        self.db = Database(settings.database_url)
        self.jobs = JobStore(self.db)
        self.cameos = CameoRegistry(self.db, settings.asset_dir)
        self.videos = VideoStore(self.db, settings.asset_dir)
        self.events = JobEvents()
        self.clients = clients
        self.signing_keys = SigningKeys(settings)
        pipeline = Pipeline(
            clients,
            self.cameos,
            self.videos,
            Packager(self.videos, self.signing_keys),
            seam_redraws=settings.gateway.seam_redraws,
        )
        self.runner = JobRunner(
            self.jobs, pipeline, self.events, max_running=settings.gateway.max_running_jobs
        )

    async def start(self) -> None:
        """Creates the tables, recovers interrupted jobs and starts running queued ones."""
        await self.db.create_tables()
        await self.runner.start()

    async def close(self) -> None:
        await self.runner.stop()
        await self.clients.close()
        await self.db.close()

    # ---- jobs ---------------------------------------------------------------------------------------

    async def submit(self, request: generation_pb2.SubmitRequest) -> generation_pb2.Job:
        # Off the event loop: a first frame is decoded in full.
        valid = await asyncio.to_thread(validate_submit, request, self.limits)
        normalized = valid.request
        fingerprint = _fingerprint(request)
        existing = await self.jobs.find_idempotent(
            normalized.requester, normalized.idempotency_key, fingerprint
        )
        if existing is not None:
            return existing
        check_deadline(valid.deadline, now())
        cameo_ids = valid.cameo_ids
        if valid.source_video_id is not None:
            source = await self.videos.get(normalized.spec.source_video, "spec.source_video")
            check_source(normalized.spec, source, self.limits)
        await self.cameos.check_use(cameo_ids, normalized.requester)
        if valid.source_video_id is not None:
            # A remix or an extension carries its source's likenesses on: their consent is needed, and
            # recording them with the job lets a revocation cancel or unpublish what is made from it.
            cameo_ids += await self.cameos.check_carried(
                valid.source_video_id, source.name, cameo_ids, normalized.requester
            )
        job = await self.jobs.create(
            NewJob(
                requester=normalized.requester,
                spec=normalized.spec,
                priority=normalized.priority,
                idempotency_key=normalized.idempotency_key,
                publish_to_feed=normalized.publish_to_feed,
                deadline=valid.deadline,
                request_sha256=fingerprint,
                cameo_ids=cameo_ids,
            ),
            max_queued=self.max_queued,
        )
        self.runner.wake()
        return job

    async def get(self, request: generation_pb2.GetRequest) -> generation_pb2.Job:
        return await self._job(parse_name(request.name, "jobs", "name"))

    async def watch(self, request: generation_pb2.WatchRequest) -> AsyncIterator[generation_pb2.Job]:
        """The job now, then every change, ending after a terminal state.

        Subscribing before the first read means no change can fall between the read and the stream.
        """
        job_id = parse_name(request.name, "jobs", "name")
        with self.events.subscribe(f"jobs/{job_id}") as subscription:
            last = await self._job(job_id)
            if last.state == generation_pb2.JOB_STATE_RUNNING:
                last = self.runner.live(last.name) or last
            yield last
            while last.state not in TERMINAL_STATES:
                update = await subscription.next(WATCH_RESYNC_SECONDS)
                if update is None:
                    update = await self._job(job_id)
                if _is_news(update, last):
                    yield update
                    last = update

    async def cancel(self, request: generation_pb2.CancelRequest) -> generation_pb2.Job:
        job_id = parse_name(request.name, "jobs", "name")
        job = await self.runner.cancel(job_id, by="requester")
        if job is not None:
            return job
        current = await self._job(job_id)
        if current.state == generation_pb2.JOB_STATE_CANCELLED:
            return current
        state = generation_pb2.JobState.Name(current.state)
        raise failed_precondition(
            "JOB_ALREADY_FINISHED", f"{current.name} already ended ({state})", name=current.name, state=state
        )

    async def list(self, request: generation_pb2.ListRequest) -> generation_pb2.ListResponse:
        require_known_enum("state", generation_pb2.JobState, request.state)
        check_no_control_characters("requester", request.requester)
        size = page_size(request.page_size)
        cursor = decode_page_token(request)
        jobs = await self.jobs.list(
            requester=request.requester, state=request.state, limit=size + 1, after=cursor
        )
        response = generation_pb2.ListResponse(jobs=jobs[:size])
        if len(jobs) > size:
            response.next_page_token = encode_page_token(jobs[size - 1], request)
        return response

    async def _job(self, job_id: str) -> generation_pb2.Job:
        job = await self.jobs.get(job_id)
        if job is None:
            name = f"jobs/{job_id}"
            raise not_found("JOB_NOT_FOUND", f"{name} does not exist", name=name)
        return job

    # ---- cameos -------------------------------------------------------------------------------------

    async def register_cameo(self, request: generation_pb2.RegisterCameoRequest) -> generation_pb2.Cameo:
        return await self.cameos.register(request)

    async def get_cameo(self, request: generation_pb2.GetCameoRequest) -> generation_pb2.Cameo:
        return await self.cameos.get(request.name)

    async def update_cameo_consent(
        self, request: generation_pb2.UpdateCameoConsentRequest
    ) -> generation_pb2.Cameo:
        return await self.cameos.update_consent(request)

    async def revoke_cameo(self, request: generation_pb2.RevokeCameoRequest) -> generation_pb2.Cameo:
        """Revokes, cancels every queued or running job using the cameo, then takes the videos made with
        it out of the feed (FeedRanker.RemoveItems) before marking them unpublished here. The sweep also
        runs when the cameo was already revoked, and a video is marked unpublished only once the feed
        has let it go, so a crash or an unreachable ranker between the steps is repaired by a retry."""
        cameo = await self.cameos.revoke(request)
        cameo_id = cameo.name.removeprefix("cameos/")
        for job_id in await self.jobs.active_jobs_using_cameo(cameo_id):
            await self.runner.cancel(job_id, by="cameo_revocation", cameo=cameo.name)
        published = await self.cameos.published_videos_with(cameo_id)
        for start in range(0, len(published), MAX_FEED_ITEMS_PER_CALL):
            batch = published[start : start + MAX_FEED_ITEMS_PER_CALL]
            await self.clients.remove_items(
                ranker_pb2.RemoveItemsRequest(videos=[video_name(v) for v in batch])
            )
            await self.videos.set_published(batch, False)
        return cameo

    # ---- videos -------------------------------------------------------------------------------------

    async def get_video(self, request: generation_pb2.GetVideoRequest) -> generation_pb2.Video:
        return await self.videos.get(request.name)

    async def download_video(
        self, request: generation_pb2.DownloadVideoRequest
    ) -> AsyncIterator[generation_pb2.DownloadVideoResponse]:
        async for chunk in self.videos.read(request.name, request.offset):
            yield generation_pb2.DownloadVideoResponse(
                chunk=chunk.data, offset=chunk.offset, total_size=chunk.total_size, mime_type=MP4_MIME_TYPE
            )

    async def verify(self, request: generation_pb2.VerifyRequest) -> generation_pb2.VerifyResponse:
        """The file's C2PA manifest checked against this gateway's trust anchors, and its watermark,
        whose 64-bit payload is resolved to the full name of the video it marks."""
        if not request.file:
            raise invalid_argument(
                "FIELD_REQUIRED", "file is required: the bytes of a video file", field="file"
            )
        anchors = (await self.signing_keys.get()).trust_anchors_pem
        verdict = await asyncio.to_thread(verify_file, request.file, trust_anchors_pem=anchors)
        if verdict.watermark_found:
            video_id = await self.videos.resolve_prefix(verdict.watermark_video.removeprefix("videos/"))
            if video_id is not None:
                verdict.watermark_video = video_name(video_id)
                verdict.provenance.watermark = verdict.watermark_video
        return verdict


def _fingerprint(request: generation_pb2.SubmitRequest) -> str:
    """What makes two Submits "the same request" for idempotency: everything but the key itself."""
    keyless = generation_pb2.SubmitRequest()
    keyless.CopyFrom(request)
    keyless.ClearField("idempotency_key")
    return hashlib.sha256(keyless.SerializeToString(deterministic=True)).hexdigest()


def _is_news(update: generation_pb2.Job, last: generation_pb2.Job) -> bool:
    """False for a repeat or for an older snapshot of the same state (a store read can lag an event)."""
    if update == last:
        return False
    return (
        update.state != last.state or update.update_time.ToNanoseconds() >= last.update_time.ToNanoseconds()
    )
