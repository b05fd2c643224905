"""Subject paths as the DiT sees them: one heat map per frame on the latent grid.

A path is where the subject's centre should be in each frame, as fractions of the frame's width and
height. The DiT takes it as one extra input channel: a Gaussian bump at that place in every frame, zero
everywhere in clips without a path. Training draws the bumps from the rendered object's true centroids,
so the model learns to put the object where the bump is; at inference the bumps come from the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from services.common.subjects import subject_boxes, subject_centroids

if TYPE_CHECKING:
    from services.denoiser.model.planner import PathPlanner

# Width of the bump in latent cells: wide enough that a position between cells is still seen by the
# patch that holds it, narrow enough that it names one place.
PATH_SIGMA = 1.0


def path_heatmap(points: torch.Tensor, size: int, sigma: float = PATH_SIGMA) -> torch.Tensor:
    """points (B, F, 2) as (x, y) fractions of the frame -> heat map (B, 1, F, size, size) in [0, 1]."""
    centres = (torch.arange(size, dtype=torch.float32, device=points.device) + 0.5) / size  # (size,)
    dx = (centres.view(1, 1, 1, size) - points[..., 0, None, None]) * size  # (B, F, 1, size)
    dy = (centres.view(1, 1, size, 1) - points[..., 1, None, None]) * size  # (B, F, size, 1)
    return torch.exp(-(dx.square() + dy.square()) / (2 * sigma**2)).unsqueeze(1)  # (B, 1, F, size, size)


# How far (a fraction of the frame) a path may move over a clip's new frames and still count as a subject
# at rest (`stays_still`): a resting subject's planned path wanders by a pixel or so.
STILL_PATH_SPAN = 0.03


def stays_still(path: np.ndarray | None, known_frames: int) -> bool:
    """Whether `path` (F, 2) keeps the subject where the last of `known_frames` put it, within
    STILL_PATH_SPAN, over the frames after them; False without a path."""
    if path is None or not 1 <= known_frames < len(path):
        return False
    return bool(np.abs(path[known_frames - 1 :] - path[known_frames - 1]).max() <= STILL_PATH_SPAN)


def resample_path(times: np.ndarray, xy: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Timed points (N,) seconds and (N, 2) fractions -> (num_frames, 2) positions, linear in between and
    held before the first and after the last point."""
    order = np.argsort(times, kind="stable")
    times, xy = np.asarray(times, np.float64)[order], np.asarray(xy, np.float64)[order]
    frame_times = np.arange(num_frames) / fps
    return np.stack([np.interp(frame_times, times, xy[:, i]) for i in range(2)], axis=1).astype(np.float32)


def default_path(
    planner: PathPlanner | None,
    tokens: np.ndarray,
    seed: int,
    *,
    path_input: bool,
    first_frames: np.ndarray | None = None,
    source_video: np.ndarray | None = None,
) -> np.ndarray | None:
    """The subject path for a request that sends none, (F, 2); None where the DiT decides alone.

    * A remix follows its source: where the subject is in every source frame, so that the path input
      holds the source's motion while the strength frees the look to change (SDEdit alone holds the
      motion only at strengths too low to change the colour). Only for a model with a path input
      (`path_input`), and None when some source frame shows no subject.
    * Otherwise the planner plans it: from the prompt alone, or, with known first frames
      (image-to-video, extend), continuing from where the subject is in them. None without a planner,
      or when the first frames show no subject to continue from."""
    if source_video is not None:
        return subject_centroids(source_video) if path_input else None
    if planner is None:
        return None
    if first_frames is None:
        return planner.sample(tokens, seed)
    known = subject_centroids(first_frames)
    if known is None:
        return None
    height, width = first_frames.shape[1:3]
    path = planner.sample(tokens, seed, known=known)
    return keep_in_frame(path, known, subject_boxes(first_frames), (1 / width, 1 / height))


# How far inside the frame's edge (pixels) a planned continuation keeps the subject's box: the world keeps
# one pixel, and the DiT puts a subject within a pixel or two of where its path says.
FRAME_MARGIN_PX = 2.0
# How fast (pixels per frame) a continuation brings back a subject the known frames show nearer the edge
# than that: slower than the one-pixel floor of a normal step, so the seam does not jump.
EASE_IN_PX = 0.5


def keep_in_frame(
    path: np.ndarray, centroids: np.ndarray, boxes: np.ndarray, pixel: tuple[float, float]
) -> np.ndarray:
    """A path (F, 2) that continues K known positions, with its positions after them limited so that the
    subject, as large as the known frames show it, stays FRAME_MARGIN_PX inside the frame.

    The planner's bounds are one box for every subject, wide enough for a small one, so a large subject
    planned to rest against a wall was drawn partly out of the frame, and in a chain of extensions a
    resting subject's small drifts carried it further out call after call. The shapes world never
    leaves a subject partly outside, and a clipped subject changes shape for the viewer (a circle cut
    by the frame's edge reads as a square). centroids (K, 2) and boxes (K, 4) are where the known frames
    show the subject (`subjects.subject_centroids`, `subjects.subject_boxes`); pixel is one pixel's
    (width, height) as fractions of the frame. A subject the known frames already show nearer the edge
    is brought back in at EASE_IN_PX per frame, never pulled in at the seam."""
    k = len(centroids)
    pixel = np.asarray(pixel, np.float32)
    before = np.max(centroids - boxes[:, :2], axis=0)  # centroid to the box's left and top edges
    after = np.max(boxes[:, 2:] - centroids, axis=0)  # centroid to its right and bottom edges
    low, high = before + FRAME_MARGIN_PX * pixel, 1.0 - after - FRAME_MARGIN_PX * pixel
    ease = np.arange(1, len(path) - k + 1, dtype=np.float32)[:, None] * EASE_IN_PX * pixel  # (F - K, 1)
    last = centroids[-1]
    low = np.minimum(low, last + ease)  # (F - K, 2): where the last known position lies below the limit,
    high = np.maximum(high, last - ease)  # the limit starts there and moves to it frame by frame
    kept = path.copy()
    kept[k:] = np.clip(kept[k:], low, np.maximum(high, low))
    return kept
