"""Candidate retrieval: several sources run concurrently, their union is de-duplicated and filtered.

Sources (each a coroutine; the global lists they read from the store are cached for a second):

* following: newest videos of creators the user follows;
* remix: remixes of videos the user liked;
* similar: nearest neighbours, over content embeddings, of the user's taste vector and of each of the
  most recent positives (several queries, so a user with several interests keeps all of them);
* explore: new videos with few impressions, nearest to the user's taste first (for a cold user: a
  random sample), so that a new video reaches the users likely to enjoy it from its first impressions;
* trending: highest decayed engagement (cached for a second: it is global);
* fresh: the newest videos.

When a video comes from several sources it keeps the first in that order. Filters then remove what the
user must not see: unsafe labels, blocked creators, the user's own videos, hidden or reported videos,
videos already seen or already served in this paging session.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from kino.v1 import ranker_pb2
from services.ranker.features import UserProfile, top_k
from services.ranker.items import ItemCatalog
from services.ranker.store import COUNTER_INDEX, FeatureStore

SOURCE_SIMILAR = ranker_pb2.CANDIDATE_SOURCE_SIMILAR
SOURCE_FRESH = ranker_pb2.CANDIDATE_SOURCE_FRESH
SOURCE_TRENDING = ranker_pb2.CANDIDATE_SOURCE_TRENDING
SOURCE_REMIX = ranker_pb2.CANDIDATE_SOURCE_REMIX
SOURCE_FOLLOWING = ranker_pb2.CANDIDATE_SOURCE_FOLLOWING
SOURCE_EXPLORE = ranker_pb2.CANDIDATE_SOURCE_EXPLORE

SURFACES = ("for_you", "following", "remixes")

# A video reported by at least this many users, and by this share of its impressions, leaves every feed.
REPORTS_TO_SUPPRESS = 3
REPORT_RATE_TO_SUPPRESS = 0.02


@dataclass(frozen=True)
class RetrievalConfig:
    similar: int = 600
    similar_queries: int = 6  # the taste vector and the 5 most recent positives
    following: int = 100
    remix: int = 50
    explore: int = 100
    trending: int = 150
    fresh: int = 100
    # Videos among the newest `explore_pool` with fewer than `explore_max_impressions` impressions
    # are exploration candidates.
    explore_pool: int = 2000
    explore_max_impressions: int = 50
    # Global lists (trending, the exploration pool) are recomputed at most this often.
    cache_seconds: float = 1.0


@dataclass
class Candidates:
    rows: np.ndarray  # int64 (N,): catalog rows
    sources: np.ndarray  # int64 (N,): CandidateSource numbers

    def take(self, keep: np.ndarray) -> Candidates:
        return Candidates(self.rows[keep], self.sources[keep])

    def __len__(self) -> int:
        return self.rows.size


_EMPTY = np.zeros(0, np.int64)


class Retriever:
    def __init__(self, catalog: ItemCatalog, store: FeatureStore, config: RetrievalConfig) -> None:
        self.catalog = catalog
        self.store = store
        self.config = config
        self._trending_cache: tuple[float, np.ndarray] = (0.0, _EMPTY)
        # (expires, rows, their embeddings): the pool's embeddings are gathered once per refresh, not
        # once per request.
        self._explore_cache: tuple[float, np.ndarray, np.ndarray] = (
            0.0,
            _EMPTY,
            np.zeros((0, catalog.dim), np.float32),
        )

    async def retrieve(
        self, user: str, profile: UserProfile, surface: str, limit: int, now: float
    ) -> Candidates:
        """The de-duplicated union of the sources for `surface`, in source priority order; `limit`
        bounds the single-source surfaces (the for_you sources have their own budgets)."""
        if surface == "following":
            plan = [(SOURCE_FOLLOWING, self._following(profile, limit))]
        elif surface == "remixes":
            plan = [
                (SOURCE_REMIX, self._remix(profile)),
                (SOURCE_TRENDING, self._trending_remixes(now, limit)),
            ]
        else:
            # A cold user has no neighbours to retrieve: the similar budget goes to the other sources.
            boost = 3 if profile.cold else 1
            plan = [
                (SOURCE_FOLLOWING, self._following(profile, self.config.following)),
                (SOURCE_REMIX, self._remix(profile)),
                (SOURCE_SIMILAR, self._similar(profile)),
                (SOURCE_EXPLORE, self._explore(user, profile, now, boost * self.config.explore)),
                (SOURCE_TRENDING, self._trending(now, boost * self.config.trending)),
                (SOURCE_FRESH, self._fresh(boost * self.config.fresh)),
            ]
        # Awaited in turn, not gathered: every source computes in this process, and the two that read
        # the store (trending, the exploration pool) do so once a second; a task per source cost more
        # event-loop time than that overlap ever saved.
        results = [await source for _, source in plan]
        rows = np.concatenate(results)
        sources = np.concatenate(
            [np.full(r.size, s, np.int64) for (s, _), r in zip(plan, results, strict=True)]
        )
        _, first = np.unique(rows, return_index=True)
        first.sort()  # keep source priority order
        return Candidates(rows[first], sources[first])

    # -- sources -----------------------------------------------------------------------------------

    async def _following(self, profile: UserProfile, limit: int) -> np.ndarray:
        if not profile.follows.size:
            return _EMPTY
        rows = np.fromiter(
            (r for c in profile.follows for r in self.catalog.by_creator.get(int(c), ())), np.int64
        )
        # Newest first, and by row among videos created at the same time, so the page does not depend on
        # the order of the follows set (which differs between processes: every replica would serve another).
        newest_first = np.lexsort((rows, -self.catalog.create_times[rows]))
        return rows[newest_first][:limit]

    async def _remix(self, profile: UserProfile) -> np.ndarray:
        rows = [
            r
            for liked in profile.liked_rows
            for r in self.catalog.remixes_of.get(self.catalog.name(int(liked)), ())
        ]
        return np.array(rows[: self.config.remix], np.int64)

    async def _similar(self, profile: UserProfile) -> np.ndarray:
        if profile.cold:
            return _EMPTY
        recent = self.catalog.embeddings[profile.positive_rows[: self.config.similar_queries - 1]]
        queries = np.vstack([profile.vector[None], recent])  # (Q, D)
        rows, scores = self.catalog.search(queries, self.config.similar)  # (M,) each
        return best_unique(rows, scores, self.config.similar)

    async def _explore(self, user: str, profile: UserProfile, now: float, limit: int) -> np.ndarray:
        pool, embeddings = await self._explore_rows(now)
        if not pool.size:
            return _EMPTY
        if profile.cold:
            rng = np.random.default_rng(zlib.crc32(user.encode()) ^ int(now))
            return rng.permutation(pool)[:limit]
        similarity = embeddings @ profile.vector  # (P,)
        k = min(limit, pool.size)
        return pool[top_k(similarity, k)]

    async def _trending(self, now: float, limit: int) -> np.ndarray:
        return (await self._trending_rows(now))[:limit]

    async def _trending_rows(self, now: float) -> np.ndarray:
        expires, rows = self._trending_cache
        if time.monotonic() >= expires:
            names = await self.store.trending(4 * self.config.trending, now)
            rows = self.catalog.indices_of(names)
            self._trending_cache = (time.monotonic() + self.config.cache_seconds, rows)
        return rows

    async def _trending_remixes(self, now: float, limit: int) -> np.ndarray:
        rows = await self._trending_rows(now)
        newest = self.catalog.newest(self.config.explore_pool)
        both = np.concatenate([rows, newest])
        return both[self.catalog.is_remix[both]][:limit]

    async def _fresh(self, limit: int) -> np.ndarray:
        return self.catalog.newest(limit)

    async def _explore_rows(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Rows (P,) of the exploration pool and their embeddings (P, D)."""
        expires, rows, embeddings = self._explore_cache
        if time.monotonic() >= expires:
            newest = self.catalog.newest(self.config.explore_pool)
            names = self.catalog.names_of(newest)
            impressions = (await self.store.counters(names))[:, COUNTER_INDEX["impressions"]]
            rows = newest[impressions < self.config.explore_max_impressions]
            rows = rows[~self.catalog.unsafe[rows]]
            embeddings = self.catalog.embeddings[rows]
            self._explore_cache = (time.monotonic() + self.config.cache_seconds, rows, embeddings)
        return rows, embeddings


