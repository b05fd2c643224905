"""The gateway's durable state: jobs, cameos and videos in one SQL database, and the job store.

SQLAlchemy 2 over a synchronous engine, called from asyncio through a private thread pool: the blocking
drivers (sqlite3, psycopg) are the mature ones, and the pool keeps a slow query off the event loop.

SQLite, the embedded default, runs in WAL mode so Get/List/Watch read while the runner writes, and
every transaction starts with BEGIN IMMEDIATE: a transaction that reads and then writes takes the write
lock up front instead of failing with SQLITE_BUSY half-way. One worker thread serializes SQLite work in
the process. PostgreSQL gets a few threads and pooled connections.

Job state changes are compare-and-set (UPDATE ... WHERE state IN (...)), so a Cancel racing with the
end of a job has exactly one winner, and a job never leaves a terminal state.

Several gateway processes may share one store (replicas on PostgreSQL). A running job records which
runner claimed it and when that runner last vouched for it (`runner_id`, `heartbeat_time`), so a
runner can tell the jobs of a dead process from those of a live one (see runner.py).
Tables are created at start-up (`create_tables`); there are no migrations yet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from google.rpc import status_pb2
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    TypeDecorator,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from kino.v1 import generation_pb2
from services.common.errors import already_exists, resource_exhausted

T = TypeVar("T")

TERMINAL_STATES = frozenset(
    {generation_pb2.JOB_STATE_SUCCEEDED, generation_pb2.JOB_STATE_FAILED, generation_pb2.JOB_STATE_CANCELLED}
)
ACTIVE_STATES = (generation_pb2.JOB_STATE_QUEUED, generation_pb2.JOB_STATE_RUNNING)
# A client refused with QUEUE_FULL is told to come back after this long: long enough for a few jobs
# to finish, short enough that an interactive user is not lost.
QUEUE_FULL_RETRY_SECONDS = 10.0
_POSTGRES_WORKERS = 8


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


# ---- schema -----------------------------------------------------------------------------------------


class UtcTimestamp(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite has no time zones: it stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requester: Mapped[str] = mapped_column(String(256))
    state: Mapped[int] = mapped_column(SmallInteger)
    # 1 interactive, 2 batch: ascending order is scheduling order.
    priority: Mapped[int] = mapped_column(SmallInteger)
    stage: Mapped[int] = mapped_column(SmallInteger, default=0)
    progress_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    progress_step: Mapped[int] = mapped_column(Integer, default=0)
    progress_total_steps: Mapped[int] = mapped_column(Integer, default=0)
    # The serialized GenerationSpec, defaults filled in.
    spec: Mapped[bytes] = mapped_column(LargeBinary)
    # SHA-256 of the SubmitRequest as received: an idempotent retry must match it.
    request_sha256: Mapped[str] = mapped_column(String(64))
    # NULL when the client gave none; NULLs never collide in the unique constraint.
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    publish_to_feed: Mapped[bool] = mapped_column(Boolean, default=False)
    deadline: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    # Serialized google.rpc.Status, set when FAILED or CANCELLED.
    error: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Serialized JobResult, set when SUCCEEDED.
    result: Mapped[bytes | None] = mapped_column(LargeBinary)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # The runner that claimed the job while it is RUNNING, and when it last confirmed it still runs it.
    runner_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_time: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    create_time: Mapped[datetime] = mapped_column(UtcTimestamp)
    update_time: Mapped[datetime] = mapped_column(UtcTimestamp)
    start_time: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    end_time: Mapped[datetime | None] = mapped_column(UtcTimestamp)

    __table_args__ = (
        UniqueConstraint("requester", "idempotency_key", name="uq_jobs_requester_idempotency_key"),
        Index("ix_jobs_queue_order", "state", "priority", "create_time", "id"),
        Index("ix_jobs_newest", "create_time", "id"),
        Index("ix_jobs_requester_newest", "requester", "create_time", "id"),
    )


class JobCameoRow(Base):
    """Which jobs use which cameo, so a revocation finds the jobs to cancel without reading specs."""

    __tablename__ = "job_cameos"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    cameo_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class CameoRow(Base):
    __tablename__ = "cameos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256), index=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    policy: Mapped[int] = mapped_column(SmallInteger)
    approved_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[int] = mapped_column(SmallInteger)
    appearance_sha256: Mapped[str] = mapped_column(String(64))
    # File name under the asset dir's cameos/ folder.
    appearance_file: Mapped[str] = mapped_column(String(128))
    create_time: Mapped[datetime] = mapped_column(UtcTimestamp)
    update_time: Mapped[datetime] = mapped_column(UtcTimestamp)


class VideoRow(Base):
    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    requester: Mapped[str] = mapped_column(String(256))
    duration_seconds: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)
    num_frames: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(64))
    # File name under the asset dir.
    file_name: Mapped[str] = mapped_column(String(128))
    # Serialized Provenance.
    provenance: Mapped[bytes] = mapped_column(LargeBinary)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    create_time: Mapped[datetime] = mapped_column(UtcTimestamp)


# ---- database -----------------------------------------------------------------------------------------


class Database:
    """An engine plus the threads that talk to it; `run` executes one function in one transaction."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.drivername == "postgresql":
            # Plain postgresql:// means psycopg2 to SQLAlchemy; Kino ships psycopg 3.
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = _sqlite_engine(self.url) if self.is_sqlite else _server_engine(self.url)
        self._executor = ThreadPoolExecutor(
            max_workers=1 if self.is_sqlite else _POSTGRES_WORKERS, thread_name_prefix="kino-gateway-db"
        )

    async def create_tables(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._executor, Base.metadata.create_all, self.engine
        )

    async def run(self, work: Callable[[Session], T]) -> T:
        """Runs work(session) in one transaction on a database thread: committed when it returns,
        rolled back when it raises."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, work)

    def _transaction(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True)
        self.engine.dispose()


def _sqlite_engine(url) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself, as IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _server_engine(url) -> Engine:
    return create_engine(url, pool_size=_POSTGRES_WORKERS, pool_pre_ping=True)


# ---- jobs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageCursor:
    """Where a List page ended: the last job's (create_time, id), newest-first keyset order."""

    create_time: datetime
    id: str


