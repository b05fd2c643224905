"""The cameo registry: registered likenesses, who may use them, and revocation.

Consent is checked twice for every job that names a cameo: at Submit, so a refused request never
becomes a job, and again when the job starts (the CHECKING stage), because the owner may have changed
the policy or revoked the cameo while the job was queued. The appearance image is validated like any
upload, stored once under the asset dir by its SHA-256, and never returned: clients see only the hash.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from kino.v1 import generation_pb2
from services.common.errors import (
    failed_precondition,
    invalid_argument,
    not_found,
    out_of_range,
    permission_denied,
    require_known_enum,
    too_long,
)
from services.common.limits import MAX_USER_CHARS
from services.common.text import check_no_control_characters, is_blank
from services.gateway.images import check_image
from services.gateway.names import cameo_name, parse_name
from services.gateway.store import CameoRow, Database, JobCameoRow, VideoRow, new_id, now

MAX_DISPLAY_NAME_CHARS = 256
MAX_APPROVED_USERS = 1000


@dataclass(frozen=True)
class UsableCameo:
    """A cameo a requester may put into a video right now, and where its appearance image is."""

    id: str
    appearance_path: Path


class CameoRegistry:
    def __init__(self, db: Database, asset_dir: Path) -> None:
        self.db = db
        self.appearance_dir = asset_dir / "cameos"

    async def register(self, request: generation_pb2.RegisterCameoRequest) -> generation_pb2.Cameo:
        _check_user("owner", request.owner)
        if len(request.display_name) > MAX_DISPLAY_NAME_CHARS:
            raise too_long("display_name", request.display_name, MAX_DISPLAY_NAME_CHARS)
        check_no_control_characters("display_name", request.display_name)
        _check_policy(request.policy, request.approved_users)
        if not request.HasField("appearance"):
            raise invalid_argument("FIELD_REQUIRED", "appearance is required", field="appearance")
        image = await asyncio.to_thread(check_image, request.appearance, "appearance")
        file_name = f"{image.sha256}{image.extension}"
        await asyncio.to_thread(_write_once, self.appearance_dir / file_name, image.data)
        created = now()
        row = CameoRow(
            id=new_id(),
            owner=request.owner,
            display_name=request.display_name,
            policy=request.policy,
            approved_users=list(dict.fromkeys(request.approved_users)),
            state=generation_pb2.CAMEO_STATE_ACTIVE,
            appearance_sha256=image.sha256,
            appearance_file=file_name,
            create_time=created,
            update_time=created,
        )

        def insert(session: Session) -> generation_pb2.Cameo:
            session.add(row)
            session.flush()
            return _cameo_from_row(row)

        return await self.db.run(insert)

    async def get(self, name: str) -> generation_pb2.Cameo:
        cameo_id = parse_name(name, "cameos", "name")

        def read(session: Session) -> generation_pb2.Cameo:
            return _cameo_from_row(_existing(session, cameo_id))

        return await self.db.run(read)

    async def update_consent(self, request: generation_pb2.UpdateCameoConsentRequest) -> generation_pb2.Cameo:
        cameo_id = parse_name(request.name, "cameos", "name")
        _check_user("requester", request.requester)
        _check_policy(request.policy, request.approved_users)

        def write(session: Session) -> generation_pb2.Cameo:
            row = _owned(session, cameo_id, request.requester)
            if row.state == generation_pb2.CAMEO_STATE_REVOKED:
                raise _revoked(cameo_id)
            row.policy = request.policy
            row.approved_users = list(dict.fromkeys(request.approved_users))
            row.update_time = now()
            session.flush()
            return _cameo_from_row(row)

        return await self.db.run(write)

    async def revoke(self, request: generation_pb2.RevokeCameoRequest) -> generation_pb2.Cameo:
        """Marks the cameo revoked; revoking twice is a no-op.

        Cancelling the jobs that use it and taking its videos out of the feed are the caller's part (the
        runner owns job state, the feed is another service): `published_videos_with` says which.
        """
        cameo_id = parse_name(request.name, "cameos", "name")
        _check_user("requester", request.requester)

        def write(session: Session) -> generation_pb2.Cameo:
            row = _owned(session, cameo_id, request.requester)
            if row.state != generation_pb2.CAMEO_STATE_REVOKED:
                row.state = generation_pb2.CAMEO_STATE_REVOKED
                row.update_time = now()
                session.flush()
            return _cameo_from_row(row)

        return await self.db.run(write)

    async def published_videos_with(self, cameo_id: str) -> list[str]:
        """Ids of the published videos made by jobs that used the cameo (or inherited it from a source)."""

        def read(session: Session) -> list[str]:
            jobs_using_it = select(JobCameoRow.job_id).where(JobCameoRow.cameo_id == cameo_id)
            query = select(VideoRow.id).where(VideoRow.job_id.in_(jobs_using_it), VideoRow.published)
            return list(session.execute(query.order_by(VideoRow.id)).scalars())

        return await self.db.run(read)

    async def check_use(
        self, cameo_ids: tuple[str, ...], requester: str, *, source: str | None = None
    ) -> list[UsableCameo]:
        """The cameos, if the requester may use every one of them now.

        NOT_FOUND/CAMEO_NOT_FOUND for an unknown one, FAILED_PRECONDITION/CAMEO_REVOKED for a revoked
        one, FAILED_PRECONDITION/CAMEO_CONSENT_MISSING when its policy does not admit the requester.
        `source` names the video the cameos come from when they are a remix's or an extension's
        inheritance rather than the request's own (the errors then say so, with metadata `source`).
        """
        if not cameo_ids:
            return []
        via = {} if source is None else {"source": source}
        where = "" if source is None else f", which appears in {source}"

        def read(session: Session) -> list[UsableCameo]:
            usable = []
            for cameo_id in cameo_ids:
                row = _existing(session, cameo_id)
                if row.state == generation_pb2.CAMEO_STATE_REVOKED:
                    raise _revoked(cameo_id, where, **via)
                if not _admits(row, requester):
                    raise failed_precondition(
                        "CAMEO_CONSENT_MISSING",
                        f"{requester!r} has no consent to use {cameo_name(cameo_id)}{where}",
                        cameo=cameo_name(cameo_id),
                        requester=requester,
                        **via,
                    )
                usable.append(UsableCameo(cameo_id, self.appearance_dir / row.appearance_file))
            return usable

        return await self.db.run(read)

    async def check_carried(
        self, source_video_id: str, source: str, own: tuple[str, ...], requester: str
    ) -> tuple[str, ...]:
        """The cameos a remix or an extension carries on from its source beyond its `own`, if the
        requester may use them (errors as `check_use`'s, naming the `source` video)."""
        carried = tuple(cameo for cameo in await self.in_video(source_video_id) if cameo not in own)
        await self.check_use(carried, requester, source=source)
        return carried

    async def in_video(self, video_id: str) -> tuple[str, ...]:
        """The cameos whose likeness a stored video carries: those of the job that made it, which
        include what that job inherited from its own source. A remix or an extension of the video
        carries them on, so it needs their consent and their revocation reaches it."""

        def read(session: Session) -> tuple[str, ...]:
            made_by = select(VideoRow.job_id).where(VideoRow.id == video_id)
            rows = session.execute(
                select(JobCameoRow.cameo_id)
                .where(JobCameoRow.job_id.in_(made_by))
                .order_by(JobCameoRow.cameo_id)
            )
            return tuple(rows.scalars())

        return await self.db.run(read)


def _admits(row: CameoRow, requester: str) -> bool:
    if requester == row.owner or row.policy == generation_pb2.CONSENT_POLICY_EVERYONE:
        return True
    return row.policy == generation_pb2.CONSENT_POLICY_APPROVED_USERS and requester in row.approved_users


def _existing(session: Session, cameo_id: str) -> CameoRow:
    row = session.get(CameoRow, cameo_id)
    if row is None:
        name = cameo_name(cameo_id)
        raise not_found("CAMEO_NOT_FOUND", f"{name} does not exist", name=name)
    return row


def _owned(session: Session, cameo_id: str, requester: str) -> CameoRow:
    row = _existing(session, cameo_id)
    if row.owner != requester:
        name = cameo_name(cameo_id)
        raise permission_denied("NOT_OWNER", f"only the owner of {name} may change it", name=name)
    return row


def _revoked(cameo_id: str, where: str = "", **metadata: str):
    name = cameo_name(cameo_id)
    return failed_precondition(
        "CAMEO_REVOKED", f"{name}{where} was revoked by its owner", cameo=name, **metadata
    )


def _check_user(field: str, user: str) -> None:
    if is_blank(user):
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    if len(user) > MAX_USER_CHARS:
        raise too_long(field, user, MAX_USER_CHARS)
    check_no_control_characters(field, user)


def _check_policy(policy: int, approved_users) -> None:
    require_known_enum("policy", generation_pb2.ConsentPolicy, policy)
    if policy == generation_pb2.CONSENT_POLICY_UNSPECIFIED:
        raise invalid_argument("FIELD_REQUIRED", "policy is required", field="policy")
    if len(approved_users) > MAX_APPROVED_USERS:
        raise out_of_range("approved_users", len(approved_users), 0, MAX_APPROVED_USERS)
    for index, user in enumerate(approved_users):
        _check_user(f"approved_users[{index}]", user)


def _cameo_from_row(row: CameoRow) -> generation_pb2.Cameo:
    cameo = generation_pb2.Cameo(
        name=cameo_name(row.id),
        owner=row.owner,
        display_name=row.display_name,
        policy=row.policy,
        approved_users=row.approved_users,
        state=row.state,
        appearance_sha256=row.appearance_sha256,
    )
    cameo.create_time.FromDatetime(row.create_time)
    cameo.update_time.FromDatetime(row.update_time)
    return cameo


def _write_once(path: Path, data: bytes) -> None:
    """Content-addressed: a file already there holds these bytes. Written via rename, never half."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