def best_unique(rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The `k` distinct rows with the highest scores, best first, from (rows, scores) pairs in which a
    row may appear several times (once per query that probed it); each row counts with its best score.

    Sorting all the pairs (several thousand for six queries) cost more than the search itself. The top
    2k pairs hold the answer whenever they hold k distinct rows: every pair left out scores no higher
    than the lowest of them. Otherwise (many duplicates) all pairs are sorted."""
    if rows.size > 2 * k:
        top = top_k(scores, 2 * k)  # best first
        _, first = np.unique(rows[top], return_index=True)
        if first.size >= k:
            return rows[top[np.sort(first)[:k]]]
    order = np.argsort(-scores, kind="stable")
    _, first = np.unique(rows[order], return_index=True)
    return rows[order[np.sort(first)[:k]]]


# ---------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------


def static_filter(
    candidates: Candidates, catalog: ItemCatalog, profile: UserProfile, user: str, excluded_rows: np.ndarray
) -> Candidates:
    """Drops unsafe videos, blocked creators, the user's own videos and `excluded_rows` (hidden,
    reported, served earlier in this session)."""
    rows = candidates.rows
    creators = catalog.creator_codes[rows]
    keep = ~catalog.unsafe[rows]
    if profile.blocked.size:
        keep &= ~np.isin(creators, profile.blocked)
    own = catalog.creator_code(user)
    if own is not None:
        keep &= creators != own
    if excluded_rows.size:
        keep &= ~np.isin(rows, excluded_rows)
    return candidates.take(keep)


def suppressed_by_reports(counters: np.ndarray) -> np.ndarray:
    """bool (N,): videos reported often enough to leave every feed (counters in store.COUNTERS order)."""
    reports = counters[:, COUNTER_INDEX["reports"]]
    impressions = counters[:, COUNTER_INDEX["impressions"]]
    return (reports >= REPORTS_TO_SUPPRESS) & (reports >= REPORT_RATE_TO_SUPPRESS * impressions)
