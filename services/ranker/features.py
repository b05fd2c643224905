"""Model inputs built from the catalog and the online features, the same way at serving and training.

A user is summarized once per request (`UserProfile`): a taste vector (recency- and weight-averaged
embeddings of recent positives), a second one regressed on the whole response history
(`regressed_taste`), the recent positives and negatives themselves, followed and blocked creators.
Each candidate then gets its content embedding and the dense features in `FEATURE_NAMES`.
The simulator logs exactly these arrays, so the model trains on what it will see in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from services.ranker.items import ItemCatalog
from services.ranker.store import COUNTER_INDEX, UserState

MAX_PROFILE_POSITIVES = 50  # all the store keeps: a taste estimated from few videos is mostly noise
MAX_PROFILE_NEGATIVES = 20
MAX_PROFILE_RECENT = 30
FATIGUE_WINDOW = 5  # the last impressions that make a topic feel repetitive
# A taste is regressed on the response history only from this many distinct videos on.
MIN_RESPONSE_VIDEOS = 10
RESPONSE_RIDGE = 1.0
RECENCY_DECAY = 0.97  # weight of the k-th most recent positive: RECENCY_DECAY ** k
# A positive with at least this weight (a like, share or remix) makes its remixes candidates.
LIKED_WEIGHT = 2.0

# (prior mean, prior strength in impressions) for the smoothed per-video rates: a video with no
# impressions has the prior, one with many has its own rate.
RATE_PRIORS = {
    "like_rate": (0.05, 20.0),
    "watch_ratio": (0.4, 10.0),
    "skip_rate": (0.3, 10.0),
    "share_rate": (0.01, 50.0),
    "remix_rate": (0.005, 50.0),
    "negative_rate": (0.005, 50.0),
}

FEATURE_NAMES = (
    "cos_taste",  # candidate . user taste vector (0 for a user without positives)
    "max_cos_positive",  # highest similarity to one of the recent positives
    "max_cos_negative",  # highest similarity to one of the recent negatives
    "log_impressions",  # log1p(impressions)
    "like_rate",
    "watch_ratio",
    "skip_rate",
    "share_rate",
    "remix_rate",
    "negative_rate",  # (hides + reports) per impression
    "log_age_hours",  # log1p(hours since creation)
    "follows_creator",
    "creator_affinity",  # share of the user's recent positives from this creator
    "log_user_positives",
    "log_user_impressions",
    "is_remix",
    "remix_of_liked",
    "max_cos_recent",  # highest similarity to the user's last FATIGUE_WINDOW impressions (fatigue)
    "mean_cos_recent",  # mean similarity to them
    "cos_regressed_taste",  # candidate . the model's taste input (UserProfile.model_taste)
)
NUM_FEATURES = len(FEATURE_NAMES)
_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest `scores`, best first (ties in index order), without sorting the rest."""
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < scores.size:
        kth = -np.partition(-scores, k - 1)[k - 1]  # the k-th highest score
        above = np.flatnonzero(scores > kth)
        top = np.concatenate([above, np.flatnonzero(scores == kth)[: k - above.size]])
        top.sort()  # index order, so ties break as in a full stable argsort
        return top[np.argsort(-scores[top], kind="stable")]
    return np.argsort(-scores, kind="stable")


@dataclass
class UserProfile:
    vector: np.ndarray  # float32 (D,): unit taste vector, zeros for a cold user
    # float32 (D,): the ranking model's taste input (the user tower's, and `cos_regressed_taste`): the
    # unit taste regressed on the response history (it ranks better: docs/ranker/README.md); where that
    # history is too short to regress on, `vector`. Such a user has positives without impressions
    # (likes from outside the feed): the simulator the model learns from never makes one, and a model
    # given zeros there ignored the likes. Zeros for a cold user.
    model_taste: np.ndarray
    positive_rows: np.ndarray  # int64 (P,): catalog rows of recent positives, newest first, unique
    negative_rows: np.ndarray  # int64 (M,)
    recent_rows: np.ndarray  # int64 (R,): recent impressions, newest first
    liked_rows: np.ndarray  # int64 (L,): positives with weight >= LIKED_WEIGHT
    follows: np.ndarray  # int32 (F,): creator codes
    blocked: np.ndarray  # int32 (B,): creator codes
    affinity_creators: np.ndarray  # int32 (K,), sorted: creators of the recent positives
    affinity_shares: np.ndarray  # float32 (K,): share of the recent positives from each
    num_positives: int
    num_impressions: int

    @property
    def cold(self) -> bool:
        return self.positive_rows.size == 0


