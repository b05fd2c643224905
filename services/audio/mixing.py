"""Summing the placed sounds into one stereo track, and a look-ahead limiter so nothing clips.

The limiter computes, for every sample, the gain that keeps it under the ceiling; takes the minimum of
that gain over a short look-ahead window, so the gain is already down when a transient arrives (no
latency: the window is centred on the sample, not the signal delayed); and recovers exponentially.
A final clamp at the ceiling makes the no-clipping guarantee unconditional.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

CEILING = 10 ** (-1.0 / 20)  # -1 dBFS
LOOKAHEAD_SECONDS = 0.003
RELEASE_SECONDS = 0.08


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """(S,) -> (S, 2), constant power; position 0 is left, 0.5 centre, 1 right."""
    angle = np.clip(position, 0.0, 1.0) * np.pi / 2
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1) * np.sqrt(2)


def place(track: np.ndarray, sound: np.ndarray, start_sample: int) -> int:
    """Adds sound (S, 2) into track (N, 2) from start_sample, cut at the end; returns samples placed."""
    if start_sample >= len(track):
        return 0
    start = max(0, start_sample)
    skip = start - start_sample
    n = min(len(sound) - skip, len(track) - start)
    if n <= 0:
        return 0
    track[start : start + n] += sound[skip : skip + n]
    return n


def duck(speech_envelope: np.ndarray, sample_rate: int, depth_db: float = 8.0) -> np.ndarray:
    """Gain (S,) that lowers the background while someone speaks, with smooth 50 ms edges."""
    active = (speech_envelope > 1e-3).astype(np.float64)
    kernel = signal.windows.hann(max(3, int(0.1 * sample_rate)))
    smooth = np.clip(np.convolve(active, kernel / kernel.sum(), mode="same") * 2, 0, 1)
    return 1.0 - smooth * (1.0 - 10 ** (-depth_db / 20))


def limit(track: np.ndarray, sample_rate: int, ceiling: float = CEILING) -> np.ndarray:
    """Peak-limits float (S, C) to |x| <= ceiling."""
    peak = np.abs(track).max(axis=1)
    needed = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    window = max(1, int(LOOKAHEAD_SECONDS * sample_rate))
    gain = ndimage.minimum_filter1d(needed, size=2 * window + 1, mode="nearest")
    # Release: the gain falls at once and recovers exponentially (time constant RELEASE_SECONDS).
    released = _release(gain, RELEASE_SECONDS * sample_rate)
    return np.clip(track * released[:, None], -ceiling, ceiling)


def _release(gain: np.ndarray, time_constant: float) -> np.ndarray:
    """1 - max_k (1 - gain[k]) * exp(-(n - k) / time_constant): a peak-hold of the gain reduction
    with exponential decay, computed as a running maximum in the log domain (no loop over samples)."""
    reduction = 1.0 - gain
    n = np.arange(len(gain), dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_reduction = np.log(reduction)
    held = np.maximum.accumulate(log_reduction + n / time_constant) - n / time_constant
    return 1.0 - np.exp(held)


def to_int16(track: np.ndarray) -> np.ndarray:
    """float (S, C) within [-1, 1] -> int16 PCM."""
    return np.round(np.clip(track, -1.0, 1.0) * 32767.0).astype(np.int16)
