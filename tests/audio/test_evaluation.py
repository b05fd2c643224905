"""The measuring tools of the report: an onset detector and a contact-time fit that can be trusted."""

import numpy as np
import pytest

from services.audio import evaluate

SR = 48000


def test_the_onset_detector_finds_clicks_where_they_are():
    rng = np.random.default_rng(0)
    mono = rng.normal(0, 0.001, 2 * SR)
    times = [0.31, 0.77, 1.02, 1.6]
    for t in times:
        start = round(t * SR)
        ring = np.exp(-np.arange(4000) / 600) * np.sin(2 * np.pi * 900 * np.arange(4000) / SR)
        mono[start : start + 4000] += 0.5 * ring
    flux, frame_times = evaluate.spectral_flux(mono, SR)
    onsets = evaluate.pick_peaks(flux, frame_times, SR)
    assert len(onsets) == len(times)
    np.testing.assert_allclose(onsets, times, atol=0.004)


def test_the_kink_fit_times_a_bounce_between_frames():
    contact = 6.37  # frames
    t = np.arange(16.0)
    track = 50 - 5 * np.abs(t - contact)
    assert evaluate._kink_time(track, 6) == pytest.approx(contact, abs=0.01)
    gravity = 1.1
    falling = 60 - 7 * (contact - t) + 0.5 * gravity * (contact - t) ** 2
    rising = 60 - 5 * (t - contact) + 0.5 * gravity * (t - contact) ** 2
    track = np.where(t < contact, falling, rising)
    assert evaluate._kink_time(track, 6) == pytest.approx(contact, abs=0.03)


def test_matching_counts_one_onset_per_impact():
    result = evaluate.SyncResult([])
    result.add(np.array([0.5, 1.0]), np.array([0.51, 0.52, 1.2]))
    summary = result.summary()
    assert summary["precision"] == pytest.approx(1 / 3) and summary["recall"] == pytest.approx(1 / 2)
    assert result.errors_ms == pytest.approx([10.0, 200.0])


def test_the_measurement_sees_sync_and_a_shifted_control():
    measured = evaluate.evaluate_sync(num_clips=3, num_rain=0, seed=4)
    assert measured["sync"]["median_ms"] < 20 and measured["sync"]["recall"] == 1.0
    assert measured["control"]["median_ms"] == pytest.approx(80, abs=8)
    assert measured["control"]["recall"] == 0.0
