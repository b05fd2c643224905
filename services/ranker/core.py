"""The FeedRanker without its transport: Rank, Ingest and UpsertItems on proto messages.

Rank is a pipeline of small stages, each in its own module:

    state      store.user_state → features.build_profile           (who is asking)
    retrieve   retrieval.Retriever: sources run concurrently          (~1,000 candidates)
    filter     safety labels, blocked creators, hidden/reported, seen, served earlier in the session
    features   features.candidate_features with the store's counters
    score      scoring: the trained model, or the content-only fallback when no weights are installed
    rerank     rerank.rerank: diversity, fatigue, freshness, exploration slots
    page       reasons, the page token, and the session's served list for the next page

The catalog of videos lives in this process (items.ItemCatalog) and in the store; with the Redis store a
replica picks up videos that another replica received within `ITEM_SYNC_SECONDS`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import re
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kino.v1 import ranker_pb2
from services.common.errors import invalid_argument, out_of_range, too_long
from services.common.limits import MAX_USER_CHARS
from services.common.settings import RankerSettings
from services.common.text import check_no_control_characters, is_blank
from services.ranker import metrics
from services.ranker.events import check_request, resolve_events
from services.ranker.features import CandidateFeatures, UserProfile, build_profile, candidate_features
from services.ranker.index import IvfIndex
from services.ranker.items import (
    REMOVED_LABEL,
    ItemCatalog,
    ItemRecord,
    names_to_remove,
    pin_similarity_dtype,
    records_from_request,
    removed,
)
from services.ranker.model import DEFAULT_WEIGHTS_DIR, load_ranker
from services.ranker.rerank import RerankConfig, RerankInput, rerank
from services.ranker.retrieval import (
    SOURCE_EXPLORE,
    SOURCE_FOLLOWING,
    SOURCE_FRESH,
    SOURCE_REMIX,
    SOURCE_SIMILAR,
    SOURCE_TRENDING,
    SURFACES,
    RetrievalConfig,
    Retriever,
    static_filter,
    suppressed_by_reports,
)
from services.ranker.scoring import ContentScorer, ModelScorer, Scorer
from services.ranker.store import COUNTER_INDEX, FeatureStore, RowCounters, store_from_settings

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
ITEM_SYNC_SECONDS = 1.0
_TOKEN_VERSION = "1"
_HEX_SESSION = re.compile(r"[0-9a-f]{16}")  # secrets.token_hex(8)
# Nobody pages a billion times; a longer number is forged (and past 4300 digits int() refuses it).
_PAGE_DIGITS = 9
_PAGE_NUMBER = re.compile(rf"[0-9]{{1,{_PAGE_DIGITS}}}")
_LAST_PAGE = 10**_PAGE_DIGITS - 1  # the largest page number a token holds: the feed ends there


@dataclass
class RankedPage:
    """One page with everything the simulator and tests want to look at; `response()` is the wire form."""

    rows: list[int]  # catalog rows, page order
    sources: list[int]  # CandidateSource per row
    scores: list[float]
    reasons: list[str]
    next_page_token: str
    profile: UserProfile
    features: CandidateFeatures | None  # model inputs of the page's rows (same order)
    num_candidates: int

    def response(self, catalog: ItemCatalog) -> ranker_pb2.RankResponse:
        return ranker_pb2.RankResponse(
            items=[
                ranker_pb2.RankedItem(video=catalog.name(row), score=score, source=source, reason=reason)
                for row, source, score, reason in zip(
                    self.rows, self.sources, self.scores, self.reasons, strict=True
                )
            ],
            next_page_token=self.next_page_token,
        )


class RankerCore:
    def __init__(
        self,
        store: FeatureStore,
        scorer: Scorer,
        *,
        embedding_dim: int = 384,
        max_candidates: int = 1000,
        session_ttl_seconds: int = 1800,
        retrieval: RetrievalConfig | None = None,
        rerank_config: RerankConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.scorer = scorer
        self.catalog = ItemCatalog(embedding_dim)
        self._counters = RowCounters(store, self.catalog)
        self.retrieval_config = retrieval or RetrievalConfig()
        self.retriever = Retriever(self.catalog, store, self.retrieval_config)
        self.rerank_config = rerank_config or RerankConfig(
            explore_max_impressions=self.retrieval_config.explore_max_impressions
        )
        # The following and remixes surfaces show what the user asked for: no exploration slots there.
        self._rerank_without_exploration = dataclasses.replace(self.rerank_config, explore_every=0)
        self.max_candidates = max_candidates
        self.session_ttl_seconds = session_ttl_seconds
        self.clock = clock
        self._item_cursor = 0
        self._next_item_sync = 0.0
        self._index_task: asyncio.Task | None = None
        self.last_candidates = 0  # candidates scored by the latest Rank (benchmarks)

    @classmethod
    def from_settings(cls, settings: RankerSettings) -> RankerCore:
        if settings.threads:
            limit_threads(settings.threads)
        pin_similarity_dtype(settings.similarity_dtype)
        return cls(
            store_from_settings(settings),
            scorer_from_weights(settings.weights_dir),
            embedding_dim=settings.embedding_dim,
            max_candidates=settings.max_candidates,
            session_ttl_seconds=settings.session_ttl_seconds,
        )

    async def warmup(self) -> None:
        """Loads the catalog the store already holds (a restart, or another replica's videos)."""
        await self._sync_items(force=True)
        await self.wait_for_index()
        log.info("ranker ready: %d videos, %s scorer", len(self.catalog), self.scorer.name)

    async def close(self) -> None:
        if self._index_task is not None:
            self._index_task.cancel()
        await self.store.close()

    # -- UpsertItems -------------------------------------------------------------------------------

    async def upsert_items(self, request: ranker_pb2.UpsertItemsRequest) -> ranker_pb2.UpsertItemsResponse:
        """Adds or updates videos. A video RemoveItems took out stays out: a publish that raced a cameo's
        revocation, or a replayed one, must not bring a revoked likeness back into the feeds."""
        records = records_from_request(request, self.catalog.dim, self.clock())
        await self._sync_items(force=True)  # a removal another replica was just given is known here too
        still_removed = []
        for i, record in enumerate(records):
            known = self._record(record.name)
            if known is not None and REMOVED_LABEL in known.labels and REMOVED_LABEL not in record.labels:
                records[i] = removed(record)
                still_removed.append(record.name)
        await self.store.put_items(records)
        self._add_to_catalog(records)
        metrics.CATALOG.set(len(self.catalog))
        self._maybe_train_index()
        if still_removed:
            log.info("%d upserted videos stay removed from the feeds", len(still_removed))
        return ranker_pb2.UpsertItemsResponse(upserted=len(records), still_removed=still_removed)

    async def remove_items(self, request: ranker_pb2.RemoveItemsRequest) -> ranker_pb2.RemoveItemsResponse:
        """Takes videos out of every feed by labelling them removed, through the same store as an upsert,
        so that every replica drops them at its next sync."""
        names = names_to_remove(request)
        await self._sync_items(force=True)  # a video another replica was just given is known here too
        records = {name: self._record(name) for name in names}
        unknown = [name for name, record in records.items() if record is None]
        known = [record for record in records.values() if record is not None]
        changed = [removed(record) for record in known if REMOVED_LABEL not in record.labels]
        if changed:
            await self.store.put_items(changed)
            self._add_to_catalog(changed)
        log.info("removed %d videos from the feeds (%d unknown)", len(known), len(unknown))
        return ranker_pb2.RemoveItemsResponse(removed=len(known), unknown_videos=unknown)

    async def _sync_items(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_item_sync:
            return
        self._next_item_sync = now + ITEM_SYNC_SECONDS
        records, self._item_cursor = await self.store.items_since(self._item_cursor)
        if records:
            self._add_to_catalog(records)
            metrics.CATALOG.set(len(self.catalog))
            self._maybe_train_index()

    def _add_to_catalog(self, records: list[ItemRecord]) -> None:
        self.catalog.upsert(records)
        rows = self.catalog.indices_of([r.name for r in records])
        self.scorer.add_items(rows, self.catalog.row_stamps[rows], self.catalog.embeddings[rows])

    def _maybe_train_index(self) -> None:
        """Trains the retrieval index in a worker thread when the catalog has outgrown it."""
        running = self._index_task is not None and not self._index_task.done()
        if running and asyncio.current_task() is not self._index_task:
            return
        if not self.catalog.index_due():
            return
        snapshot = self.catalog.index_snapshot()

        async def train() -> None:
            started = time.perf_counter()
            index = await asyncio.to_thread(IvfIndex.train, snapshot)
            self.catalog.install_index(index, len(snapshot))
            self._maybe_train_index()  # the catalog may have doubled again meanwhile
            log.info(
                "retrieval index trained on %d videos: %d cells in %.2f s",
                len(snapshot),
                len(index.centroids),
                time.perf_counter() - started,
            )

        self._index_task = asyncio.get_running_loop().create_task(train())

    async def wait_for_index(self) -> None:
        """Waits for a running index training (benchmarks and the simulator want the steady state)."""
        while self._index_task is not None and not self._index_task.done():
            await self._index_task

    # -- Ingest ------------------------------------------------------------------------------------

    async def ingest(self, request: ranker_pb2.IngestRequest) -> ranker_pb2.IngestResponse:
        check_request(request)
        await self._sync_items()
        outcome = resolve_events(request, self._record, self.clock())
        if outcome.events:
            await self.store.apply(outcome.events)
        metrics.EVENTS.labels("accepted").inc(len(outcome.events))
        metrics.EVENTS.labels("unknown_video").inc(outcome.unknown_videos)
        metrics.EVENTS.labels("rejected").inc(outcome.rejected)
        return outcome.response()

    def _record(self, name: str) -> ItemRecord | None:
        row = self.catalog.index_of(name)
        return None if row is None else self.catalog.records[row]

    # -- Rank --------------------------------------------------------------------------------------

    async def rank(self, request: ranker_pb2.RankRequest) -> ranker_pb2.RankResponse:
        page = await self.rank_page(
            request.user, request.page_size, request.context.surface, request.page_token
        )
        return page.response(self.catalog)

    async def rank_page(
        self, user: str, page_size: int = 0, surface: str = "", page_token: str = ""
    ) -> RankedPage:
        if is_blank(user):  # empty, or nothing but spaces and invisible characters
            raise invalid_argument("FIELD_REQUIRED", "user is required", field="user")
        if len(user) > MAX_USER_CHARS:
            raise too_long("user", user, MAX_USER_CHARS)
        check_no_control_characters("user", user)  # the gateway refuses such users too
        if page_size < 0:
            raise out_of_range("page_size", page_size, 1, MAX_PAGE_SIZE)
        page_size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        surface = surface or "for_you"
        if surface not in SURFACES:
            raise invalid_argument(
                "UNKNOWN_ENUM_VALUE",
                f"context.surface must be one of {', '.join(SURFACES)}, got {surface[:40]!r}",
                field="context.surface",
                value=surface[:40],
            )
        session, page_number = parse_page_token(page_token, user) if page_token else (secrets.token_hex(8), 0)
        now = self.clock()
        timer = _StageTimer()

        await self._sync_items()
        if page_number:
            state, served = await asyncio.gather(
                self.store.user_state(user), self.store.session_videos(session)
            )
        else:  # the first page: no session to read, and no task to schedule
            state, served = await self.store.user_state(user), set()
        profile = build_profile(state, self.catalog)
        if profile.cold:
            metrics.COLD_START_FEEDS.inc()
        timer.lap("state")

        candidates = await self.retriever.retrieve(user, profile, surface, self.max_candidates, now)
        timer.lap("retrieve")

        excluded = self.catalog.indices_of([*state.hidden, *state.reported, *served])
        candidates = static_filter(candidates, self.catalog, profile, user, excluded)
        unseen = np.flatnonzero(~state.has_seen_rows(candidates.rows, self.catalog))
        candidates = candidates.take(unseen[: self.max_candidates])
        counters = await self._counters(candidates.rows)
        fine = ~suppressed_by_reports(counters)
        candidates, counters = candidates.take(fine), counters[fine]
        timer.lap("filter")
        metrics.CANDIDATES.observe(len(candidates))
        self.last_candidates = len(candidates)

        features = candidate_features(profile, self.catalog, candidates.rows, counters, now)
        timer.lap("features")
        scores = self.scorer.score(profile, features) if len(candidates) else np.zeros(0, np.float32)
        timer.lap("score")

        recent = profile.recent_rows
        picked = rerank(
            RerankInput(
                scores=scores,
                embeddings=features.catalog_embeddings,
                embedding_rows=candidates.rows,
                creators=self.catalog.creator_codes[candidates.rows],
                impressions=counters[:, COUNTER_INDEX["impressions"]],
                age_hours=np.maximum(now - self.catalog.create_times[candidates.rows], 0.0) / 3600.0,
                recent_embeddings=self.catalog.embeddings[recent],
                recent_creators=self.catalog.creator_codes[recent],
            ),
            page_size,
            self.rerank_config if surface == "for_you" else self._rerank_without_exploration,
        )
        timer.lap("rerank")

        order = np.array(picked.order, np.int64)
        rows = candidates.rows[order].tolist()
        sources = [
            SOURCE_EXPLORE if explored else int(s)
            for s, explored in zip(candidates.sources[order], picked.explored, strict=True)
        ]
        reasons = [
            self._reason(source, row, int(features.nearest_positive[i]), profile)
            for source, row, i in zip(sources, rows, order, strict=True)
        ]
        exhausted = len(candidates) <= len(rows) or page_number >= _LAST_PAGE
        next_token = "" if exhausted else make_page_token(session, page_number + 1, user)
        if not exhausted:
            await self.store.add_session_videos(
                session, [self.catalog.name(r) for r in rows], self.session_ttl_seconds
            )
        for source in sources:
            metrics.served(source).inc()
        return RankedPage(
            rows=rows,
            sources=sources,
            scores=picked.scores,
            reasons=reasons,
            next_page_token=next_token,
            profile=profile,
            features=features.take(order),
            num_candidates=len(candidates),
        )

    def _reason(self, source: int, row: int, nearest_positive: int, profile: UserProfile) -> str:
        record = self.catalog.records[row]
        if source == SOURCE_SIMILAR and nearest_positive >= 0:
            return f"similar to {self._quoted(nearest_positive)}, which you enjoyed"
        if source == SOURCE_FOLLOWING:
            return f"new from {record.creator}, whom you follow"
        if source == SOURCE_REMIX:
            parent = self.catalog.index_of(record.remix_parent)
            return f"a remix of {'a video' if parent is None else self._quoted(parent)}, which you liked"
        if source == SOURCE_EXPLORE:
            if profile.cold:
                return "a new video looking for its audience"
            return "a new video close to what you enjoy"
        if source == SOURCE_TRENDING:
            return "trending now"
        if source == SOURCE_FRESH:
            return "new on Kino"
        return "recommended for you"

    def _quoted(self, row: int) -> str:
        """A video named in a reason by its prompt; a removed or safety-labelled one only as "a video":
        its prompt must not reach a feed the video itself has left (a revoked cameo's, say)."""
        if self.catalog.unsafe[row]:
            return "a video"
        return f"“{_short(self.catalog.records[row].prompt)}”"


def limit_threads(threads: int) -> None:
    """Caps torch's and BLAS's thread pools for the whole process (see RankerSettings.threads)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
    log.info("ranker process limited to %d CPU thread(s) for torch and BLAS", threads)


def _short(prompt: str, limit: int = 60) -> str:
    prompt = " ".join(prompt.split()) or "untitled"
    return prompt if len(prompt) <= limit else prompt[: limit - 1] + "…"


def scorer_from_weights(weights_dir: Path | None) -> Scorer:
    model = load_ranker(weights_dir)
    if model is None:
        log.warning(
            "no ranking model weights in %s: ranking with the content-only fallback scorer "
            "(similarity to the user's recent positives plus a popularity prior)",
            weights_dir or DEFAULT_WEIGHTS_DIR,
        )
        return ContentScorer()
    return ModelScorer(model)


# -- page tokens -----------------------------------------------------------------------------------


def make_page_token(session: str, page: int, user: str) -> str:
    """An opaque token: version, paging session, page number and a checksum of the user."""
    raw = f"{_TOKEN_VERSION}.{session}.{page}.{zlib.crc32(user.encode()):08x}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_page_token(token: str, user: str) -> tuple[str, int]:
    def malformed(detail: str):
        return invalid_argument(
            "MALFORMED_NAME", f"page_token is malformed: {detail}", field="page_token", value=token[:64]
        )

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise malformed("not a token from RankResponse.next_page_token") from None
    parts = raw.split(".")
    if (
        len(parts) != 4
        or parts[0] != _TOKEN_VERSION
        or not _HEX_SESSION.fullmatch(parts[1])
        or not _PAGE_NUMBER.fullmatch(parts[2])
    ):
        raise malformed("not a token from RankResponse.next_page_token")
    if parts[3] != f"{zlib.crc32(user.encode()):08x}":
        raise malformed("the token was issued for another user")
    return parts[1], int(parts[2])


class _StageTimer:
    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        metrics.stage_seconds(stage).observe(now - self._last)
        self._last = now
