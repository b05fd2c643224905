"""Re-ranking: from model scores to a page, by a greedy pass with penalties and exploration slots.

Pure policy over arrays (no store, no model), unit-tested on hand-made inputs. The model scores are
standardized over the re-ranked pool, so every penalty and bonus below is in standard deviations of
the request's own scores. At each position the candidate with the best adjusted score is taken:

    adjusted = z(score) + freshness − fatigue − creator penalty − topic penalty

* creator diversity: at most `creator_cap` videos of one creator per page, and a penalty for each
  video of that creator already on the page or among the user's recent impressions;
* topic diversity: a penalty when a candidate is close (cosine above `topic_similarity`) to one of
  the last `topic_window` picks, so a page does not run five cat videos in a row;
* fatigue: a penalty for each recent impression of the user on the same topic;
* freshness: a bonus for videos younger than `fresh_hours`, fading linearly with age;
* exploration: one position in every `explore_every` is reserved for the best-scored cold-start
  video (fewer than `explore_max_impressions` impressions), so that new videos gather their first
  impressions among the users the model thinks will like them, instead of waiting to trend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.ranker.features import top_k


@dataclass(frozen=True)
class RerankConfig:
    pool: int = 200  # the best `pool` candidates by model score are re-ranked
    creator_cap: int = 2
    creator_penalty: float = 0.4
    topic_window: int = 4
    topic_similarity: float = 0.75
    topic_penalty: float = 0.6
    fatigue_penalty: float = 0.15
    freshness_bonus: float = 0.3
    fresh_hours: float = 24.0
    explore_every: int = 5  # 0: no exploration slots
    explore_offset: int = 2  # the first exploration slot is the third position
    explore_max_impressions: int = 50


@dataclass
class RerankInput:
    scores: np.ndarray  # float32 (N,): model scores
    embeddings: np.ndarray  # float32 (N, D): unit content embeddings (or (M, D) with embedding_rows)
    creators: np.ndarray  # int (N,): creator codes
    impressions: np.ndarray  # float (N,): impressions so far
    age_hours: np.ndarray  # float (N,)
    recent_embeddings: np.ndarray  # float32 (R, D): the user's recent impressions
    recent_creators: np.ndarray  # int (R,)
    # int (N,): when given, candidate i's embedding is embeddings[embedding_rows[i]], so a caller can
    # pass its whole catalog matrix instead of copying every candidate's row for a pool of a few hundred.
    embedding_rows: np.ndarray | None = None


@dataclass
class RerankOutput:
    order: list[int]  # indices into the input arrays, page order
    scores: list[float]  # adjusted score of each pick
    explored: list[bool]  # the pick filled an exploration slot


def rerank(x: RerankInput, page_size: int, config: RerankConfig) -> RerankOutput:
    n = x.scores.size
    if n == 0 or page_size <= 0:
        return RerankOutput([], [], [])
    pool = top_k(x.scores, max(config.pool, page_size))  # (P,)
    scores = x.scores[pool].astype(np.float64)
    z = (scores - scores.mean()) / (scores.std() + 1e-6)
    emb = x.embeddings[pool if x.embedding_rows is None else x.embedding_rows[pool]]  # (P, D)
    local_creators, creator_of = np.unique(x.creators[pool], return_inverse=True)  # creator_of (P,)
    recent_count = (
        (local_creators[:, None] == x.recent_creators[None, :]).sum(axis=1).astype(np.float64)
    )  # (K,)
    page_count = np.zeros(local_creators.size, np.float64)
    fresh = np.clip(1.0 - x.age_hours[pool] / config.fresh_hours, 0.0, 1.0)
    base = z + config.freshness_bonus * fresh
    if x.recent_embeddings.size:
        same_topic = (emb @ x.recent_embeddings.T > config.topic_similarity).sum(axis=1)  # (P,)
        base -= config.fatigue_penalty * same_topic
    cold = x.impressions[pool] < config.explore_max_impressions

    # The loop keeps each penalty up to date as picks are made (a few vector operations per position
    # over the pool), instead of recomputing it from the page so far.
    creator_penalty = config.creator_penalty * recent_count[creator_of]  # (P,)
    picked = np.zeros(pool.size, bool)
    capped = np.zeros(pool.size, bool)  # its creator is at the cap
    picked_sims = np.full((config.topic_window, pool.size), -np.inf)  # similarity to the last picks
    topic_penalty = np.zeros(pool.size)  # (P,)
    out = RerankOutput([], [], [])
    for position in range(min(page_size, pool.size)):
        adjusted = base - creator_penalty - topic_penalty
        allowed = ~(picked | capped)
        if not allowed.any():  # only capped creators left: the cap gives way
            allowed = ~picked
        explore_slot = config.explore_every > 0 and position % config.explore_every == config.explore_offset
        explored = explore_slot and bool((allowed & cold).any())
        if explored:
            allowed &= cold
        adjusted[~allowed] = -np.inf
        pick = int(np.argmax(adjusted))
        creator = creator_of[pick]
        page_count[creator] += 1
        same_creator = creator_of == creator
        creator_penalty[same_creator] += config.creator_penalty
        picked[pick] = True
        if page_count[creator] >= config.creator_cap:
            capped |= same_creator
        if config.topic_window:
            picked_sims[position % config.topic_window] = emb @ emb[pick]
            closeness = (picked_sims.max(axis=0) - config.topic_similarity) / (1.0 - config.topic_similarity)
            topic_penalty = config.topic_penalty * np.minimum(np.maximum(closeness, 0.0), 1.0)
        out.order.append(int(pool[pick]))
        out.scores.append(float(adjusted[pick]))
        out.explored.append(explored)
    return out
