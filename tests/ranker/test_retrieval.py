"""Retrieval helpers and sources on hand-made arrays and catalogs."""

from dataclasses import replace

import numpy as np

from services.ranker.features import build_profile
from services.ranker.items import ItemCatalog, ItemRecord
from services.ranker.retrieval import RetrievalConfig, Retriever, best_unique
from services.ranker.store import MemoryFeatureStore, UserState
from tests.ranker.conftest import DIM, topic_vector


def _best_unique_by_full_sort(rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    _, first = np.unique(rows[order], return_index=True)
    return rows[order][np.sort(first)][:k]


def test_best_unique_keeps_each_rows_best_score_and_agrees_with_a_full_sort():
    rows = np.array([7, 3, 7, 5, 3, 9])
    scores = np.array([0.1, 0.9, 0.8, 0.5, 0.2, 0.3], np.float32)
    assert best_unique(rows, scores, 3).tolist() == [3, 7, 5]
    rng = np.random.default_rng(0)
    for _ in range(200):  # few duplicates (the shortcut) and many (the fallback to a full sort)
        n, k = int(rng.integers(1, 3000)), int(rng.integers(1, 700))
        rows = rng.integers(0, int(rng.integers(1, 2000)), n)
        scores = rng.normal(size=n).astype(np.float32)
        np.testing.assert_array_equal(
            best_unique(rows, scores, k), _best_unique_by_full_sort(rows, scores, k)
        )


async def test_the_following_source_orders_videos_of_one_moment_by_row_whatever_the_follows_order():
    """Videos created at the same moment keep one order, so every replica (whose sets iterate in another
    order) serves the same following feed."""
    rng = np.random.default_rng(0)
    catalog = ItemCatalog(DIM)
    catalog.upsert(
        [
            ItemRecord(
                f"videos/v{i}", f"creator{i % 4}", topic_vector(0, rng), 100.0 * (i >= 8), (), "", 10.0, ""
            )
            for i in range(12)
        ]
    )
    profile = build_profile(UserState(follows={"creator1", "creator2", "creator3"}), catalog)
    retriever = Retriever(catalog, MemoryFeatureStore(), RetrievalConfig())
    pages = [
        await retriever._following(replace(profile, follows=np.array(order, np.int32)), 5)
        for order in (profile.follows, profile.follows[::-1])
    ]
    names = [[catalog.name(int(r)) for r in page] for page in pages]
    # The newest (created at 100) first, by row; then the older ones by row.
    assert names[0] == names[1] == ["videos/v9", "videos/v10", "videos/v11", "videos/v1", "videos/v2"]
