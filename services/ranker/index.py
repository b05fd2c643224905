"""An inverted-file (IVF) index over unit content embeddings, for nearest-neighbour retrieval.

Exact search reads every embedding (20,000 videos x 384 floats = 30 MB per query batch), which is
memory-bound and grows with the catalog. The index clusters the embeddings with spherical k-means
into about sqrt(N) cells; a query scores the cell centroids and then only the videos of its
`nprobe` nearest cells. Training runs on a sample in a worker thread and is repeated when the catalog
has doubled; videos added in between join their nearest cell at once.
"""

from __future__ import annotations

import numpy as np

TRAIN_SAMPLE = 8192
KMEANS_ITERATIONS = 8


class IvfIndex:
    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = centroids  # float32 (C, D), unit norm
        self.cells: list[dict[int, np.ndarray]] = [{} for _ in range(len(centroids))]  # row -> (D,)
        self.cell_of: dict[int, int] = {}
        # Each cell as contiguous arrays (rows (m,), vectors (m, D)), rebuilt after the cell changes,
        # so that a query reads its cells without gathering rows from the catalog matrix.
        self._packed: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(centroids)

    @classmethod
    def train(cls, embeddings: np.ndarray, seed: int = 0) -> IvfIndex:
        """Spherical k-means with about sqrt(N) cells; embeddings float32 (N, D), unit norm."""
        n = len(embeddings)
        rng = np.random.default_rng(seed)
        num_cells = int(np.clip(np.sqrt(n), 8, 2048))
        sample = embeddings[rng.choice(n, min(n, TRAIN_SAMPLE), replace=False)]  # (S, D)
        centroids = sample[rng.choice(len(sample), num_cells, replace=False)].copy()  # (C, D)
        for _ in range(KMEANS_ITERATIONS):
            assign = (sample @ centroids.T).argmax(axis=1)  # (S,)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assign, sample)
            empty = np.linalg.norm(sums, axis=1) < 1e-6
            sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]  # re-seed empty cells
            centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        index = cls(centroids.astype(np.float32))
        index.add(np.arange(n), embeddings)
        return index

    def __len__(self) -> int:
        return len(self.cell_of)

    def add(self, rows: np.ndarray, embeddings: np.ndarray) -> None:
        """Puts `rows` (M,) with embeddings (M, D) in their nearest cells, moving rows already indexed."""
        cells = (embeddings @ self.centroids.T).argmax(axis=1)  # (M,)
        for row, cell, vector in zip(rows.tolist(), cells.tolist(), embeddings, strict=True):
            old = self.cell_of.get(row)
            if old is not None:
                del self.cells[old][row]
                self._packed[old] = None
            self.cells[cell][row] = vector
            self.cell_of[row] = cell
            self._packed[cell] = None

    def search(self, queries: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every video in each query's `nprobe` nearest cells.

        queries float32 (Q, D). Returns rows (M,) and scores float32 (M,), query after query; a video
        probed by several queries appears once per query. Each query reads only its own cells: scoring
        the union of all probed cells against every query reads the same memory Q times over.
        """
        nprobe = min(nprobe, len(self.centroids))
        nearest = np.argpartition(-(queries @ self.centroids.T), nprobe - 1, axis=1)[
            :, :nprobe
        ]  # (Q, nprobe)
        rows, scores = [], []
        for query, cells in zip(queries, nearest.tolist(), strict=True):
            for cell in cells:
                cell_rows, vectors = self._pack(cell)
                if cell_rows.size:
                    rows.append(cell_rows)
                    scores.append(vectors @ query)  # (m,)
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(scores)

    def _pack(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        packed = self._packed[cell]
        if packed is None:
            members = self.cells[cell]
            rows = np.fromiter(members, np.int64, len(members))
            vectors = (
                np.stack(list(members.values()))
                if members
                else np.zeros((0, self.centroids.shape[1]), np.float32)
            )
            packed = self._packed[cell] = (rows, vectors)
        return packed