def build_profile(state: UserState, catalog: ItemCatalog) -> UserProfile:
    best: dict[int, float] = {}
    for video, weight in state.positives:
        row = catalog.index_of(video)
        if row is not None and (row in best or len(best) < MAX_PROFILE_POSITIVES):
            best[row] = max(best.get(row, 0.0), weight)
    rows = np.fromiter(best, np.int64, len(best))
    weights = np.fromiter(best.values(), np.float32, len(best))
    vector = np.zeros(catalog.dim, np.float32)
    codes, counts = np.unique(catalog.creator_codes[rows], return_counts=True)
    if rows.size:
        decay = RECENCY_DECAY ** np.arange(rows.size, dtype=np.float32)
        vector = (weights * decay) @ catalog.embeddings[rows]  # (D,)
        vector /= max(float(np.linalg.norm(vector)), 1e-6)
    creator_codes = [catalog.creator_code(c) for c in state.follows]
    blocked_codes = [catalog.creator_code(c) for c in state.blocked]
    regressed = regressed_taste(state.responses, catalog)
    return UserProfile(
        vector=vector.astype(np.float32),
        model_taste=regressed if regressed.any() else vector.astype(np.float32),
        positive_rows=rows,
        negative_rows=catalog.indices_of(state.negatives[:MAX_PROFILE_NEGATIVES]),
        recent_rows=catalog.indices_of(state.recent_impressions[:MAX_PROFILE_RECENT]),
        liked_rows=rows[weights >= LIKED_WEIGHT],
        follows=np.array([c for c in creator_codes if c is not None], np.int32),
        blocked=np.array([c for c in blocked_codes if c is not None], np.int32),
        affinity_creators=codes.astype(np.int32),
        affinity_shares=(counts / max(rows.size, 1)).astype(np.float32),
        num_positives=state.positive_events,
        num_impressions=state.impressions,
    )


def regressed_taste(responses: list[tuple[str, float]], catalog: ItemCatalog) -> np.ndarray:
    """A unit taste vector from everything the user responded to, float32 (D,); zeros below
    MIN_RESPONSE_VIDEOS distinct videos.

    The store's recent positives (the `vector` of the profile) forget all but the last 50 and ignore
    what the user was shown and passed over. Here every video in the response history counts with its
    summed response (0 for one shown and ignored: `events.RESPONSE_VALUES`), and the taste is the ridge
    regression of response on content, in the catalog's principal directions (`ItemCatalog.taste_basis`).
    In the simulator, with the true video quality given, ranking by it reached 73-76% of the oracle's
    NDCG@10 against 60% for the weighted mean of recent positives (docs/ranker/README.md)."""
    zeros = np.zeros(catalog.dim, np.float32)
    if len(responses) < MIN_RESPONSE_VIDEOS or (basis := catalog.taste_basis()) is None:
        return zeros
    totals: dict[int, float] = {}
    index_of = catalog.index_of
    for video, value in responses:
        row = index_of(video)
        if row is not None:
            totals[row] = totals.get(row, 0.0) + value
    if len(totals) < MIN_RESPONSE_VIDEOS:
        return zeros
    rows = np.fromiter(totals, np.int64, len(totals))
    y = np.fromiter(totals.values(), np.float64, len(totals))
    x = catalog.taste_coordinates(rows).astype(np.float64)  # (n, k)
    x -= x.mean(axis=0)
    y -= y.mean()
    k = x.shape[1]
    weights = np.linalg.solve(x.T @ x + RESPONSE_RIDGE * np.eye(k), x.T @ y)  # (k,)
    taste = basis[1] @ weights.astype(np.float32)  # (D,)
    norm = float(np.linalg.norm(taste))
    return zeros if norm < 1e-9 else (taste / norm).astype(np.float32)


@dataclass
class CandidateFeatures:
    rows: np.ndarray  # int64 (N,): catalog rows
    row_stamps: np.ndarray  # int64 (N,): catalog.row_stamps of those rows (for caches keyed by row)
    dense: np.ndarray  # float32 (N, NUM_FEATURES)
    nearest_positive: np.ndarray  # int64 (N,): catalog row of the most similar positive, -1 if none
    catalog_embeddings: np.ndarray  # float32 (catalog rows, D): the catalog's matrix itself, not a copy

    @property
    def item_vectors(self) -> np.ndarray:
        """float32 (N, D): the candidates' content embeddings, gathered when asked for. Rank needs only
        the re-ranked pool's (a fifth of them) and the scorer only those of videos it has not cached:
        gathering all of them on every call cost a tenth of Rank."""
        return self.catalog_embeddings[self.rows]

    def take(self, keep: np.ndarray) -> CandidateFeatures:
        """The features of the candidates at positions `keep` (indices or a mask)."""
        return CandidateFeatures(
            rows=self.rows[keep],
            row_stamps=self.row_stamps[keep],
            dense=self.dense[keep],
            nearest_positive=self.nearest_positive[keep],
            catalog_embeddings=self.catalog_embeddings,
        )


