"""Scorers turn a request's candidate features into one score per candidate.

`ModelScorer` runs the trained multi-task model. `ContentScorer` needs no training: it is what the
ranker uses when no weights are installed, and the "content-only" baseline of the evaluation.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from services.ranker.features import FEATURE_NAMES, CandidateFeatures, UserProfile
from services.ranker.model import FeedRankerModel

_F = {name: i for i, name in enumerate(FEATURE_NAMES)}


class Scorer(abc.ABC):
    name: str

    @abc.abstractmethod
    def score(self, profile: UserProfile, features: CandidateFeatures) -> np.ndarray:
        """float32 (N,): higher is better."""

    def add_items(self, rows: np.ndarray, row_stamps: np.ndarray, embeddings: np.ndarray) -> None:
        """Videos were written to the catalog at `rows` (N,) with `row_stamps` (N,) and unit
        `embeddings` (N, D): a scorer with per-video state prepares it now, off the Rank path."""
        return None


class ModelScorer(Scorer):
    """Runs the model with the per-video part cached (`FeedRankerModel.item_features`), keyed by catalog
    row and the row's write stamp, so a video's entry is recomputed only after its embedding changed.
    `add_items` fills entries at upsert time, so Rank normally finds every candidate cached. Torch runs
    under inference_mode; the caller sets the thread count (RankerSettings.threads)."""

    name = "model"

    def __init__(self, model: FeedRankerModel) -> None:
        self.model = model.eval()
        width = model.config.tower_dim + model.config.trunk_dim
        self._cache = np.zeros((0, width), np.float32)  # (rows, H + T)
        self._stamps = np.zeros(0, np.int64)  # (rows,): the row stamp each entry was computed for

    def add_items(self, rows: np.ndarray, row_stamps: np.ndarray, embeddings: np.ndarray) -> None:
        self._refresh(rows, row_stamps, lambda stale: embeddings[stale])

    def _refresh(self, rows: np.ndarray, row_stamps: np.ndarray, embeddings_of) -> None:
        """Recomputes the entries of `rows` whose stamp differs; `embeddings_of(stale)` gives the
        embeddings of the stale positions only, so a Rank whose candidates are all cached gathers none."""
        self._grow(rows)
        stale = np.flatnonzero(self._stamps[rows] != row_stamps)
        if stale.size:
            with torch.inference_mode():
                fresh = self.model.item_features(torch.from_numpy(np.ascontiguousarray(embeddings_of(stale))))
            self._cache[rows[stale]] = fresh.numpy()
            self._stamps[rows[stale]] = row_stamps[stale]

    def score(self, profile: UserProfile, features: CandidateFeatures) -> np.ndarray:
        # Normally nothing to refresh: add_items filled the entries at upsert.
        self._refresh(
            features.rows,
            features.row_stamps,
            lambda stale: features.catalog_embeddings[features.rows[stale]],
        )
        with torch.inference_mode():
            heads = self.model.predict_cached(
                torch.from_numpy(profile.model_taste[None]),  # (1, D)
                torch.from_numpy(self._cache.take(features.rows, axis=0)),  # (N, H + T)
                torch.from_numpy(features.dense),  # (N, F)
            )
            return self.model.score(heads).numpy()

    def _grow(self, rows: np.ndarray) -> None:
        if not rows.size or int(rows.max()) < self._stamps.size:
            return
        size = max(int(rows.max()) + 1, 2 * self._stamps.size)
        cache = np.zeros((size, self._cache.shape[1]), np.float32)
        cache[: self._stamps.size] = self._cache
        stamps = np.zeros(size, np.int64)
        stamps[: self._stamps.size] = self._stamps
        self._cache, self._stamps = cache, stamps


class ContentScorer(Scorer):
    """Similarity to the user's taste and recent positives, away from recent negatives, with a small
    popularity prior (smoothed like rate and watch ratio) that alone orders a cold user's feed."""

    name = "content"

    def score(self, profile: UserProfile, features: CandidateFeatures) -> np.ndarray:
        d = features.dense
        content = (
            d[:, _F["cos_taste"]] + 0.5 * d[:, _F["max_cos_positive"]] - 0.5 * d[:, _F["max_cos_negative"]]
        )
        popularity = 2.0 * d[:, _F["like_rate"]] + 0.5 * d[:, _F["watch_ratio"]]
        return (content + popularity).astype(np.float32)
