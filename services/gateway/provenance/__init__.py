"""Provenance of Kino's videos: a signed C2PA manifest, an invisible watermark, a visible label.

`package_video` is the gateway's packaging stage; `verify_file` answers Generation.Verify.
"""

from services.gateway.provenance.certificates import (
    SigningCredentials,
    development_credentials,
    load_credentials,
)
from services.gateway.provenance.label import burn_label
from services.gateway.provenance.manifest import (
    ManifestReport,
    ProvenanceClaims,
    prompt_digest,
    read_manifest,
    sign_video,
)
from services.gateway.provenance.package import package_video
from services.gateway.provenance.verify import verify_file
from services.gateway.provenance.watermark import (
    WatermarkKey,
    detect_watermark,
    embed_watermark,
    payload_for_video,
    video_for_payload,
    watermark_matches,
)

__all__ = [
    "ManifestReport",
    "ProvenanceClaims",
    "SigningCredentials",
    "WatermarkKey",
    "burn_label",
    "detect_watermark",
    "development_credentials",
    "embed_watermark",
    "load_credentials",
    "package_video",
    "payload_for_video",
    "prompt_digest",
    "read_manifest",
    "sign_video",
    "verify_file",
    "video_for_payload",
    "watermark_matches",
]
