"""Reads a shapes-world video with plain image analysis, independent of any model.

Per frame: the background is the median colour of the border, the object is every pixel far from it.
Across the clip: colour is the nearest palette entry to the object's median colour; shape is the fill
ratio of the object's bounding box (square 1, circle pi/4, triangle 1/2); size is the bounding box side;
motion comes from the tracked centroid; impacts are the frames where the centroid's path reverses.
Flicker is the coefficient of variation of the object's area across the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.shapes_world import BACKGROUND_PALETTE, HALF_EXTENT, PALETTE, SceneSpec

# An object pixel differs from the background by more than this (RGB Euclidean distance).
OBJECT_THRESHOLD = 60.0
# Fill ratio boundaries: triangle ~0.5 | circle ~0.79 | square 1.0.
TRIANGLE_BELOW, SQUARE_ABOVE = 0.64, 0.9
# Bounding box side (pixels) between small and large objects.
LARGE_ABOVE = HALF_EXTENT["small"] + HALF_EXTENT["large"] + 1
# The centroid must travel this far (pixels) within a few frames on both sides of a reversal.
REVERSAL_MIN_TRAVEL = 1.5
REVERSAL_WINDOW = 3
# Below this spread (pixels) on both axes, the object stays still.
STILL_BELOW = 3.0
FLICKER_LIMIT = 0.15

_OBJECT_COLORS = np.array(list(PALETTE.values()), np.float32)
_BACKGROUND_COLORS = np.array(list(BACKGROUND_PALETTE.values()), np.float32)


@dataclass(frozen=True)
class Reversal:
    frame: int
    axis: str  # "x" or "y"
    kind: str  # "max" (the path turned back after increasing) or "min"


@dataclass(frozen=True)
class VideoAnalysis:
    color: str | None
    shape: str | None
    size: str | None
    background: str
    motion: str | None
    centroids: np.ndarray  # float32 (F, 2), NaN where no object was found
    areas: np.ndarray  # int (F,)
    reversals: tuple[Reversal, ...]
    area_cv: float  # coefficient of variation of the object's area; inf when it vanishes

    @property
    def flickers(self) -> bool:
        return not self.area_cv <= FLICKER_LIMIT


def border_pixels(pixels: np.ndarray) -> np.ndarray:
    """float (F, H, W, 3) -> the frames' edge pixels (F, 2H + 2W, 3): the background shows there."""
    return np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1)


def nearest_background(border: np.ndarray) -> str:
    """The palette background nearest to the median of `border` pixels (..., 3)."""
    median = np.median(border.reshape(-1, 3), axis=0)
    return list(BACKGROUND_PALETTE)[int(np.argmin(np.linalg.norm(_BACKGROUND_COLORS - median, axis=1)))]


def analyze(frames: np.ndarray) -> VideoAnalysis:
    """frames: uint8 (F, H, W, 3)."""
    pixels = frames.astype(np.float32)
    num_frames, height, width, _ = frames.shape
    border = border_pixels(pixels)  # (F, 2H + 2W, 3)
    background = nearest_background(border)
    frame_bg = np.median(border, axis=1)  # (F, 3)
    masks = np.linalg.norm(pixels - frame_bg[:, None, None, :], axis=-1) > OBJECT_THRESHOLD  # (F, H, W)
    areas = masks.sum(axis=(1, 2))

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    centroids = np.full((num_frames, 2), np.nan, np.float32)
    fills, sides = [], []
    for f in range(num_frames):
        if areas[f] == 0:
            continue
        m = masks[f]
        centroids[f] = (xs[m].mean(), ys[m].mean())
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        box_h, box_w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        fills.append(areas[f] / (box_h * box_w))
        sides.append(max(box_h, box_w))

    mean_area = areas.mean()
    area_cv = float(areas.std() / mean_area) if mean_area > 0 and areas.min() > 0 else float("inf")
    if not fills:
        return VideoAnalysis(None, None, None, background, None, centroids, areas, (), area_cv)

    object_rgb = np.median(pixels[masks], axis=0)
    color = list(PALETTE)[int(np.argmin(np.linalg.norm(_OBJECT_COLORS - object_rgb, axis=1)))]
    fill = float(np.median(fills))
    shape = "triangle" if fill < TRIANGLE_BELOW else "square" if fill > SQUARE_ABOVE else "circle"
    size = "large" if np.median(sides) > LARGE_ABOVE else "small"
    reversals = find_reversals(centroids) if np.isfinite(centroids).all() else ()
    motion = classify_motion(centroids, reversals) if np.isfinite(centroids).all() else None
    return VideoAnalysis(color, shape, size, background, motion, centroids, areas, reversals, area_cv)


