"""The luma watermark: error correction, the id payload, and survival of re-encoding and scaling."""

import numpy as np
import pytest

from services.gateway import media
from services.gateway.provenance import watermark as wm
from training.shapes_world import SceneSpec, render

VIDEO = "videos/5f0c2e7a9b1d4c3e8f6a0b2c4d6e8f01"


@pytest.fixture(scope="module")
def frames():
    clip = render(SceneSpec("triangle", "large", "orange", "bounces on the floor", "glass", "gray", 9))
    return media.upscale_frames(clip.frames, (256, 256))


@pytest.fixture(scope="module")
def marked_file(frames):
    return media.mux(wm.embed_watermark(frames, VIDEO), 8, None, 48000)


def test_the_code_corrects_noisy_bits():
    rng = np.random.default_rng(0)
    payload = int(rng.integers(2**63))
    codeword = wm.codeword(payload)
    assert len(codeword) == wm.CODED_BITS == 172
    soft = (codeword * 2.0 - 1.0) + rng.normal(0, 0.8, codeword.shape)
    assert ((soft > 0) != codeword).sum() > 5, "there are raw bit errors to correct"
    message = wm.viterbi_decode(soft)
    assert wm._bits_to_int(message[:64]) == payload
    np.testing.assert_array_equal(message[64:], wm.crc16(message[:64]))


def test_video_ids_map_to_64_bits():
    assert wm.payload_for_video(VIDEO) == 0x5F0C2E7A9B1D4C3E
    assert wm.video_for_payload(wm.payload_for_video(VIDEO)) == "videos/5f0c2e7a9b1d4c3e"
    assert wm.watermark_matches("videos/5f0c2e7a9b1d4c3e", VIDEO)
    assert not wm.watermark_matches("videos/5f0c2e7a9b1d4c3f", VIDEO)
    assert 0 <= wm.payload_for_video("videos/not-hex") < 2**64


def test_the_mark_is_faint(frames):
    marked = wm.embed_watermark(frames, VIDEO)
    difference = marked.astype(float) - frames
    assert 10 * np.log10(255**2 / np.mean(difference**2)) > 40
    assert np.abs(difference).max() <= 8


def test_it_reads_back_from_frames_and_from_the_encoded_file(frames, marked_file):
    assert wm.detect_watermark_rgb(wm.embed_watermark(frames, VIDEO)).payload == wm.payload_for_video(VIDEO)
    reading = wm.detect_watermark(media.decode_luma(marked_file))
    assert reading.found and reading.payload == wm.payload_for_video(VIDEO) and reading.confidence > 0.99


@pytest.mark.parametrize(("crf", "scale"), [(28, 1.0), (35, 1.0), (23, 0.5)])
def test_it_survives_reencoding_and_downscaling(marked_file, crf, scale):
    reading = wm.detect_watermark(media.decode_luma(media.transcode(marked_file, crf=crf, scale=scale)))
    assert reading.found and reading.payload == wm.payload_for_video(VIDEO)


def test_it_survives_a_black_background():
    clip = render(SceneSpec("circle", "small", "white", "bounces left and right", "metal", "black", 1))
    marked = wm.embed_watermark(media.upscale_frames(clip.frames, (256, 256)), VIDEO)
    data = media.transcode(media.mux(marked, 8, None, 48000), crf=28)
    assert wm.detect_watermark(media.decode_luma(data)).payload == wm.payload_for_video(VIDEO)


def test_unmarked_video_and_the_wrong_key_find_nothing(frames, marked_file):
    plain = wm.detect_watermark(media.decode_luma(media.mux(frames, 8, None, 48000)))
    assert not plain.found and plain.payload is None and plain.confidence < wm.MIN_CONFIDENCE
    other_key = wm.detect_watermark(media.decode_luma(marked_file), wm.WatermarkKey(b"someone else"))
    assert not other_key.found


def test_frames_too_small_to_mark():
    with pytest.raises(ValueError):
        wm.embed_watermark(np.zeros((2, 8, 8, 3), np.uint8), VIDEO)
    assert not wm.detect_watermark(np.zeros((2, 8, 8))).found
