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


class ModelScorer(Scorer):
    name = "model"

    def __init__(self, model: FeedRankerModel) -> None:
        self.model = model.eval()

    def score(self, profile: UserProfile, features: CandidateFeatures) -> np.ndarray:
        with torch.inference_mode():
            heads = self.model.predict(
                torch.from_numpy(profile.vector[None]),  # (1, D)
                torch.from_numpy(features.item_vectors),  # (N, D)
                torch.from_numpy(features.dense),  # (N, F)
            )
            return self.model.score(heads).numpy()


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
