"""Measured step times, per shape bucket and batch size: what admission and pre-emption decide with.

Every executed step reports its wall time; an exponential moving average per (bucket, rows) smooths
the noise of a shared machine. The engine profiles each bucket at start-up (warm-up), so predictions
rest on measurements from the first request on. A batch size never measured is predicted from its
nearest measured neighbours: linearly between them, and proportionally to rows beyond the largest,
which over-estimates (a larger batch is never cheaper per row than linear extrapolation says), so the
engine errs on the side of refusing rather than of missing a deadline it promised.
"""

from __future__ import annotations

import bisect

from services.denoiser.engine.request import ShapeBucket


class StepTimes:
    def __init__(self, prior_seconds_per_row: float = 0.05, smoothing: float = 0.2) -> None:
        self.prior_seconds_per_row = prior_seconds_per_row  # used only for a bucket never measured
        self.smoothing = smoothing  # weight of the newest measurement in the moving average
        self._seconds: dict[ShapeBucket, dict[int, float]] = {}

    def observe(self, bucket: ShapeBucket, rows: int, seconds: float) -> None:
        by_rows = self._seconds.setdefault(bucket, {})
        old = by_rows.get(rows)
        by_rows[rows] = seconds if old is None else old + self.smoothing * (seconds - old)

    def measured(self, bucket: ShapeBucket) -> dict[int, float]:
        return dict(self._seconds.get(bucket, {}))

    def predict(self, bucket: ShapeBucket, rows: int) -> float:
        """Seconds one step of `rows` batch rows of this bucket is expected to take."""
        if rows <= 0:
            return 0.0
        by_rows = self._seconds.get(bucket)
        if not by_rows:
            return self.prior_seconds_per_row * rows
        if rows in by_rows:
            return by_rows[rows]
        sizes = sorted(by_rows)
        i = bisect.bisect_left(sizes, rows)
        if i == len(sizes):
            largest = sizes[-1]
            return by_rows[largest] * rows / largest
        if i == 0:
            return by_rows[sizes[0]]
        low, high = sizes[i - 1], sizes[i]
        weight = (rows - low) / (high - low)
        return by_rows[low] + weight * (by_rows[high] - by_rows[low])

    def best_rate(self, bucket: ShapeBucket, max_rows: int) -> float:
        """Row-steps per second at the most efficient batch size up to max_rows."""
        return max(rows / self.predict(bucket, rows) for rows in range(1, max_rows + 1))
