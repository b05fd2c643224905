"""Generation.Verify without its transport: a file's C2PA manifest and invisible watermark.

The two marks answer different questions and fail differently. The manifest is exact: any change to the
media bytes breaks its hash binding, and re-encoding drops it altogether. The watermark is robust: it
outlives re-encoding and scaling, so a re-uploaded copy still names its video. A file that is not a
video is the caller's mistake (INVALID_ARGUMENT/INVALID_MEDIA); a video without marks gets a verdict
saying so.
"""

from __future__ import annotations

from kino.v1 import generation_pb2
from services.common.errors import invalid_argument
from services.gateway import media
from services.gateway.provenance.manifest import DIGITAL_SOURCE_TYPE, read_manifest
from services.gateway.provenance.watermark import (
    DEFAULT_KEY,
    WatermarkKey,
    detect_watermark,
    video_for_payload,
)

MAX_FILE_BYTES = 64 << 20  # generation.proto VerifyRequest.file


def verify_file(
    data: bytes, *, trust_anchors_pem: str | None = None, key: WatermarkKey = DEFAULT_KEY
) -> generation_pb2.VerifyResponse:
    """The Verify verdict for a file's bytes.

    trust_anchors_pem: the CAs whose signatures count (`load_credentials(settings).trust_anchors_pem`);
    None checks signature and binding but trusts no certificate.
    """
    if not data:
        raise invalid_argument("FIELD_REQUIRED", "file is required: the bytes of a video file", field="file")
    if len(data) > MAX_FILE_BYTES:
        raise invalid_argument(
            "MESSAGE_TOO_LARGE",
            f"file has {len(data)} bytes; the limit is {MAX_FILE_BYTES}",
            size=len(data),
            max=MAX_FILE_BYTES,
        )
    info = media.probe(data)  # INVALID_MEDIA when ffmpeg cannot parse it
    if info.video is None or info.video.num_frames == 0:
        raise invalid_argument(
            "INVALID_MEDIA", "file: no video frames in the file", field="file", detail="no video stream"
        )
    if info.format_name.endswith("_pipe") or info.format_name == "image2":  # a still image, not a video
        detail = f"a still image ({info.format_name.removesuffix('_pipe')}), not a video"
        raise invalid_argument("INVALID_MEDIA", f"file: {detail}", field="file", detail=detail)
    manifest = read_manifest(data, trust_anchors_pem)
    issues = list(manifest.issues)
    if (
        manifest.present
        and trust_anchors_pem is not None
        and not manifest.trusted
        and "signingCredential.untrusted" not in issues
    ):
        issues.append("signingCredential.untrusted")
    reading = detect_watermark(media.decode_luma(data), key)
    watermark_video = video_for_payload(reading.payload) if reading.found else ""
    provenance = generation_pb2.Provenance(
        c2pa_signed=manifest.present and manifest.valid, watermark=watermark_video
    )
    if manifest.claims is not None:
        provenance.digital_source_type = manifest.digital_source_type or DIGITAL_SOURCE_TYPE
        provenance.model = manifest.claims.model
        provenance.prompt_sha256 = manifest.claims.prompt_sha256
        provenance.job = manifest.claims.job
        provenance.parent_video = manifest.claims.parent_video
    return generation_pb2.VerifyResponse(
        manifest_present=manifest.present,
        manifest_valid=manifest.valid and not (trust_anchors_pem is not None and not manifest.trusted),
        manifest_issues=issues,
        provenance=provenance,
        watermark_found=reading.found,
        watermark_video=watermark_video,
        watermark_confidence=reading.confidence,
    )
