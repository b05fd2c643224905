"""C2PA manifests with the real c2pa library, the dev certificate chain, the label, and Verify."""

import io
import stat

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from PIL import Image

from services.common.errors import KinoError
from services.common.settings import load_settings
from services.gateway import media
from services.gateway.provenance import (
    ProvenanceClaims,
    burn_label,
    development_credentials,
    load_credentials,
    package_video,
    prompt_digest,
    read_manifest,
    verify_file,
)
from training.shapes_world import SceneSpec, render

VIDEO = "videos/0a1b2c3d4e5f60718293a4b5c6d7e8f9"
CLAIMS = ProvenanceClaims("kino-shapes-dit-1", prompt_digest("a red ball bouncing"), "jobs/42", VIDEO)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    return development_credentials(tmp_path_factory.mktemp("kino") / "provenance")


@pytest.fixture(scope="module")
def clip():
    return render(SceneSpec("circle", "large", "red", "bounces on the floor", "rubber", "gray", 4))


@pytest.fixture(scope="module")
def signed(clip, credentials):
    pcm = np.zeros((2 * 48000, 2), np.int16)
    return package_video(clip.frames, 8, pcm, 48000, CLAIMS, credentials, visible_label=True)


def test_the_dev_chain_is_a_leaf_with_an_organization_under_a_ca(tmp_path):
    directory = tmp_path / "provenance"
    credentials = development_credentials(directory, organization="Kino Test")
    leaf, ca = x509.load_pem_x509_certificates(credentials.chain_pem.encode())
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Kino Test"
    assert leaf.issuer == ca.subject and ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE((directory / "signer.key").stat().st_mode) == 0o600
    assert development_credentials(directory) == credentials, "made once, then reused"


def test_configured_credentials_win_over_the_dev_chain(tmp_path, credentials):
    (tmp_path / "chain.pem").write_text(credentials.chain_pem)
    (tmp_path / "key.pem").write_text(credentials.private_key_pem)
    settings = load_settings(
        env={},
        data_dir=tmp_path / "data",
        provenance={"cert_chain": tmp_path / "chain.pem", "private_key": tmp_path / "key.pem"},
    )
    loaded = load_credentials(settings)
    assert (
        loaded.chain_pem == credentials.chain_pem
        and loaded.trust_anchors_pem.strip() in credentials.chain_pem
    )
    assert not (tmp_path / "data").exists(), "no dev chain is generated when keys are configured"


def test_a_signed_video_verifies_with_its_provenance(signed, credentials):
    verdict = verify_file(signed, trust_anchors_pem=credentials.trust_anchors_pem)
    assert verdict.manifest_present and verdict.manifest_valid and list(verdict.manifest_issues) == []
    p = verdict.provenance
    assert (p.digital_source_type, p.model, p.job, p.parent_video) == (
        "trainedAlgorithmicMedia",
        "kino-shapes-dit-1",
        "jobs/42",
        "",
    )
    assert p.prompt_sha256 == prompt_digest("a red ball bouncing") and p.c2pa_signed
    assert verdict.watermark_found and verdict.watermark_video == "videos/0a1b2c3d4e5f6071"
    assert p.watermark == verdict.watermark_video and verdict.watermark_confidence > 0.99
    info = media.probe(signed)
    assert info.moov_before_mdat and info.video.num_frames == 16 and info.audio is not None


def test_one_changed_byte_of_media_breaks_the_manifest(signed, credentials):
    position = signed.rfind(b"mdat") + 500
    tampered = signed[:position] + bytes([signed[position] ^ 0x01]) + signed[position + 1 :]
    verdict = verify_file(tampered, trust_anchors_pem=credentials.trust_anchors_pem)
    assert verdict.manifest_present and not verdict.manifest_valid
    assert "assertion.bmffHash.mismatch" in verdict.manifest_issues
    assert not verdict.provenance.c2pa_signed


def test_a_reencoded_copy_has_no_manifest_but_keeps_the_watermark(signed, credentials):
    verdict = verify_file(media.transcode(signed, crf=28), trust_anchors_pem=credentials.trust_anchors_pem)
    assert not verdict.manifest_present and not verdict.manifest_valid
    assert verdict.watermark_found and verdict.watermark_video == "videos/0a1b2c3d4e5f6071"


def test_a_signer_outside_the_trust_anchors_is_untrusted(signed, tmp_path):
    stranger = development_credentials(tmp_path / "other", organization="Someone Else")
    verdict = verify_file(signed, trust_anchors_pem=stranger.trust_anchors_pem)
    assert verdict.manifest_present and not verdict.manifest_valid
    assert "signingCredential.untrusted" in verdict.manifest_issues


def test_a_remix_names_its_parent(clip, credentials):
    remix = ProvenanceClaims(
        "kino-shapes-dit-1", prompt_digest("now blue"), "jobs/43", "videos/" + "1" * 32, VIDEO
    )
    data = package_video(clip.frames[:8], 8, None, 48000, remix, credentials)
    report = read_manifest(data, credentials.trust_anchors_pem)
    assert report.valid and report.trusted and report.claims == remix
    assert verify_file(data, trust_anchors_pem=credentials.trust_anchors_pem).provenance.parent_video == VIDEO


def test_an_unmarked_video_gets_a_clear_verdict(clip):
    verdict = verify_file(media.mux(clip.frames, 8, None, 48000))
    assert not verdict.manifest_present and not verdict.manifest_valid and not verdict.watermark_found
    assert verdict.watermark_video == "" and not verdict.provenance.c2pa_signed


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "FIELD_REQUIRED"), (b"GIF89a not really", "INVALID_MEDIA"), (b"\x00" * 4096, "INVALID_MEDIA")],
)
def test_files_that_are_not_video_are_invalid_argument(data, reason):
    with pytest.raises(KinoError) as error:
        verify_file(data)
    assert error.value.reason == reason


def test_a_still_image_is_not_a_video(clip):
    image = io.BytesIO()
    Image.fromarray(clip.frames[0]).save(image, format="PNG")
    with pytest.raises(KinoError) as error:
        verify_file(image.getvalue())
    assert error.value.reason == "INVALID_MEDIA" and "still image" in error.value.message


def test_a_sound_file_is_not_a_video(tmp_path):
    wav = tmp_path / "a.wav"
    media.write_wav(wav, np.zeros((4800, 1), np.int16), 48000)
    with pytest.raises(KinoError) as error:
        verify_file(wav.read_bytes())
    assert error.value.reason == "INVALID_MEDIA"


def test_the_visible_label_sits_in_the_bottom_left_corner(clip):
    frames = media.upscale_frames(clip.frames, (256, 256))
    labelled = burn_label(frames)
    changed = np.abs(labelled.astype(int) - frames).sum(axis=(0, 3)) > 0
    ys, xs = np.nonzero(changed)
    assert ys.min() > 256 * 0.75 and xs.max() < 256 * 0.6
    assert labelled[:, ys.min() :, : xs.max()].max() == 255, "white letters"
