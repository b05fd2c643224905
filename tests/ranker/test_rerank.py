"""Re-ranking policy on hand-made inputs: creator cap, topic diversity, fatigue, exploration slots."""

import numpy as np

from services.ranker.features import top_k
from services.ranker.rerank import RerankConfig, RerankInput, rerank


def inputs(n=20, creators=None, embeddings=None, impressions=None, scores=None):
    rng = np.random.default_rng(0)
    if embeddings is None:
        embeddings = rng.normal(size=(n, 16)).astype(np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return RerankInput(
        scores=np.linspace(1, 0, n).astype(np.float32) if scores is None else scores,
        embeddings=embeddings,
        creators=np.arange(n) if creators is None else creators,
        impressions=np.full(n, 1000.0) if impressions is None else impressions,
        age_hours=np.full(n, 100.0),
        recent_embeddings=np.zeros((0, embeddings.shape[1]), np.float32),
        recent_creators=np.zeros(0, np.int64),
    )


def test_without_constraints_the_order_is_the_score_order():
    assert rerank(inputs(), 10, RerankConfig()).order == list(range(10))


def test_at_most_two_videos_per_creator_on_a_page():
    creators = np.array([0] * 15 + [1, 2, 3, 4, 5])
    out = rerank(inputs(creators=creators), 6, RerankConfig())
    assert [creators[i] for i in out.order].count(0) == 2 and len(out.order) == 6


def test_near_duplicates_are_spread_out():
    rng = np.random.default_rng(1)
    base = rng.normal(size=16)
    embeddings = np.vstack(
        [np.tile(base, (10, 1)) + 0.01 * rng.normal(size=(10, 16)), rng.normal(size=(190, 16))]
    )
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)
    scores = np.concatenate([np.full(10, 1.0), np.linspace(0.98, 0.0, 190)]).astype(np.float32)
    out = rerank(inputs(n=200, embeddings=embeddings, scores=scores), 8, RerankConfig())
    assert out.order[0] == 0 and sum(i < 10 for i in out.order) <= 4


def test_fatigue_pushes_down_a_topic_the_user_just_saw_a_lot():
    x = inputs()
    x.recent_embeddings = np.tile(x.embeddings[0], (5, 1))
    assert 0 not in rerank(x, 3, RerankConfig()).order


def test_one_slot_in_five_goes_to_a_cold_start_video():
    impressions = np.full(20, 1000.0)
    impressions[[15, 18]] = 3
    out = rerank(inputs(impressions=impressions), 10, RerankConfig())
    assert out.explored == [False, False, True, False, False, False, False, True, False, False]
    assert [out.order[2], out.order[7]] == [15, 18]
    assert not any(rerank(inputs(impressions=impressions), 10, RerankConfig(explore_every=0)).explored)


def test_top_k_matches_a_full_stable_sort_ties_included():
    rng = np.random.default_rng(0)
    for _ in range(300):
        scores = rng.integers(0, 20, size=int(rng.integers(1, 300))).astype(np.float32)
        k = int(rng.integers(0, 320))
        np.testing.assert_array_equal(top_k(scores, k), np.argsort(-scores, kind="stable")[:k])