@dataclass(frozen=True)
class NewJob:
    """A validated Submit, ready to insert."""

    requester: str
    spec: generation_pb2.GenerationSpec
    priority: int
    idempotency_key: str
    publish_to_feed: bool
    deadline: datetime | None
    request_sha256: str
    cameo_ids: tuple[str, ...]


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewJob, *, max_queued: int) -> generation_pb2.Job:
        """Inserts a QUEUED job, or returns the job an earlier Submit with the same key created.

        The job row and its cameo links are written in one transaction: a failure leaves nothing.
        Raises ALREADY_EXISTS/IDEMPOTENCY_KEY_REUSED when the key was used for a different request and
        RESOURCE_EXHAUSTED/QUEUE_FULL when max_queued jobs are already waiting.
        """

        def insert(session: Session) -> generation_pb2.Job:
            existing = _match_idempotent(session, new.requester, new.idempotency_key, new.request_sha256)
            if existing is not None:
                return existing
            queued = _count(session, generation_pb2.JOB_STATE_QUEUED)
            if queued >= max_queued:
                raise resource_exhausted(
                    "QUEUE_FULL",
                    f"{queued} jobs are queued, the limit is {max_queued}; retry later",
                    retry_after_seconds=QUEUE_FULL_RETRY_SECONDS,
                    queued=queued,
                    max=max_queued,
                )
            created = now()
            row = JobRow(
                id=new_id(),
                requester=new.requester,
                state=generation_pb2.JOB_STATE_QUEUED,
                priority=new.priority,
                stage=0,
                progress_fraction=0.0,
                progress_step=0,
                progress_total_steps=0,
                spec=new.spec.SerializeToString(deterministic=True),
                request_sha256=new.request_sha256,
                idempotency_key=new.idempotency_key or None,
                publish_to_feed=new.publish_to_feed,
                deadline=new.deadline,
                attempt=0,
                create_time=created,
                update_time=created,
            )
            session.add(row)
            session.flush()
            session.add_all(JobCameoRow(job_id=row.id, cameo_id=cameo_id) for cameo_id in new.cameo_ids)
            session.flush()
            return job_from_row(row)

        try:
            return await self.db.run(insert)
        except IntegrityError:
            # A concurrent Submit with the same key won the insert; answer with its job.
            existing = await self.find_idempotent(new.requester, new.idempotency_key, new.request_sha256)
            if existing is None:
                raise
            return existing

    async def find_idempotent(
        self, requester: str, key: str, request_sha256: str
    ) -> generation_pb2.Job | None:
        """The job an earlier Submit with this key created, if any (ALREADY_EXISTS when it differs)."""
        if not key:
            return None
        return await self.db.run(lambda session: _match_idempotent(session, requester, key, request_sha256))

    async def get(self, job_id: str) -> generation_pb2.Job | None:
        def read(session: Session) -> generation_pb2.Job | None:
            row = session.get(JobRow, job_id)
            return None if row is None else job_from_row(row)

        return await self.db.run(read)

    async def list(
        self, *, requester: str, state: int, limit: int, after: PageCursor | None
    ) -> list[generation_pb2.Job]:
        """Up to `limit` jobs, newest first, strictly after the cursor."""

        def read(session: Session) -> list[generation_pb2.Job]:
            query = select(JobRow)
            if requester:
                query = query.where(JobRow.requester == requester)
            if state:
                query = query.where(JobRow.state == state)
            if after is not None:
                query = query.where(
                    or_(
                        JobRow.create_time < after.create_time,
                        and_(JobRow.create_time == after.create_time, JobRow.id < after.id),
                    )
                )
            query = query.order_by(JobRow.create_time.desc(), JobRow.id.desc()).limit(limit)
            return [job_from_row(row) for row in session.scalars(query)]

        return await self.db.run(read)

    async def claim_next(self, runner_id: str) -> generation_pb2.Job | None:
        """Moves the next queued job to RUNNING for runner_id and returns it: interactive before batch,
        then oldest.

        The attempt counter goes up by one: it counts starts, restarts after a crash included.
        """

        def claim(session: Session) -> generation_pb2.Job | None:
            while True:
                job_id = session.scalar(
                    select(JobRow.id)
                    .where(JobRow.state == generation_pb2.JOB_STATE_QUEUED)
                    .order_by(JobRow.priority, JobRow.create_time, JobRow.id)
                    .limit(1)
                )
                if job_id is None:
                    return None
                started = now()
                claimed = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.state == generation_pb2.JOB_STATE_QUEUED)
                    .values(
                        state=generation_pb2.JOB_STATE_RUNNING,
                        attempt=JobRow.attempt + 1,
                        stage=generation_pb2.JOB_STAGE_CHECKING,
                        progress_fraction=0.0,
                        progress_step=0,
                        progress_total_steps=0,
                        start_time=func.coalesce(JobRow.start_time, started),
                        update_time=started,
                        runner_id=runner_id,
                        heartbeat_time=started,
                    )
                ).rowcount
                if claimed:
                    return _reload(session, job_id)

        return await self.db.run(claim)

    async def transition(
        self,
        job_id: str,
        from_states: Iterable[int],
        to_state: int,
        *,
        error: status_pb2.Status | None = None,
        result: generation_pb2.JobResult | None = None,
    ) -> generation_pb2.Job | None:
        """Compare-and-set: moves the job to to_state only if it is in one of from_states.

        Returns the updated job, or None when the job was not in from_states (someone else won).
        Moving back to QUEUED (a graceful shutdown) clears the progress.
        """
        changed = now()
        values: dict = {"state": to_state, "update_time": changed}
        if to_state in TERMINAL_STATES:
            values["end_time"] = changed
        if to_state == generation_pb2.JOB_STATE_QUEUED:
            values.update(
                stage=0, progress_fraction=0.0, progress_step=0, progress_total_steps=0, runner_id=None
            )
        if error is not None:
            values["error"] = error.SerializeToString()
        if result is not None:
            values["result"] = result.SerializeToString()
            values["progress_fraction"] = 1.0
        from_states = tuple(from_states)

        def write(session: Session) -> generation_pb2.Job | None:
            updated = session.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.state.in_(from_states)).values(**values)
            ).rowcount
            return _reload(session, job_id) if updated else None

        return await self.db.run(write)

    async def update_progress(self, job_id: str, progress: generation_pb2.JobProgress) -> bool:
        """Records progress of a RUNNING job; False when the job is no longer running."""

        def write(session: Session) -> bool:
            return bool(
                session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.state == generation_pb2.JOB_STATE_RUNNING)
                    .values(
                        stage=progress.stage,
                        progress_fraction=progress.fraction,
                        progress_step=progress.step,
                        progress_total_steps=progress.total_steps,
                        update_time=now(),
                        heartbeat_time=now(),
                    )
                ).rowcount
            )

        return await self.db.run(write)

    async def heartbeat(self, runner_id: str) -> int:
        """Confirms that runner_id still runs the jobs it claimed; returns how many it holds."""

        def write(session: Session) -> int:
            return session.execute(
                update(JobRow)
                .where(JobRow.runner_id == runner_id, JobRow.state == generation_pb2.JOB_STATE_RUNNING)
                .values(heartbeat_time=now())
            ).rowcount

        return await self.db.run(write)

    async def recover_interrupted(
        self,
        *,
        max_attempts: int,
        interrupted_error: Callable[[str, int], status_pb2.Status],
        abandoned: Callable[[str | None, datetime | None], bool],
    ) -> tuple[list[generation_pb2.Job], list[generation_pb2.Job]]:
        """Handles RUNNING jobs whose runner is gone, abandoned(runner_id, heartbeat_time): (requeued, failed).

        A job that has been started fewer than max_attempts times goes back to QUEUED, keeping its
        place (create_time); one that has not fails with interrupted_error(name, attempt). Each change
        is compare-and-set on the runner and heartbeat read, so a runner that vouches for its job at
        the same moment keeps it.
        """

        def recover(session: Session) -> tuple[list[generation_pb2.Job], list[generation_pb2.Job]]:
            running = session.execute(
                select(JobRow.id, JobRow.runner_id, JobRow.heartbeat_time, JobRow.attempt).where(
                    JobRow.state == generation_pb2.JOB_STATE_RUNNING
                )
            ).all()
            requeued, failed = [], []
            changed = now()
            for job_id, runner_id, heartbeat_time, attempt in running:
                if not abandoned(runner_id, heartbeat_time):
                    continue
                if attempt < max_attempts:
                    values = dict(
                        state=generation_pb2.JOB_STATE_QUEUED,
                        stage=0,
                        progress_fraction=0.0,
                        progress_step=0,
                        progress_total_steps=0,
                        runner_id=None,
                    )
                else:
                    values = dict(
                        state=generation_pb2.JOB_STATE_FAILED,
                        end_time=changed,
                        error=interrupted_error(f"jobs/{job_id}", attempt).SerializeToString(),
                    )
                updated = session.execute(
                    update(JobRow)
                    .where(
                        JobRow.id == job_id,
                        JobRow.state == generation_pb2.JOB_STATE_RUNNING,
                        JobRow.runner_id == runner_id
                        if runner_id is not None
                        else JobRow.runner_id.is_(None),
                        JobRow.heartbeat_time == heartbeat_time
                        if heartbeat_time is not None
                        else JobRow.heartbeat_time.is_(None),
                    )
                    .values(update_time=changed, **values)
                ).rowcount
                if updated:
                    (requeued if attempt < max_attempts else failed).append(_reload(session, job_id))
            return requeued, failed

        return await self.db.run(recover)

    async def fail_overdue(
        self, now_time: datetime, overdue_error: Callable[[str], status_pb2.Status]
    ) -> list[generation_pb2.Job]:
        """Fails the queued jobs whose deadline has passed, each with overdue_error(name)."""

        def write(session: Session) -> list[generation_pb2.Job]:
            overdue = session.scalars(
                select(JobRow.id).where(
                    JobRow.state == generation_pb2.JOB_STATE_QUEUED,
                    JobRow.deadline.is_not(None),
                    JobRow.deadline <= now_time,
                )
            ).all()
            failed = []
            for job_id in overdue:
                updated = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.state == generation_pb2.JOB_STATE_QUEUED)
                    .values(
                        state=generation_pb2.JOB_STATE_FAILED,
                        error=overdue_error(f"jobs/{job_id}").SerializeToString(),
                        update_time=now_time,
                        end_time=now_time,
                    )
                ).rowcount
                if updated:
                    failed.append(_reload(session, job_id))
            return failed

        return await self.db.run(write)

    async def count(self, state: int) -> int:
        return await self.db.run(lambda session: _count(session, state))

    async def active_jobs_using_cameo(self, cameo_id: str) -> list[str]:
        """Ids of queued and running jobs whose spec names the cameo."""

        def read(session: Session) -> list[str]:
            query = (
                select(JobRow.id)
                .join(JobCameoRow, JobCameoRow.job_id == JobRow.id)
                .where(JobCameoRow.cameo_id == cameo_id, JobRow.state.in_(ACTIVE_STATES))
            )
            return list(session.scalars(query))

        return await self.db.run(read)


