"""The MP4 muxer against the real ffmpeg and ffprobe: a file browsers and phones play, in sync."""

from fractions import Fraction

import numpy as np
import pytest

from services.common.errors import KinoError
from services.gateway import media
from training.shapes_world import SceneSpec, render

SR = 48000


@pytest.fixture(scope="module")
def clip():
    return render(SceneSpec("square", "large", "cyan", "bounces left and right", "wood", "navy", 2))


def click_track(seconds: float, at: float) -> np.ndarray:
    pcm = np.zeros((round(seconds * SR), 2), np.int16)
    pcm[round(at * SR) : round(at * SR) + 48] = 20000
    return pcm


def test_a_playable_h264_aac_file_with_exact_rate_and_duration(clip):
    data = media.mux(clip.frames, 8, click_track(2.0, 0.5), SR)
    info = media.probe(data)
    assert info.format_name.startswith("mov,mp4")
    assert info.moov_before_mdat, "faststart: playback starts before the download ends"
    v, a = info.video, info.audio
    assert (v.codec, v.profile, v.pix_fmt, v.width, v.height) == ("h264", "High", "yuv420p", 256, 256)
    assert v.level == 30 and v.fps == Fraction(8) and v.num_frames == 16
    assert v.duration_seconds == pytest.approx(2.0)
    assert (a.codec, a.profile, a.sample_rate, a.channels) == ("aac", "LC", SR, 2)
    assert a.duration_seconds == pytest.approx(2.0, abs=0.03)


def test_sound_stays_in_sync_through_the_aac_encoder(clip):
    data = media.mux(clip.frames, 8, click_track(2.0, 0.5), SR)
    audio = media.decode_audio(data)
    onset = np.argmax(np.abs(audio[:, 0]) > 0.2) / SR
    assert onset == pytest.approx(0.5, abs=0.002), "the encoder's priming samples are hidden by the edit list"


def test_frames_come_back_as_they_went_in(clip):
    data = media.mux(clip.frames, 8, None, SR, media.EncodeOptions(size=(64, 64), crf=12))
    decoded = media.decode_frames(data)
    assert decoded.shape == clip.frames.shape
    assert np.abs(decoded.astype(int) - clip.frames).mean() < 2.0


def test_upscaling_nearest_or_lanczos_and_odd_sizes_made_even(clip):
    nearest = media.upscale_frames(clip.frames, (128, 128), "nearest")
    np.testing.assert_array_equal(nearest[:, ::2, ::2], clip.frames)
    lanczos = media.upscale_frames(clip.frames, (128, 128), "lanczos")
    assert lanczos.shape == nearest.shape and not np.array_equal(lanczos, nearest)
    data = media.mux(clip.frames[:4], 8, None, SR, media.EncodeOptions(size=(101, 75), resample="lanczos"))
    info = media.probe(data).video
    assert (info.width, info.height, info.num_frames) == (102, 76, 4)


def test_ntsc_rates_are_exact_rationals(clip):
    data = media.mux(clip.frames, 30000 / 1001, None, SR, media.EncodeOptions(size=(64, 64)))
    info = media.probe(data)
    assert info.video.fps == Fraction(30000, 1001)
    assert info.video.duration_seconds == pytest.approx(16 * 1001 / 30000, abs=1e-3)


def test_silent_when_no_sound_is_given(clip):
    audio = media.decode_audio(media.mux(clip.frames[:8], 8, None, SR))
    assert np.abs(audio).max() == 0 and len(audio) >= SR


def test_h264_levels_grow_with_the_picture():
    assert media.h264_level(256, 256, 8) == "3.0"
    assert media.h264_level(1280, 720, 30) == "3.1"
    assert media.h264_level(1920, 1080, 30) == "4.0"
    assert media.h264_level(1920, 1080, 60) == "4.2"


@pytest.mark.parametrize(
    ("frames", "fps", "reason"),
    [
        (np.zeros((4, 32, 32), np.uint8), 8, "INVALID_TENSOR"),
        (np.zeros((4, 32, 32, 4), np.uint8), 8, "INVALID_TENSOR"),
        (np.zeros((4, 32, 32, 3), np.float32), 8, "INVALID_TENSOR"),
        (np.zeros((0, 32, 32, 3), np.uint8), 8, "OUT_OF_RANGE"),
        (np.zeros((4, 32, 4000, 3), np.uint8), 8, "OUT_OF_RANGE"),
        (np.zeros((4, 32, 32, 3), np.uint8), 0, "OUT_OF_RANGE"),
        (np.zeros((4, 32, 32, 3), np.uint8), float("inf"), "OUT_OF_RANGE"),
    ],
)
def test_bad_frames_are_refused(frames, fps, reason):
    with pytest.raises(KinoError) as error:
        media.mux(frames, fps, None, SR)
    assert error.value.reason == reason


def test_bad_pcm_is_refused(clip):
    with pytest.raises(KinoError) as error:
        media.mux(clip.frames, 8, np.zeros((100, 2), np.float32), SR)
    assert error.value.reason == "INVALID_TENSOR"


@pytest.mark.parametrize("data", [b"", b"not a video at all", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_files_that_are_not_media_are_invalid_media(data):
    with pytest.raises(KinoError) as error:
        media.probe(data)
    assert error.value.reason == "INVALID_MEDIA"
    assert "kino-media" not in error.value.message, "no temporary paths in messages"
