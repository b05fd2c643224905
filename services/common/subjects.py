"""Where the subject is in frames with a flat backdrop, in numpy alone.

Two services read it: the denoiser, whose path planner continues a subject from where known frames
show it (`services.denoiser.model.paths`), and the gateway, which checks that a continuation does not
jump at its seam (`services.gateway.seams`) and runs without torch. Made for the shapes world's flat
backdrops; a model for natural video would use a detector.
"""

from __future__ import annotations

import numpy as np

# A pixel belongs to the subject when its colour is this far (RGB distance, 0-255 scale) from the
# frame's backdrop, read as the median colour of the frame's border.
SUBJECT_THRESHOLD = 60.0


def subject_centroids(frames: np.ndarray) -> np.ndarray | None:
    """uint8 (K, H, W, 3) -> (K, 2) (x, y) fractions of the frame: the centroid of the pixels that stand
    out from the border's colour; None when some frame shows no subject."""
    pixels = frames.astype(np.float32)
    _, height, width, _ = frames.shape
    border = np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1)
    backdrop = np.median(border, axis=1)  # (K, 3)
    masks = np.linalg.norm(pixels - backdrop[:, None, None, :], axis=-1) > SUBJECT_THRESHOLD  # (K, H, W)
    if not masks.any(axis=(1, 2)).all():
        return None
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    centroids = [(xs[m].mean() / width, ys[m].mean() / height) for m in masks]
    return np.array(centroids, dtype=np.float32)
