"""Impact sounds by modal synthesis: a short contact force exciting a few damped resonant modes.

A struck object rings at its modes (frequency, decay, amplitude); the material decides them. Metal
rings long at inharmonic bar modes, glass is high and clear, wood knocks with short low-Q modes, rubber
thuds low and dies fast. The contact itself is a raised-cosine force pulse: short for hard materials
(a bright click), long for soft ones (a dull thump). Bigger objects sound lower; faster impacts louder.

The sound starts at sample 0 of the returned array and its attack peaks within about a millisecond,
so placing it at the contact time puts the audible onset there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATERIALS = ("rubber", "metal", "wood", "glass")
DEFAULT_MATERIAL = "wood"
# Reference approach speed (frame sizes per second) for full loudness; gain grows with speed^0.7.
REFERENCE_SPEED = 1.0
MIN_GAIN = 0.08
# Object area (share of the frame) at which a material sounds at its nominal pitch.
REFERENCE_AREA = 0.05


@dataclass(frozen=True)
class Material:
    # Mode frequencies (Hz), 60 dB decay times (s) and relative amplitudes, at the nominal size.
    frequencies: tuple[float, ...]
    decays: tuple[float, ...]
    amplitudes: tuple[float, ...]
    # Length of the contact force pulse (s): hardness.
    contact_seconds: float
    # Share of broadband noise in the contact (scrape, crack).
    noise: float
    # Loudness of the material relative to the others at the same speed.
    level: float

    @property
    def length_seconds(self) -> float:
        return max(self.decays) + self.contact_seconds


MATERIAL_MODES = {
    "rubber": Material((95.0, 210.0, 390.0), (0.09, 0.06, 0.04), (1.0, 0.45, 0.2), 0.006, 0.15, 0.9),
    "metal": Material(
        (820.0, 2263.0, 4429.0, 7321.0, 1650.0),  # free bar ratios 1 : 2.76 : 5.40 : 8.93, plus a shell mode
        (1.4, 0.9, 0.6, 0.35, 1.1),
        (1.0, 0.6, 0.35, 0.2, 0.3),
        0.0006,
        0.05,
        0.55,
    ),
    "wood": Material(
        (310.0, 790.0, 1330.0, 2100.0), (0.12, 0.07, 0.05, 0.03), (1.0, 0.6, 0.35, 0.2), 0.0015, 0.3, 0.8
    ),
    "glass": Material(
        (1850.0, 4290.0, 7860.0, 5120.0), (0.55, 0.35, 0.2, 0.25), (1.0, 0.5, 0.25, 0.3), 0.0004, 0.08, 0.5
    ),
}


def impact_gain(speed: float) -> float:
    """Linear gain 0..1 from the approach speed (frame sizes per second)."""
    return float(np.clip((speed / REFERENCE_SPEED) ** 0.7, MIN_GAIN, 1.0))


def impact_sound(
    material: str, sample_rate: int, rng: np.random.Generator, *, object_area: float = REFERENCE_AREA
) -> np.ndarray:
    """float32 (S,): one impact, peak 1, onset at sample 0."""
    spec = MATERIAL_MODES[material]
    # Pitch falls with size (a mode's frequency goes as 1/length, length as sqrt(area)), within an octave.
    size_factor = float(np.clip((REFERENCE_AREA / max(object_area, 1e-4)) ** 0.25, 0.7, 1.4))
    n = int(spec.length_seconds * sample_rate)
    t = np.arange(n) / sample_rate
    ring = np.zeros(n)
    nyquist = 0.45 * sample_rate
    for freq, decay, amp in zip(spec.frequencies, spec.decays, spec.amplitudes, strict=True):
        freq = freq * size_factor * rng.uniform(0.97, 1.03)  # no two impacts exactly alike
        if freq >= nyquist:
            continue
        phase = rng.uniform(0, 2 * np.pi)
        ring += amp * np.exp(-6.91 * t / decay) * np.sin(2 * np.pi * freq * t + phase)
    # The contact force: a raised-cosine pulse; the modes are its response, so convolve.
    m = max(2, int(spec.contact_seconds * sample_rate))
    pulse = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(m) / m)
    pulse /= pulse.sum()
    sound = np.convolve(ring, pulse)[:n]
    # The broadband part of the contact (a crack, a slap), dulled by the same pulse as the modes.
    burst = max(8, int(0.004 * sample_rate))
    crack = np.convolve(rng.standard_normal(burst) * np.hanning(burst), pulse)[:burst]
    sound[:burst] += spec.noise * crack * np.abs(sound).max() / max(np.abs(crack).max(), 1e-9)
    # The first sample is the contact: no pre-echo, and a 0.3 ms fade-in to avoid a click.
    fade = min(n, max(2, int(0.0003 * sample_rate)))
    sound[:fade] *= np.linspace(0.0, 1.0, fade)
    sound /= max(np.abs(sound).max(), 1e-9)
    return sound.astype(np.float32)