def smoothed_rates(counters: np.ndarray) -> dict[str, np.ndarray]:
    """counters (N, C) -> each rate of RATE_PRIORS, (N,)."""
    c = COUNTER_INDEX
    impressions = counters[:, c["impressions"]]
    watches = counters[:, c["watches"]]

    def rate(name: str, hits: np.ndarray, trials: np.ndarray) -> np.ndarray:
        prior, strength = RATE_PRIORS[name]
        return (hits + prior * strength) / (trials + strength)

    return {
        "like_rate": rate("like_rate", counters[:, c["likes"]], impressions),
        "watch_ratio": rate("watch_ratio", counters[:, c["watch_ratio_sum"]], watches),
        "skip_rate": rate("skip_rate", counters[:, c["skips"]], impressions),
        "share_rate": rate("share_rate", counters[:, c["shares"]], impressions),
        "remix_rate": rate("remix_rate", counters[:, c["remixes"]], impressions),
        "negative_rate": rate(
            "negative_rate", counters[:, c["hides"]] + counters[:, c["reports"]], impressions
        ),
    }


def candidate_features(
    profile: UserProfile, catalog: ItemCatalog, rows: np.ndarray, counters: np.ndarray, now: float
) -> CandidateFeatures:
    """rows (N,) catalog rows; counters (N, C) their counters in store.COUNTERS order."""
    n = rows.size
    dense = np.zeros((n, NUM_FEATURES), np.float32)
    nearest = np.full(n, -1, np.int64)
    f = _FEATURE_INDEX
    # One matmul against the two taste vectors and the recent positives, negatives and impressions
    # together: (N, 2 + P + M + R), in bfloat16 where this CPU does that faster (items.similarity_dtype).
    recent = profile.recent_rows[:FATIGUE_WINDOW]
    positives, negatives = profile.positive_rows, profile.negative_rows
    table = catalog.similarity_table
    references = torch.cat(
        [
            torch.from_numpy(np.stack([profile.vector, profile.model_taste])).to(table.dtype),
            table.index_select(0, torch.from_numpy(np.concatenate([positives, negatives, recent]))),
        ]
    )  # (2 + P + M + R, D)
    sims = (
        torch.mm(table.index_select(0, torch.from_numpy(rows)), references.T).float().numpy()
    )  # (N, 2 + P + M + R)
    taste, regressed, sims = sims[:, 0], sims[:, 1], sims[:, 2:]
    dense[:, f["cos_regressed_taste"]] = regressed  # 0 for a cold user
    p, m = positives.size, positives.size + negatives.size
    if not profile.cold:
        dense[:, f["cos_taste"]] = taste
        best = sims[:, :p].argmax(axis=1)
        dense[:, f["max_cos_positive"]] = sims[np.arange(n), best]
        nearest = positives[best]
    if negatives.size:
        dense[:, f["max_cos_negative"]] = sims[:, p:m].max(axis=1)
    if recent.size:
        dense[:, f["max_cos_recent"]] = sims[:, m:].max(axis=1)
        dense[:, f["mean_cos_recent"]] = sims[:, m:].mean(axis=1)
    dense[:, f["log_impressions"]] = np.log1p(counters[:, COUNTER_INDEX["impressions"]])
    for name, values in smoothed_rates(counters).items():
        dense[:, f[name]] = values
    age_hours = np.maximum(now - catalog.create_times[rows], 0.0) / 3600.0
    dense[:, f["log_age_hours"]] = np.log1p(age_hours)
    creators = catalog.creator_codes[rows]
    if profile.follows.size:
        dense[:, f["follows_creator"]] = np.isin(creators, profile.follows)
    if profile.affinity_creators.size:
        at = np.minimum(
            np.searchsorted(profile.affinity_creators, creators), profile.affinity_creators.size - 1
        )
        match = profile.affinity_creators[at] == creators
        dense[:, f["creator_affinity"]] = np.where(match, profile.affinity_shares[at], 0.0)
    dense[:, f["log_user_positives"]] = np.log1p(profile.num_positives)
    dense[:, f["log_user_impressions"]] = np.log1p(profile.num_impressions)
    dense[:, f["is_remix"]] = catalog.is_remix[rows]
    if profile.liked_rows.size:
        remixes = [
            row for liked in profile.liked_rows for row in catalog.remixes_of.get(catalog.name(liked), ())
        ]
        dense[:, f["remix_of_liked"]] = np.isin(rows, remixes)
    return CandidateFeatures(
        rows=rows,
        row_stamps=catalog.row_stamps[rows],
        dense=dense,
        nearest_positive=nearest,
        catalog_embeddings=catalog.embeddings,
    )
