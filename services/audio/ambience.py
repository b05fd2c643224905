"""Background textures from the prompt: rain, wind, crowd, traffic, a quiet room, as shaped noise.

Each texture is noise given the spectrum and the movement of the real thing: rain is a hiss under a
dense scatter of droplet ticks; wind is low noise whose band and level wander in gusts; a crowd is many
band-limited voices murmuring at syllable rate; traffic is a low rumble with cars passing by; a quiet
room is faint low-passed noise. Left and right are drawn independently, so the texture is wide.
"""

from __future__ import annotations

import re

import numpy as np
from scipy import signal

# Words in a prompt that ask for each texture.
KEYWORDS = {
    "rain": ("rain", "raining", "rainy", "drizzle", "downpour", "storm"),
    "wind": ("wind", "windy", "breeze", "gust", "gusts", "gusty", "blizzard"),
    "crowd": ("crowd", "crowds", "audience", "cheering", "people", "stadium", "party"),
    "traffic": ("traffic", "street", "cars", "highway", "city", "downtown"),
    "room": ("room", "indoors", "indoor", "quiet", "silent", "office", "library"),
}
# Mix level of each texture (linear, before the limiter).
LEVELS = {"rain": 0.18, "wind": 0.2, "crowd": 0.16, "traffic": 0.2, "room": 0.03}


def ambiences_in(prompt: str) -> list[str]:
    """The textures a prompt asks for, in KEYWORDS order."""
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    return [name for name, keys in KEYWORDS.items() if words.intersection(keys)]


def texture(name: str, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (S, 2) of RMS about 0.25, for one texture."""
    make = _TEXTURES[name]
    stereo = np.stack([make(num_samples, sample_rate, rng) for _ in range(2)], axis=1)
    rms = float(np.sqrt(np.mean(stereo**2))) or 1.0
    fade = min(num_samples // 2, int(0.05 * sample_rate))  # no click at the start or the end
    ramp = np.linspace(0, 1, fade)
    stereo[:fade] *= ramp[:, None]
    stereo[num_samples - fade :] *= ramp[::-1, None]
    return (0.25 * stereo / rms).astype(np.float32)


def _colored_noise(n: int, sample_rate: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1 / f^exponent (1: pink, 2: brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[1:] /= freqs[1:] ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.std(noise) or 1.0)


def _band(
    x: np.ndarray, low: float | None, high: float | None, sample_rate: int, order: int = 4
) -> np.ndarray:
    if low and high:
        sos = signal.butter(order, [low, high], "bandpass", fs=sample_rate, output="sos")
    elif low:
        sos = signal.butter(order, low, "highpass", fs=sample_rate, output="sos")
    else:
        sos = signal.butter(order, high, "lowpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def _slow_wander(n: int, sample_rate: int, rng: np.random.Generator, rate_hz: float) -> np.ndarray:
    """A smooth random curve in [0, 1] changing at about rate_hz."""
    points = max(4, int(n / sample_rate * rate_hz) + 4)
    knots = rng.uniform(0, 1, points)
    return np.interp(np.linspace(0, points - 3, n), np.arange(points), knots)


def _rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    hiss = _band(_colored_noise(n, sr, rng, 0.5), 800, 9000, sr) * 0.5
    drops = np.zeros(n)
    count = rng.poisson(400 * n / sr)
    positions = rng.integers(0, n, count)
    drops[positions] = rng.uniform(0.2, 1.0, count) * rng.choice([-1, 1], count)
    tick = np.exp(-np.arange(int(0.004 * sr)) / (0.0008 * sr))
    drops = _band(np.convolve(drops, tick)[:n], 1500, 12000, sr, order=2)
    return hiss + 2.0 * drops


def _wind(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    base = _colored_noise(n, sr, rng, 1.5)
    gust = _slow_wander(n, sr, rng, 0.8)
    low = _band(base, 60, 500, sr)
    whistle = _band(rng.standard_normal(n), 300, 1200, sr, order=2) * 0.3
    return (0.3 + gust) * low + gust**2 * whistle


def _crowd(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    voices = np.zeros(n)
    for _ in range(24):
        formant = rng.uniform(350, 2500)
        voice = _band(rng.standard_normal(n), formant * 0.7, formant * 1.3, sr, order=2)
        syllables = _slow_wander(n, sr, rng, rng.uniform(3, 6)) ** 2
        voices += voice * syllables * rng.uniform(0.3, 1.0)
    return voices + 0.3 * _band(_colored_noise(n, sr, rng, 1.0), 200, 4000, sr)


def _traffic(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    rumble = _band(_colored_noise(n, sr, rng, 2.0), 30, 250, sr)
    cars = np.zeros(n)
    t = np.arange(n) / sr
    for _ in range(max(1, rng.poisson(n / sr * 0.8))):
        center, width = rng.uniform(0, n / sr), rng.uniform(0.8, 2.0)
        swell = np.exp(-(((t - center) / width) ** 2))
        cars += swell * _band(rng.standard_normal(n), 150, 1500, sr, order=2) * rng.uniform(0.5, 1.0)
    return rumble + 0.8 * cars


def _room(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return _band(_colored_noise(n, sr, rng, 1.0), 40, 1200, sr)


_TEXTURES = {"rain": _rain, "wind": _wind, "crowd": _crowd, "traffic": _traffic, "room": _room}
