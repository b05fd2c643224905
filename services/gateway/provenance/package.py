"""The packaging stage of a job: frames and sound to a marked, signed MP4.

Order matters: scale to the viewing size, burn the visible label, embed the watermark in the frames
exactly as they will be encoded, mux, and sign last, so the manifest's hash binds the final bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from services.gateway.media import DEFAULT_OPTIONS, EncodeOptions, even_size, mux, upscale_frames
from services.gateway.provenance.certificates import SigningCredentials
from services.gateway.provenance.label import burn_label
from services.gateway.provenance.manifest import ProvenanceClaims, sign_video
from services.gateway.provenance.watermark import DEFAULT_KEY, WatermarkKey, embed_watermark


def package_video(
    frames: np.ndarray,
    fps: float,
    pcm: np.ndarray | None,
    sample_rate: int,
    claims: ProvenanceClaims,
    credentials: SigningCredentials,
    *,
    options: EncodeOptions = DEFAULT_OPTIONS,
    visible_label: bool = False,
    key: WatermarkKey = DEFAULT_KEY,
) -> bytes:
    """MP4 bytes with the watermark of claims.video and a signed C2PA manifest.

    frames uint8 (F, H, W, 3) at fps; pcm int16 (S, C) at sample_rate, or None for silence.
    """
    if options.size is not None:
        frames = upscale_frames(frames, even_size(*options.size), options.resample)
    if visible_label:
        frames = burn_label(frames)
    frames = embed_watermark(frames, claims.video, key)
    mp4 = mux(frames, fps, pcm, sample_rate, dataclasses.replace(options, size=None))
    return sign_video(mp4, claims, credentials)
