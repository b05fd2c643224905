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


def subject_masks(frames: np.ndarray) -> np.ndarray:
    """uint8 (K, H, W, 3) -> bool (K, H, W): the pixels that stand out from the frame's backdrop, read as
    the median colour of the frame's border."""
    pixels = frames.astype(np.float32)
    border = np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1)
    backdrop = np.median(border, axis=1)  # (K, 3)
    return np.linalg.norm(pixels - backdrop[:, None, None, :], axis=-1) > SUBJECT_THRESHOLD


def _masks_in_every_frame(frames: np.ndarray) -> np.ndarray | None:
    """`subject_masks`, or None when some frame shows no subject."""
    masks = subject_masks(frames)
    return masks if masks.any(axis=(1, 2)).all() else None


def subject_centroids(frames: np.ndarray) -> np.ndarray | None:
    """uint8 (K, H, W, 3) -> (K, 2) (x, y) fractions of the frame: the centroid of the pixels that stand
    out from the border's colour; None when some frame shows no subject."""
    masks = _masks_in_every_frame(frames)
    if masks is None:
        return None
    _, height, width = masks.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    centroids = [(xs[m].mean() / width, ys[m].mean() / height) for m in masks]
    return np.array(centroids, dtype=np.float32)


def subject_boxes(frames: np.ndarray) -> np.ndarray | None:
    """uint8 (K, H, W, 3) -> (K, 4) (left, top, right, bottom) edges of the subject's bounding box,
    fractions of the frame (pixel edges: a subject filling the frame is (0, 0, 1, 1)); None when some
    frame shows no subject."""
    masks = _masks_in_every_frame(frames)
    if masks is None:
        return None
    _, height, width = masks.shape
    boxes = []
    for m in masks:
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes.append((cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height))
    return np.array(boxes, dtype=np.float32)
