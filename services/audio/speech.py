"""Speech with espeak-ng: text to a WAV by subprocess, resampled to the mix rate.

A speaker name picks a voice variant and a pitch deterministically, so the same speaker sounds the
same in every clip and two speakers in one clip sound different. A line that would run past the end of
the clip is spoken faster (up to MAX_RATE words per minute); if it still does not fit the request is
refused, since cutting a sentence off mid-word is never what the caller wanted.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy import signal

from services.common.errors import invalid_argument, unavailable
from services.common.text import is_blank

RATE = 165  # words per minute
MAX_RATE = 300
VOICE_VARIANTS = ("m1", "m3", "m7", "f1", "f2", "f4")
# Quoted text in a prompt is spoken: "straight quotes" or “curly quotes”.
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”")


@dataclass(frozen=True)
class SpeechCue:
    text: str
    start_s: float
    speaker: str = ""
    # Where the line came from, for error messages: "dialogue[2]" or "prompt".
    field: str = "dialogue"


def quoted_lines(prompt: str) -> list[str]:
    """The quoted passages of a prompt, in order; a quote of invisible characters has nothing to say."""
    return [(a or b).strip() for a, b in _QUOTED.findall(prompt) if not is_blank(a or b)]


def voice_for(speaker: str) -> tuple[str, int]:
    """(espeak-ng voice, pitch 0..99) for a speaker name; "" gets the first voice."""
    if not speaker:
        return f"en-us+{VOICE_VARIANTS[0]}", 45
    digest = hashlib.sha256(speaker.strip().lower().encode()).digest()
    return f"en-us+{VOICE_VARIANTS[digest[0] % len(VOICE_VARIANTS)]}", 30 + digest[1] % 40


class SpeechSynthesizer:
    """espeak-ng behind a function: text -> float32 mono at the requested rate."""

    def __init__(self, binary: str = "espeak-ng") -> None:
        self.binary = binary

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def speak(self, text: str, speaker: str, sample_rate: int, words_per_minute: int = RATE) -> np.ndarray:
        """float32 (S,) at sample_rate, peak about 0.9."""
        if not self.available():
            raise unavailable(
                "BACKEND_UNAVAILABLE",
                f"{self.binary} is not installed",
                backend="espeak-ng",
                detail="not on PATH",
            )
        voice, pitch = voice_for(speaker)
        with tempfile.TemporaryDirectory(prefix="kino-speech-") as tmp:
            out = Path(tmp) / "speech.wav"
            # Text goes on stdin, never the command line: nothing in it is parsed as an option.
            result = subprocess.run(
                [
                    self.binary,
                    "-v",
                    voice,
                    "-p",
                    str(pitch),
                    "-s",
                    str(words_per_minute),
                    "-w",
                    str(out),
                    "--stdin",
                ],
                input=text.encode(),
                capture_output=True,
                check=False,
                timeout=60,
            )
            if result.returncode != 0 or not out.exists():
                detail = result.stderr.decode(errors="replace").strip()[:300]
                raise unavailable(
                    "BACKEND_UNAVAILABLE", f"espeak-ng failed: {detail}", backend="espeak-ng", detail=detail
                )
            with wave.open(str(out)) as wav:
                rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
                raw = wav.readframes(wav.getnframes())
        if width != 2:
            raise unavailable(
                "BACKEND_UNAVAILABLE",
                "espeak-ng wrote an unexpected WAV",
                backend="espeak-ng",
                detail=f"width {width}",
            )
        audio = np.frombuffer(raw, "<i2").reshape(-1, channels).mean(axis=1) / 32768.0
        common = gcd(rate, sample_rate)
        audio = signal.resample_poly(audio, sample_rate // common, rate // common)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return (0.9 * audio / peak if peak > 0 else audio).astype(np.float32)

    def speak_to_fit(self, cue: SpeechCue, sample_rate: int, end_s: float) -> np.ndarray:
        """The cue's speech, spoken faster if needed to end by end_s; OUT_OF_RANGE if it cannot."""
        available = end_s - cue.start_s
        if available <= 0:
            raise invalid_argument(
                "OUT_OF_RANGE",
                f"{cue.field}: the line starts at {cue.start_s:.1f} s, but the clip ends at {end_s:.1f} s; "
                "start it earlier",
                field=cue.field,
                value=f"{cue.start_s:.2f}",
                min=0,
                max=f"{end_s:.2f}",
            )
        audio = self.speak(cue.text, cue.speaker, sample_rate)
        needed = len(audio) / sample_rate
        if needed <= available:
            return audio
        faster = int(np.ceil(RATE * needed / max(available, 1e-3) * 1.05))
        if faster <= MAX_RATE:
            audio = self.speak(cue.text, cue.speaker, sample_rate, faster)
            if len(audio) / sample_rate <= available:
                return audio
        needed_at_max = needed * RATE / MAX_RATE
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{cue.field}: the line needs {needed_at_max:.1f} s even spoken fast, but only "
            f"{available:.1f} s remain after {cue.start_s:.1f} s; shorten it or start it earlier",
            field=cue.field,
            value=f"{needed_at_max:.2f}",
            min=0,
            max=f"{available:.2f}",
        )
