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


def resample_path(times: np.ndarray, xy: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Timed points (N,) seconds and (N, 2) fractions -> (num_frames, 2) positions, linear in between and
    held before the first and after the last point."""
    order = np.argsort(times, kind="stable")
    times, xy = np.asarray(times, np.float64)[order], np.asarray(xy, np.float64)[order]
    frame_times = np.arange(num_frames) / fps
    return np.stack([np.interp(frame_times, times, xy[:, i]) for i in range(2)], axis=1).astype(np.float32)


# A pixel belongs to the subject when its colour is this far (RGB distance, 0-255 scale) from the
# frame's backdrop, read as the median colour of the frame's border.
SUBJECT_THRESHOLD = 60.0


def subject_centroids(frames: np.ndarray) -> np.ndarray | None:
    """Where the subject is in known frames: uint8 (K, H, W, 3) -> (K, 2) (x, y) fractions of the frame,
    the centroid of the pixels that stand out from the border's colour; None when some frame shows no
    subject (the path planner then has nothing to continue from).

    Made for flat backdrops (the shapes world's); a model for natural video would use a detector."""
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
    return None if known is None else planner.sample(tokens, seed, known=known)
