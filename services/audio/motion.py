"""Visual events from the frames themselves: track the moving object, find where it hits something.

Tracking: the background is the median colour of the frame border over the clip; the object is every
pixel far from it; its centroid is the track. An impact is a reversal of the track on one axis whose
change of velocity is far larger than the track's usual acceleration: a bounce off a wall or the floor
turns the velocity round in one frame, while the top of a thrown arc turns it round by gravity alone.

Timing: frames are 125 ms apart at 8 fps, far coarser than hearing tolerates (about 40 ms), so the
contact time is solved between frames. On each side of the reversal the track follows
`p(t) = a + b t + g t^2 / 2` with the axis's acceleration g (estimated from the whole track: 0 for a
wall bounce, gravity for a floor bounce); fitting (a, b) on each side and intersecting the two arcs
gives the contact time, and the approach velocity at that time gives the impact speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A pixel belongs to the object when it differs from the background by more than this (RGB distance).
OBJECT_THRESHOLD = 48.0
# Fewer object pixels than this share of the frame: no object in that frame.
MIN_OBJECT_FRACTION = 0.002
# A reversal is an impact when its velocity change exceeds this many times the typical per-frame
# velocity change of the axis, and this share of the frame size per frame.
JUMP_OVER_TYPICAL = 3.0
MIN_JUMP = 0.03
# Frames are tracked at about this many pixels on the short side.
TRACK_SIDE = 96
# Points fitted on each side of a reversal.
FIT_POINTS = 3


@dataclass(frozen=True)
class VisualImpact:
    """A contact seen in the frames."""

    time_s: float  # contact time from the start of the clip, between frames
    frame: int  # the frame nearest the contact
    axis: str  # "x" or "y"
    surface: str  # "left wall", "right wall", "ceiling" or "floor"
    speed: float  # approach speed in frame sizes per second
    x: float  # horizontal position at contact, 0 (left) .. 1 (right)
    object_area: float  # share of the frame the object covers


@dataclass(frozen=True)
class Track:
    centroids: np.ndarray  # float (F, 2): (x, y) in frame sizes (0..1), NaN where no object
    areas: np.ndarray  # float (F,): share of the frame covered by the object


def track_object(frames: np.ndarray) -> Track:
    """frames uint8 (F, H, W, 3) -> the object's centroid per frame."""
    stride = max(1, min(frames.shape[1:3]) // TRACK_SIDE)  # large frames: every stride-th pixel is plenty
    frames = frames[:, ::stride, ::stride]
    f, h, w, _ = frames.shape
    pixels = frames.astype(np.float32)
    border = np.concatenate(
        [
            pixels[:, 0].reshape(-1, 3),
            pixels[:, -1].reshape(-1, 3),
            pixels[:, :, 0].reshape(-1, 3),
            pixels[:, :, -1].reshape(-1, 3),
        ]
    )
    background = np.median(border, axis=0)
    mask = np.linalg.norm(pixels - background, axis=-1) > OBJECT_THRESHOLD  # (F, H, W)
    counts = mask.sum(axis=(1, 2)).astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask * xs).sum(axis=(1, 2)) / counts / w
        cy = (mask * ys).sum(axis=(1, 2)) / counts / h
    present = counts >= MIN_OBJECT_FRACTION * h * w
    centroids = np.where(present[:, None], np.stack([cx, cy], axis=1), np.nan)
    return Track(centroids, counts / (h * w))


def find_impacts(frames: np.ndarray, fps: float) -> list[VisualImpact]:
    """Impacts in time order, timed between frames. frames: uint8 (F, H, W, 3)."""
    track = track_object(frames)
    impacts = []
    for axis in (0, 1):
        impacts.extend(_axis_impacts(track, axis, fps))
    return sorted(impacts, key=lambda i: i.time_s)


def _axis_impacts(track: Track, axis: int, fps: float) -> list[VisualImpact]:
    p = track.centroids[:, axis]
    f = len(p)
    if f < 3:
        return []
    v = np.diff(p)  # v[k]: motion from frame k to k+1
    dv = np.diff(v)  # dv[k]: velocity change at frame k+1
    finite = np.isfinite(dv)
    if not finite.any():
        return []
    gravity = float(np.median(dv[finite]))
    typical = float(np.median(np.abs(dv[finite] - gravity)))
    threshold = max(MIN_JUMP, JUMP_OVER_TYPICAL * max(typical, abs(gravity)))
    still = max(1e-4, 0.1 * typical)  # slower than this per frame: not moving on this axis
    impacts = []
    k = 1
    while k < f - 1:  # k: the frame after the approach, between v[k-1] and v[k]
        before, after = v[k - 1], v[k]
        plateau = abs(after) < still and k + 1 < f - 1
        if plateau:  # the contact fell halfway between frames k and k+1: equal positions
            after = v[k + 1]
        if not (np.isfinite(before) and np.isfinite(after)) or before * after >= 0 or abs(before) < still:
            k += 1
            continue
        if abs(after - before - gravity * (2 if plateau else 1)) < threshold:  # gravity alone turned it
            k += 1
            continue
        time_frames, speed = _contact_time(p, k, gravity, plateau)
        position = track.centroids[k]
        if axis == 0:
            surface = "right wall" if before > 0 else "left wall"
        else:
            surface = "floor" if before > 0 else "ceiling"
        impacts.append(
            VisualImpact(
                time_s=time_frames / fps,
                frame=int(np.clip(round(time_frames), 0, f - 1)),
                axis="xy"[axis],
                surface=surface,
                speed=speed * fps,
                x=float(np.clip(position[0], 0, 1)) if np.isfinite(position[0]) else 0.5,
                object_area=float(np.nanmedian(track.areas)),
            )
        )
        k += 2 if plateau else 1
    return impacts


