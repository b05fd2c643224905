"""Measured step times, per shape bucket and batch size: what admission and pre-emption decide with.

Every executed step reports its wall time, split into the model call, the decoding of previews
and final frames (one decode per request, whatever the batch) and restarts (one round trip through the
autoencoder per request whose main schedule the step ends); a step of several DiT calls (rows on
different token grids) is split between its calls, so a batch size's time is one call's. An
exponential moving average per (bucket, rows), and one per bucket for a decode, smooth the noise of a
shared machine. The engine profiles each bucket at start-up (warm-up), so predictions rest on
measurements from the first request on. Predictions read the measured times fitted non-decreasing in
rows (a noisy shared machine measures some larger batches faster than smaller ones). A batch size
never measured is predicted from its nearest measured neighbours: linearly between them, and
proportionally to rows beyond the largest, which over-estimates (a larger batch is never cheaper per
row than linear extrapolation says), so the engine errs on the side of refusing rather than of missing
a deadline it promised.
"""

from __future__ import annotations

import bisect

from services.denoiser.engine.request import ShapeBucket


class StepTimes:
    def __init__(
        self, prior_fixed_seconds: float = 0.05, prior_seconds_per_row: float = 0.005, smoothing: float = 0.2
    ) -> None:
        # For a bucket never measured: a fixed cost plus a small cost per row, as on an accelerator.
        self.prior_fixed_seconds = prior_fixed_seconds
        self.prior_seconds_per_row = prior_seconds_per_row
        self.smoothing = smoothing  # weight of the newest measurement in the moving average
        self._seconds: dict[ShapeBucket, dict[int, float]] = {}
        self._decode_seconds: dict[ShapeBucket, float] = {}
        self._restart_seconds: dict[ShapeBucket, float] = {}
        self._fits: dict[ShapeBucket, dict[int, float]] = {}  # `_monotone`'s, per bucket

    def observe(self, bucket: ShapeBucket, rows: int, seconds: float) -> None:
        self._fits.pop(bucket, None)
        self._smooth(self._seconds.setdefault(bucket, {}), rows, seconds)

    def observe_calls(self, bucket: ShapeBucket, call_rows: list[int], seconds: float) -> None:
        """A step of several DiT calls (rows on different token grids) that took `seconds` in all:
        split between its calls in proportion to their predicted times (the calls are not timed one by
        one, so that a GPU is not made to wait between them), so a batch size's time stays one call's."""
        predicted = [self.predict(bucket, rows) for rows in call_rows]
        total = sum(predicted)
        for rows, share in zip(call_rows, predicted, strict=True):
            self.observe(bucket, rows, seconds * share / total)

    def _smooth(self, table: dict, key, seconds: float) -> None:
        """Moves table[key] towards a new measurement (the first one is taken as it is)."""
        old = table.get(key)
        table[key] = seconds if old is None else old + self.smoothing * (seconds - old)

    def observe_decode(self, bucket: ShapeBucket, seconds: float) -> None:
        self._smooth(self._decode_seconds, bucket, seconds)

    def decode_seconds(self, bucket: ShapeBucket) -> float:
        """Seconds one preview or final decode takes; 0 until measured."""
        return self._decode_seconds.get(bucket, 0.0)

    def observe_restart(self, bucket: ShapeBucket, seconds: float) -> None:
        self._smooth(self._restart_seconds, bucket, seconds)

    def restart_seconds(self, bucket: ShapeBucket) -> float:
        """Seconds one request's restart takes (its latents through the autoencoder, inside the step
        that ends its main schedule: `model/sampler.py`); 0 until measured."""
        return self._restart_seconds.get(bucket, 0.0)

    def measured(self, bucket: ShapeBucket) -> dict[int, float]:
        return dict(self._seconds.get(bucket, {}))

    def predict(self, bucket: ShapeBucket, rows: int) -> float:
        """Seconds one step of `rows` batch rows of this bucket is expected to take, read off the
        measured times made non-decreasing in rows (`_monotone`): a batch that adds rows is not faster.

        Without that, a size measured once on a quiet machine (the warm-up) looks cheaper than the
        smaller sizes measured since under load, the batch-size choice aims at it, and every step's
        budget, read off the interpolation towards it, shrinks (on a GPU, where the load adds CPU time
        per row, steps fell to two rows). The fit pools neighbours instead of flooring every larger
        size at the largest time below it: under that floor one slow step (a host hiccup, 28 ms for
        18 rows where 64 took 9 ms) priced every larger batch at 28 ms, steps shrank to 16 rows, and the
        larger sizes were never run again to correct it (seen on an H200)."""
        if rows <= 0:
            return 0.0
        by_rows = self._monotone(bucket)
        if not by_rows:
            return self.prior_fixed_seconds + self.prior_seconds_per_row * rows
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

    def _monotone(self, bucket: ShapeBucket) -> dict[int, float]:
        """The measured times by rows, fitted non-decreasing (isotonic regression by pooling adjacent
        violators, each size weighing the same); cached until the next observation of the bucket."""
        fitted = self._fits.get(bucket)
        if fitted is None:
            by_rows = self._seconds.get(bucket, {})
            sizes = sorted(by_rows)
            blocks: list[list[float]] = []  # [mean, count] of pooled runs of sizes, in size order
            for size in sizes:
                blocks.append([by_rows[size], 1])
                while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
                    mean, count = blocks.pop()
                    blocks[-1] = [
                        (blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1] + count),
                        blocks[-1][1] + count,
                    ]
            means = [mean for mean, count in blocks for _ in range(int(count))]
            fitted = self._fits[bucket] = dict(zip(sizes, means, strict=True))
        return fitted

    def best_rows(self, bucket: ShapeBucket, max_rows: int, tolerance: float = 0.1) -> int:
        """The smallest batch size up to max_rows whose row-steps per second are within `tolerance` of
        the best. Throughput is (nearly) the best, and the step is as short as it can be: a shorter
        step is a shorter wait for an interactive request that arrives while it runs. On an
        accelerator that is a large batch; on a CPU, where cost grows with rows, a small one."""
        rates = {rows: rows / self.predict(bucket, rows) for rows in range(1, max_rows + 1)}
        best = max(rates.values())
        return min(rows for rows, rate in rates.items() if rate >= (1 - tolerance) * best)

    def best_rate(self, bucket: ShapeBucket, max_rows: int) -> float:
        """Row-steps per second at the most efficient batch size up to max_rows."""
        return max(rows / self.predict(bucket, rows) for rows in range(1, max_rows + 1))
