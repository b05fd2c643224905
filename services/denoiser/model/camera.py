"""Camera moves as a view transform of the generated scene: pans and zooms over a clip.

The shapes world is a flat backdrop with one object, so a camera that pans or zooms sees exactly the
generated frames shifted or scaled, with backdrop where the view leaves the rendered area: the
transform is the camera, not an approximation of one. (A model of a world with depth would need
camera conditioning in the network instead; `ModelInfo.supports_camera` says which a model has.)

Positions are fractions of the frame, (0, 0) top-left. Over a clip the move goes linearly from none at
the first frame to `amount` at the last: a pan travels `amount` of the frame, a zoom changes the scale
by a factor of 1 + amount (zoom in) or 1 / (1 + amount) (zoom out).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class CameraMotion(StrEnum):
    STATIC = "static"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"


_PAN_DIRECTIONS = {
    CameraMotion.PAN_LEFT: (-1.0, 0.0),
    CameraMotion.PAN_RIGHT: (1.0, 0.0),
    CameraMotion.PAN_UP: (0.0, -1.0),
    CameraMotion.PAN_DOWN: (0.0, 1.0),
}


def view_params(motion: CameraMotion, amount: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: where the view's centre is in the scene (F, 2) and the view's scale (F,)."""
    progress = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    centre = np.full((num_frames, 2), 0.5)
    scale = np.ones(num_frames)
    if motion in _PAN_DIRECTIONS:
        centre += np.outer(progress, _PAN_DIRECTIONS[motion]) * amount
    elif motion is CameraMotion.ZOOM_IN:
        scale = 1.0 + amount * progress
    elif motion is CameraMotion.ZOOM_OUT:
        scale = 1.0 / (1.0 + amount * progress)
    return centre, scale


def scene_to_view(points: np.ndarray, motion: CameraMotion, amount: float) -> np.ndarray:
    """Scene positions (F, 2), one per frame -> where the camera shows them (F, 2)."""
    centre, scale = view_params(motion, amount, len(points))
    return 0.5 + (points - centre) * scale[:, None]


def backdrop_color(frame: np.ndarray) -> np.ndarray:
    """The colour that fills most of a frame's border: the backdrop the view reveals. uint8 (3,)."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])  # (4N, 3)
    colors, counts = np.unique(border, axis=0, return_counts=True)
    return colors[counts.argmax()]


def apply_camera(frames: np.ndarray, motion: CameraMotion, amount: float) -> np.ndarray:
    """uint8 (F, H, W, 3) frames of the scene -> the frames the moving camera sees (nearest pixel, so
    flat colours stay flat)."""
    if motion is CameraMotion.STATIC or amount == 0:
        return frames
    F, H, W, _ = frames.shape
    centre, scale = view_params(motion, amount, F)
    ys = (np.arange(H) + 0.5) / H  # (H,)
    xs = (np.arange(W) + 0.5) / W  # (W,)
    out = np.empty_like(frames)
    for f in range(F):
        # The scene point each view pixel shows, inverted from scene_to_view.
        scene_x = centre[f, 0] + (xs - 0.5) / scale[f]  # (W,)
        scene_y = centre[f, 1] + (ys - 0.5) / scale[f]  # (H,)
        col = np.floor(scene_x * W).astype(int)
        row = np.floor(scene_y * H).astype(int)
        inside = (row[:, None] >= 0) & (row[:, None] < H) & (col[None] >= 0) & (col[None] < W)  # (H, W)
        out[f] = backdrop_color(frames[f])
        sampled = frames[f][np.clip(row, 0, H - 1)[:, None], np.clip(col, 0, W - 1)[None]]  # (H, W, 3)
        out[f][inside] = sampled[inside]
    return out
