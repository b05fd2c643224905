"""Impact timbres, ambience textures, espeak-ng speech and the limiter."""

import numpy as np
import pytest

from services.audio import ambience, foley, mixing
from services.audio.backends import material_in
from services.audio.speech import SpeechCue, SpeechSynthesizer, quoted_lines, voice_for
from services.common.errors import KinoError

SR = 48000


def spectral_centroid(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float((spectrum * freqs).sum() / spectrum.sum())


def decay_time(x: np.ndarray) -> float:
    """Seconds until the envelope falls 40 dB below its peak."""
    envelope = np.maximum.accumulate(np.abs(x)[::-1])[::-1]
    return float(np.argmax(envelope < envelope.max() * 0.01) / SR)


@pytest.fixture(scope="module")
def sounds():
    return {m: foley.impact_sound(m, SR, np.random.default_rng(0)) for m in foley.MATERIALS}


def test_impacts_start_at_their_first_sample(sounds):
    for sound in sounds.values():
        assert abs(sound[0]) < 1e-3
        loud = np.nonzero(np.abs(sound) > 0.3)[0][0]
        assert loud < 0.004 * SR, "the audible attack is within 4 ms of the contact"
        assert np.abs(sound).max() == pytest.approx(1.0)


def test_materials_sound_different(sounds):
    brightness = {m: spectral_centroid(s) for m, s in sounds.items()}
    length = {m: decay_time(s) for m, s in sounds.items()}
    assert brightness["rubber"] < brightness["wood"] < brightness["metal"] < brightness["glass"]
    assert length["metal"] > length["glass"] > length["wood"] and length["metal"] > length["rubber"]
    assert length["rubber"] < 0.15


def test_bigger_objects_sound_lower():
    small = foley.impact_sound("wood", SR, np.random.default_rng(1), object_area=0.02)
    large = foley.impact_sound("wood", SR, np.random.default_rng(1), object_area=0.2)
    assert spectral_centroid(large) < spectral_centroid(small)


def test_faster_impacts_are_louder():
    gains = [foley.impact_gain(s) for s in (0.01, 0.3, 0.8, 3.0)]
    assert gains == sorted(gains) and gains[0] == foley.MIN_GAIN and gains[-1] == 1.0


def test_materials_and_ambiences_are_read_from_the_prompt():
    assert material_in("a metallic ball bouncing") == "metal"
    assert material_in("a Wooden box") == "wood"
    assert material_in("a ball") == foley.DEFAULT_MATERIAL
    assert ambience.ambiences_in("A storm: rain and wind over the city traffic") == [
        "rain",
        "wind",
        "traffic",
    ]
    assert ambience.ambiences_in("a cheering crowd in a quiet room") == ["crowd", "room"]
    assert ambience.ambiences_in("a red circle") == []


@pytest.mark.parametrize("name", sorted(ambience.KEYWORDS))
def test_textures_are_stereo_seeded_noise(name):
    a = ambience.texture(name, SR, SR, np.random.default_rng(3))
    b = ambience.texture(name, SR, SR, np.random.default_rng(3))
    assert a.shape == (SR, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.sqrt(np.mean(a**2)) == pytest.approx(0.25, rel=0.3)
    assert abs(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) < 0.5, "left and right are drawn apart"


def test_rain_is_brighter_than_traffic():
    rain = ambience.texture("rain", SR, SR, np.random.default_rng(0))[:, 0]
    traffic = ambience.texture("traffic", SR, SR, np.random.default_rng(0))[:, 0]
    assert spectral_centroid(rain) > 2 * spectral_centroid(traffic)


def test_limiter_never_clips_and_leaves_quiet_audio_alone():
    rng = np.random.default_rng(0)
    track = rng.normal(0, 0.05, (SR, 2))
    track[10000:10100] += 4.0
    limited = mixing.limit(track, SR)
    assert np.abs(limited).max() <= mixing.CEILING + 1e-12
    np.testing.assert_allclose(limited[:9000], track[:9000])
    np.testing.assert_allclose(limited[-1000:], track[-1000:], rtol=1e-3)
    pcm = mixing.to_int16(limited)
    assert pcm.dtype == np.int16 and np.abs(pcm.astype(int)).max() < 32767


def test_place_cuts_at_the_clip_end():
    track = np.zeros((100, 2))
    assert mixing.place(track, np.ones((50, 2)), 80) == 20
    assert track[80:].sum() == 40 and mixing.place(track, np.ones((5, 2)), 100) == 0


def test_quoted_text_in_a_prompt():
    assert quoted_lines('a knight says "Hold the gate!" and then “Now!”') == ["Hold the gate!", "Now!"]
    assert quoted_lines("no speech here") == []
    assert quoted_lines('a whisper “\u200b\u2060” then "Go!"') == ["Go!"]


def test_speakers_keep_their_voice():
    assert voice_for("Ada") == voice_for(" ada ")
    assert len({voice_for(name) for name in ("Ada", "Bo", "Cy", "Di", "Ed")}) > 1


def test_espeak_speech_is_resampled_to_the_mix_rate():
    speech = SpeechSynthesizer()
    audio = speech.speak("Hello there, nice bounce.", "Ada", SR)
    assert audio.dtype == np.float32 and 0.8 * SR < len(audio) < 3.5 * SR
    assert np.abs(audio).max() == pytest.approx(0.9, abs=0.01)
    # Voiced speech: most energy between 100 Hz and 4 kHz.
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    assert spectrum[(freqs > 100) & (freqs < 4000)].sum() > 0.8 * spectrum.sum()


def test_a_line_too_long_for_the_clip_is_refused():
    speech = SpeechSynthesizer()
    fitted = speech.speak_to_fit(SpeechCue("one two three four five six", 0.0), SR, end_s=1.6)
    assert len(fitted) <= 1.6 * SR
    with pytest.raises(KinoError) as error:
        speech.speak_to_fit(
            SpeechCue("this sentence is far too long to be said in half a second", 1.5, field="dialogue[0]"),
            SR,
            2.0,
        )
    assert error.value.reason == "OUT_OF_RANGE" and error.value.metadata["field"] == "dialogue[0]"
    with pytest.raises(KinoError) as error:  # a line that starts when the clip is over
        speech.speak_to_fit(SpeechCue("hello", 2.1, field="dialogue[1]"), SR, 2.0)
    assert (
        error.value.reason == "OUT_OF_RANGE"
        and "starts at 2.1 s, but the clip ends at 2.0 s" in error.value.message
    )


def test_a_missing_espeak_is_backend_unavailable():
    with pytest.raises(KinoError) as error:
        SpeechSynthesizer("espeak-ng-not-installed").speak("hi", "", SR)
    assert error.value.reason == "BACKEND_UNAVAILABLE"
