"""The visible "AI-generated" label, burned into the frames when a job asks for it.

A white caption on a translucent dark plate in the bottom-left corner, scaled with the frame so it
stays legible on a phone and small on a large frame. Burned in before the watermark is embedded, so
the watermark covers the labelled frames as they are encoded.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL = "AI-generated"
PLATE_OPACITY = 0.55


def burn_label(frames: np.ndarray, text: str = LABEL) -> np.ndarray:
    """uint8 (F, H, W, 3) with the label drawn on every frame."""
    _, h, w, _ = frames.shape
    size = max(8, round(min(h, w) * 0.07))
    font = ImageFont.load_default(size=size)
    margin = max(2, size // 3)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    box = (margin, h - margin - (bottom - top) - 2 * margin, margin + (right - left) + 2 * margin, h - margin)
    overlay = Image.new("L", (w, h), 0)
    ink = Image.new("L", (w, h), 0)
    ImageDraw.Draw(overlay).rectangle(box, fill=255)
    ImageDraw.Draw(ink).text((box[0] + margin - left, box[1] + margin - top), text, font=font, fill=255)
    plate = (np.asarray(overlay, np.float32) / 255 * PLATE_OPACITY)[None, :, :, None]
    letters = (np.asarray(ink, np.float32) / 255)[None, :, :, None]
    out = frames.astype(np.float32) * (1 - plate)
    out = out * (1 - letters) + 255 * letters
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