def _contact_time(p: np.ndarray, k: int, gravity: float, plateau: bool) -> tuple[float, float]:
    """(contact time in frames, approach speed in frame sizes per frame) for the reversal at frame k.

    The extreme frame k is on whichever arc it fits better; the other arc is fitted without it. On a
    plateau (frames k and k+1 equally far) frame k is on the approach and k+1 on the way back.
    """
    last = len(p) - 1
    if plateau:
        before = [i for i in range(k - FIT_POINTS + 1, k + 1) if i >= 0 and np.isfinite(p[i])]
        after = [i for i in range(k + 1, k + 1 + FIT_POINTS) if i <= last and np.isfinite(p[i])]
    else:
        before = [i for i in range(k - FIT_POINTS, k) if i >= 0 and np.isfinite(p[i])]
        after = [i for i in range(k + 1, k + 1 + FIT_POINTS) if i <= last and np.isfinite(p[i])]
    arc_before, arc_after = _fit_arc(p, before, gravity), _fit_arc(p, after, gravity)
    if arc_before is not None and arc_after is not None and not plateau:
        miss_before = abs(_eval(arc_before, k, gravity) - p[k])
        miss_after = abs(_eval(arc_after, k, gravity) - p[k])
        if miss_before <= miss_after:
            arc_before = _fit_arc(p, before + [k], gravity)
        else:
            arc_after = _fit_arc(p, [k] + after, gravity)
    if arc_before is None and arc_after is None:
        return float(k), abs(p[k] - p[k - 1])
    if arc_before is None or arc_after is None:
        return _mirror_contact(p, before, after, arc_before, arc_after, gravity, k, plateau)
    (a1, b1), (a2, b2) = arc_before, arc_after
    if abs(b1 - b2) < 1e-9:
        return float(k), abs(b1 + gravity * k)
    # The g t^2 / 2 terms are equal on both arcs and cancel.
    t = (a2 - a1) / (b1 - b2)
    t = float(np.clip(t, k - 1, k + 2 if plateau else k + 1))
    return t, abs(b1 + gravity * t)


def _mirror_contact(p, before, after, arc_before, arc_after, gravity, k, plateau) -> tuple[float, float]:
    """Contact time when one side has a single tracked point (the clip's first or last frames).

    The unknown arc passes through that point and leaves the contact with the known arc's velocity
    reversed (an elastic bounce); the time where the two arcs meet is found on a fine grid.
    """
    known = arc_before if arc_before is not None else arc_after
    lone = after if arc_before is not None else before
    if known is None or not lone:
        return float(k), abs(p[k] - p[k - 1]) if np.isfinite(p[k] - p[k - 1]) else 0.0
    t0, p0 = float(lone[0]), float(p[lone[0]])
    a, b = known
    times = np.linspace(k - 1, k + 2 if plateau else k + 1, 2001)
    velocity = b + gravity * times  # the known arc's velocity at each candidate contact time
    # The lone arc has velocity -velocity at the contact, so c + g (t - t0) = -velocity there.
    c = -velocity - gravity * (times - t0)
    lone_at = p0 + c * (times - t0) + 0.5 * gravity * (times - t0) ** 2
    known_at = a + b * times + 0.5 * gravity * times**2
    best = int(np.argmin(np.abs(lone_at - known_at)))
    return float(times[best]), abs(float(velocity[best]))


def _fit_arc(p: np.ndarray, frames: list[int], gravity: float) -> tuple[float, float] | None:
    """(a, b) of p(t) = a + b t + gravity t^2 / 2 through the given frames, least squares; None if < 2."""
    if len(frames) < 2:
        return None
    t = np.array(frames, np.float64)
    y = p[frames] - 0.5 * gravity * t * t
    b, a = np.polyfit(t, y, 1)
    return float(a), float(b)


def _eval(arc: tuple[float, float], t: float, gravity: float) -> float:
    a, b = arc
    return a + b * t + 0.5 * gravity * t * t
