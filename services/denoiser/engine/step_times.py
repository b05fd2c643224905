"""Measured step times, per shape bucket and batch size: what admission and pre-emption decide with.

Every executed step reports its wall time, split into the model call and the decoding of previews
and final frames (one decode per request, whatever the batch); an exponential moving average per
(bucket, rows), and one per bucket for a decode, smooth the noise of a shared machine. The engine profiles each bucket at start-up (warm-up), so predictions
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
        self._decode_seconds: dict[ShapeBucket, float] = {}

    def observe(self, bucket: ShapeBucket, rows: int, seconds: float) -> None:
        by_rows = self._seconds.setdefault(bucket, {})
        old = by_rows.get(rows)
        by_rows[rows] = seconds if old is None else old + self.smoothing * (seconds - old)

    def observe_decode(self, bucket: ShapeBucket, seconds: float) -> None:
        old = self._decode_seconds.get(bucket)
        self._decode_seconds[bucket] = seconds if old is None else old + self.smoothing * (seconds - old)

    def decode_seconds(self, bucket: ShapeBucket) -> float:
        """Seconds one preview or final decode takes; 0 until measured."""
        return self._decode_seconds.get(bucket, 0.0)

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

    def best_rows(self, bucket: ShapeBucket, max_rows: int, tolerance: float = 0.05) -> int:
        """The largest batch size up to max_rows whose row-steps per second are within `tolerance` of
        the best: larger batches serve more requests at once, but not at a loss of throughput."""
        rates = {rows: rows / self.predict(bucket, rows) for rows in range(1, max_rows + 1)}
        best = max(rates.values())
        return max(rows for rows, rate in rates.items() if rate >= (1 - tolerance) * best)

    def best_rate(self, bucket: ShapeBucket, max_rows: int) -> float:
        """Row-steps per second at the most efficient batch size up to max_rows."""
        rows = self.best_rows(bucket, max_rows)
        return rows / self.predict(bucket, rows)