def find_reversals(centroids: np.ndarray) -> tuple[Reversal, ...]:
    """Frames where x or y reaches a local extremum with real travel on both sides."""
    found = []
    num_frames = len(centroids)
    for axis, name in ((0, "x"), (1, "y")):
        track = centroids[:, axis]
        for f in range(1, num_frames - 1):
            before = track[max(0, f - REVERSAL_WINDOW) : f]
            after = track[f + 1 : f + 1 + REVERSAL_WINDOW]
            for kind, sign in (("max", 1.0), ("min", -1.0)):
                v = sign * track
                if not (v[f] >= v[f - 1] and v[f] > v[f + 1]):
                    continue
                if sign * track[f] - (sign * before).min() >= REVERSAL_MIN_TRAVEL and (
                    sign * track[f] - (sign * after).min() >= REVERSAL_MIN_TRAVEL
                ):
                    found.append(Reversal(f, name, kind))
    return tuple(sorted(found, key=lambda r: r.frame))


def classify_motion(centroids: np.ndarray, reversals: tuple[Reversal, ...]) -> str:
    x, y = centroids[:, 0], centroids[:, 1]
    spread_x, spread_y = np.ptp(x), np.ptp(y)
    if max(spread_x, spread_y) < STILL_BELOW:
        return "stays still"
    if spread_y >= spread_x:
        # Image y grows downward: a floor bounce is a maximum of y.
        if any(r.axis == "y" and r.kind == "max" for r in reversals):
            return "bounces on the floor"
        return "moves down" if y[-1] > y[0] else "moves up"
    if any(r.axis == "x" for r in reversals):
        return "bounces left and right"
    return "moves right" if x[-1] > x[0] else "moves left"


@dataclass(frozen=True)
class Score:
    """How a video matches the spec it was made from; one bool per attribute."""

    color: bool
    shape: bool
    size: bool
    background: bool
    motion: bool
    no_flicker: bool
    area_cv: float
    # For bouncing motions: does the first reversal the evaluator sees fall within a frame of the
    # first ground-truth impact? None when there is no ground truth to compare (generated videos).
    first_impact: bool | None = None


def path_distances(frames: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per frame (F,): the distance between the tracked centroid and the expected place (F, 2), both as
    fractions of the frame side; a frame without an object counts as half the frame away."""
    size = frames.shape[2]
    distance = np.linalg.norm(analyze(frames).centroids / size - expected, axis=1)
    return np.where(np.isfinite(distance), distance, 0.5)


def score(frames: np.ndarray, spec: SceneSpec, impact_frames: tuple[int, ...] | None = None) -> Score:
    a = analyze(frames)
    first_impact = None
    if impact_frames is not None and spec.motion in ("bounces left and right", "bounces on the floor"):
        axis = "x" if spec.motion == "bounces left and right" else "y"
        seen = [r.frame for r in a.reversals if r.axis == axis]
        first_impact = bool(seen) and bool(impact_frames) and abs(seen[0] - impact_frames[0]) <= 1
    return Score(
        color=a.color == spec.color,
        shape=a.shape == spec.shape,
        size=a.size == spec.size,
        background=a.background == spec.background,
        motion=a.motion == spec.motion,
        no_flicker=not a.flickers,
        area_cv=a.area_cv,
        first_impact=first_impact,
    )
