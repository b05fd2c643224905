"""Audio backends: the one interface every sound generator implements, and the default foley backend.

`AudioBackend.generate(AudioRequest) -> AudioTrack` takes validated NumPy inputs and returns PCM and
the sound events it placed. The core (core.py) owns validation and the proto conversion, so a backend
that wraps a diffusers audio pipeline or a Triton model only fills in `generate`.

`FoleyBackend` is the default: it reads the events off the picture (motion.py) and builds the track
from impacts by modal synthesis (foley.py), ambience textures named by the prompt (ambience.py) and
speech (speech.py), mixed and limited (mixing.py). Everything is deterministic for a given seed.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field

import numpy as np

from services.audio import ambience, foley, mixing, motion
from services.audio.speech import SpeechCue, SpeechSynthesizer, quoted_lines

SOUND_IMPACT, SOUND_AMBIENCE, SOUND_DIALOGUE = "impact", "ambience", "dialogue"
IMPACT_LEVEL = 0.8
SPEECH_LEVEL = 0.7
# Prompt quotes start here when the prompt gives no time; each next one follows the previous.
QUOTE_START_SECONDS = 0.2
QUOTE_GAP_SECONDS = 0.25


@dataclass(frozen=True)
class AudioRequest:
    """A validated request: what every backend receives."""

    frames: np.ndarray  # uint8 (F, H, W, 3)
    fps: float
    prompt: str
    dialogue: tuple[SpeechCue, ...]
    seed: int
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


@dataclass(frozen=True)
class PlacedSound:
    kind: str  # SOUND_IMPACT, SOUND_AMBIENCE or SOUND_DIALOGUE
    start_s: float
    duration_s: float
    gain: float
    label: str


@dataclass
class AudioTrack:
    pcm: np.ndarray  # int16 (S, C)
    sample_rate: int
    events: list[PlacedSound] = field(default_factory=list)


class AudioBackend(abc.ABC):
    """Makes a sound track for frames and a prompt."""

    name: str

    @abc.abstractmethod
    def generate(self, request: AudioRequest) -> AudioTrack:
        """Blocking; the core runs it in a worker thread."""


def material_in(prompt: str) -> str:
    """The material a prompt names ("metallic" -> metal); the default when it names none."""
    words = re.findall(r"[a-z]+", prompt.lower())
    aliases = {"metallic": "metal", "steel": "metal", "iron": "metal", "wooden": "wood", "glassy": "glass"}
    for word in words:
        word = aliases.get(word, word)
        if word in foley.MATERIALS:
            return word
    return foley.DEFAULT_MATERIAL


class FoleyBackend(AudioBackend):
    name = "foley"

    def __init__(self, speech: SpeechSynthesizer | None = None) -> None:
        self.speech = speech or SpeechSynthesizer()

    def generate(self, request: AudioRequest) -> AudioTrack:
        sr = request.sample_rate
        num_samples = round(request.duration_s * sr)
        rng = np.random.default_rng(request.seed)
        events: list[PlacedSound] = []

        effects = np.zeros((num_samples, 2))
        material = material_in(request.prompt)
        for impact in motion.find_impacts(request.frames, request.fps):
            sound = foley.impact_sound(material, sr, rng, object_area=impact.object_area)
            gain = foley.impact_gain(impact.speed) * foley.MATERIAL_MODES[material].level
            start = round(impact.time_s * sr)
            placed = mixing.place(effects, mixing.pan(sound * gain, 0.15 + 0.7 * impact.x), start)
            if placed:
                events.append(PlacedSound(SOUND_IMPACT, start / sr, placed / sr, gain, f"{material} impact"))

        voice = np.zeros(num_samples)
        for cue, audio in self._speech(request):
            start = round(cue.start_s * sr)
            n = min(len(audio), num_samples - start)
            voice[start : start + n] += audio[:n] * SPEECH_LEVEL
            events.append(PlacedSound(SOUND_DIALOGUE, start / sr, n / sr, SPEECH_LEVEL, cue.text))

        background = np.zeros((num_samples, 2))
        for name in ambience.ambiences_in(request.prompt):
            level = ambience.LEVELS[name]
            background += ambience.texture(name, num_samples, sr, rng) * level
            events.append(PlacedSound(SOUND_AMBIENCE, 0.0, request.duration_s, level, name))
        if voice.any():
            background *= mixing.duck(np.abs(voice), sr)[:, None]

        mix = effects * IMPACT_LEVEL + background + voice[:, None]
        pcm = mixing.to_int16(mixing.limit(mix, sr))
        events.sort(key=lambda e: (e.start_s, e.kind))
        return AudioTrack(pcm, sr, events)

    def _speech(self, request: AudioRequest):
        """(cue, mono audio) for the dialogue lines as given, then the prompt's quotes one after another."""
        for cue in request.dialogue:
            yield cue, self.speech.speak_to_fit(cue, request.sample_rate, request.duration_s)
        start = QUOTE_START_SECONDS
        for text in quoted_lines(request.prompt):
            cue = SpeechCue(text, start, field="prompt")
            audio = self.speech.speak_to_fit(cue, request.sample_rate, request.duration_s)
            yield cue, audio
            start += len(audio) / request.sample_rate + QUOTE_GAP_SECONDS


def backend_from_name(name: str, espeak_binary: str = "espeak-ng") -> AudioBackend:
    if name == "foley":
        return FoleyBackend(SpeechSynthesizer(espeak_binary))
    raise ValueError(f"unknown audio backend {name!r}")
