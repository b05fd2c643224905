"""The C2PA manifest of a Kino video: what made it, signed and bound to the file's bytes.

The manifest (c2pa-python, the Content Authenticity Initiative's library) holds:
* `c2pa.actions.v2` with one `c2pa.created` action whose digitalSourceType is IPTC's
  trainedAlgorithmicMedia and whose softwareAgent is the model. Remixes and extensions are created
  too: every frame is newly generated, and C2PA requires a manifest without a parent ingredient to
  begin with `created`; the parent is named in Kino's own assertion;
* `org.kino.generation`: the model, the SHA-256 of the prompt (never the prompt itself), the job,
  the video, and the parent video for remixes and extensions;
* the hard binding the library adds: a BMFF hash of the whole MP4 except the manifest box, so changing
  any byte of the media invalidates it.

Reading reports presence, validity (signature, certificate chain against the trust anchors, and the
hash binding) and the failure codes the library gives, e.g. "assertion.bmffHash.mismatch".
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import c2pa

from services.gateway.provenance.certificates import SigningCredentials

DIGITAL_SOURCE_TYPE = "trainedAlgorithmicMedia"
_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
KINO_ASSERTION = "org.kino.generation"
MIME = "video/mp4"
CLAIM_GENERATOR = {"name": "Kino", "version": "0.1.0"}


@dataclass(frozen=True)
class ProvenanceClaims:
    """What a Kino video's manifest declares."""

    model: str  # model name and version
    prompt_sha256: str  # hex; `prompt_digest(prompt)`
    job: str  # "jobs/{id}"
    video: str  # "videos/{id}"
    parent_video: str = ""  # "videos/{id}" for remixes and extensions


@dataclass(frozen=True)
class ManifestReport:
    present: bool
    valid: bool
    issues: tuple[str, ...] = ()
    claims: ProvenanceClaims | None = None
    digital_source_type: str = ""
    signer: str = ""  # the signing certificate's issuer organization, as the library reports it
    trusted: bool = False
    detail: dict = field(default_factory=dict)


def prompt_digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def manifest_definition(claims: ProvenanceClaims) -> dict:
    action = {
        "action": "c2pa.created",
        "digitalSourceType": _IPTC + DIGITAL_SOURCE_TYPE,
        "softwareAgent": {"name": claims.model},
    }
    generation = {
        "model": claims.model,
        "prompt_sha256": claims.prompt_sha256,
        "job": claims.job,
        "video": claims.video,
        "parent_video": claims.parent_video,
    }
    return {
        "claim_generator_info": [CLAIM_GENERATOR],
        "title": f"{claims.video}.mp4",
        "format": MIME,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [action]}},
            {"label": KINO_ASSERTION, "data": generation},
        ],
    }


def sign_video(mp4: bytes, claims: ProvenanceClaims, credentials: SigningCredentials) -> bytes:
    """The MP4 with a signed C2PA manifest embedded (a top-level uuid box)."""
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256,
            credentials.chain_pem.encode(),
            credentials.private_key_pem.encode(),
            None,
        )
    )
    with signer, c2pa.Builder.from_json(json.dumps(manifest_definition(claims))) as builder:
        out = io.BytesIO()
        builder.sign(signer, MIME, io.BytesIO(mp4), out)
        return out.getvalue()


def read_manifest(data: bytes, trust_anchors_pem: str | None) -> ManifestReport:
    """Presence and validity of the file's manifest; never raises for a bad or foreign file."""
    settings = {"verify": {"verify_trust": trust_anchors_pem is not None}}
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
    try:
        with c2pa.Context(c2pa.Settings.from_dict(settings)) as context:
            reader = c2pa.Reader.try_create(MIME, io.BytesIO(data), None, context)
            if reader is None:
                return ManifestReport(present=False, valid=False)
            with reader:
                state = reader.get_validation_state() or ""
                results = reader.get_validation_results() or {}
                active = reader.get_active_manifest() or {}
    except c2pa.C2paError as error:
        # A manifest store that cannot be parsed is present but broken.
        return ManifestReport(present=True, valid=False, issues=(f"manifest.unreadable: {error}",))
    active_results = results.get("activeManifest", {})
    failures = tuple(sorted({item["code"] for item in active_results.get("failure", [])}))
    successes = {item["code"] for item in active_results.get("success", [])}
    claims, source_type = _claims(active)
    return ManifestReport(
        present=True,
        valid=state in ("Valid", "Trusted") and not failures,
        issues=failures,
        claims=claims,
        digital_source_type=source_type,
        signer=active.get("signature_info", {}).get("issuer", ""),
        trusted=state == "Trusted" or "signingCredential.trusted" in successes,
        detail={"validation_state": state},
    )


def _claims(active: dict) -> tuple[ProvenanceClaims | None, str]:
    claims, source_type = None, ""
    for assertion in active.get("assertions", []):
        data = assertion.get("data", {})
        if assertion.get("label") == KINO_ASSERTION:
            claims = ProvenanceClaims(
                model=str(data.get("model", "")),
                prompt_sha256=str(data.get("prompt_sha256", "")),
                job=str(data.get("job", "")),
                video=str(data.get("video", "")),
                parent_video=str(data.get("parent_video", "")),
            )
        elif assertion.get("label", "").startswith("c2pa.actions"):
            for action in data.get("actions", []):
                source = action.get("digitalSourceType", "")
                if source:
                    source_type = source.removeprefix(_IPTC)
    return claims, source_type