def _count(session: Session, state: int) -> int:
    return session.scalar(select(func.count()).select_from(JobRow).where(JobRow.state == state)) or 0


def _reload(session: Session, job_id: str) -> generation_pb2.Job:
    row = session.execute(
        select(JobRow).where(JobRow.id == job_id).execution_options(populate_existing=True)
    ).scalar_one()
    return job_from_row(row)


def _match_idempotent(
    session: Session, requester: str, key: str, request_sha256: str
) -> generation_pb2.Job | None:
    if not key:
        return None
    row = session.scalar(select(JobRow).where(JobRow.requester == requester, JobRow.idempotency_key == key))
    if row is None:
        return None
    if row.request_sha256 != request_sha256:
        raise already_exists(
            "IDEMPOTENCY_KEY_REUSED",
            f"idempotency key {key!r} was used for a different request (jobs/{row.id})",
            idempotency_key=key,
            job=f"jobs/{row.id}",
        )
    return job_from_row(row)


def job_from_row(row: JobRow) -> generation_pb2.Job:
    job = generation_pb2.Job(
        name=f"jobs/{row.id}",
        state=row.state,
        requester=row.requester,
        priority=row.priority,
        idempotency_key=row.idempotency_key or "",
        publish_to_feed=row.publish_to_feed,
        attempt=row.attempt,
    )
    job.spec.ParseFromString(row.spec)
    if row.deadline is not None:
        job.deadline.FromDatetime(row.deadline)
    if row.stage:
        job.progress.stage = row.stage
        job.progress.fraction = row.progress_fraction
        job.progress.step = row.progress_step
        job.progress.total_steps = row.progress_total_steps
    if row.result is not None:
        job.result.ParseFromString(row.result)
    if row.error is not None:
        job.error.ParseFromString(row.error)
    job.create_time.FromDatetime(row.create_time)
    job.update_time.FromDatetime(row.update_time)
    if row.start_time is not None:
        job.start_time.FromDatetime(row.start_time)
        job.queue_duration.FromTimedelta(row.start_time - row.create_time)
    if row.end_time is not None:
        job.end_time.FromDatetime(row.end_time)
    return job
