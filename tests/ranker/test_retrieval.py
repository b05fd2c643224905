"""Retrieval helpers on hand-made arrays."""

import numpy as np

from services.ranker.retrieval import best_unique


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
