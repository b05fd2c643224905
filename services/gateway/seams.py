"""Seam checks for continued videos: a continuation whose subject jumps where it starts, or vanishes,
is drawn again.

A video longer than one clip is made clip by clip, each call continuing from the last frames made so
far (`pipeline.DenoisePlan`). The DiT draws the first new frame to agree with the known ones and mostly
does, but now and then the subject lands a few pixels off where its motion was going, and the video
jumps at the seam. That is cheap to see on the frames, and a draw from another seed mostly does not
repeat it. On 144 rendered clips continued as the gateway continues them (`python -m
training.seam_probe --clips 72 --redraws 2`, seeds 7 and 11), 11 first draws jumped by the evaluator
and 4 of the draws kept, at 1.10-1.17 draws per continuation. On 24 chains of 20 calls made in process
as the gateway extends a video (`--chains 12 --calls 20`, the same two seeds), judged over each chain
as the modes report judges it: seams within 2x 96.7-97.1% -> 99.2%, the worst chain 85% -> 95%, at
1.03 draws per call.

The DiT also lets a small subject that moves fast fade into the backdrop now and then, so that in some
new frames no subject stands out at all: on 60 chains of 29 calls made as the gateway makes them
(`python -m training.seam_probe --chains 30 --calls 29 --seed S`, seeds 6 and 10, 2 redraws), 38 of
1,440 two-second segments showed no subject. Drawing such a call again as well brought that to 16, and
the segments whose colour and shape the evaluator reads as the first segment's from 90.3% to 91.8%.

The jump rule is the modes report's: the subject's step into the first new frame above twice the
median step between the new frames, that median floored at one pixel so that a subject at rest may
still wobble. The subject is found by `subjects.subject_centroids` (flat backdrops; a model for
natural video would take a detector, or optical flow, for it).
"""

from __future__ import annotations

import math

import numpy as np

from services.common.subjects import subject_centroids, subject_masks

# A seam is a jump when the step into the first new frame is more than this times the normal step.
JUMP_RATIO = 2.0


def seam_ratio(before: np.ndarray, new: np.ndarray) -> float | None:
    """The subject's step from the last frame before the seam into the first new frame, over the
    median step between the new frames (floored at one pixel). before (K, H, W, 3), new (N, H, W, 3),
    uint8. None where a frame shows no subject or there are fewer than two new frames to compare with."""
    if len(before) == 0 or len(new) < 2:
        return None
    frames = np.concatenate([before[-1:], new])
    centroids = subject_centroids(frames)
    if centroids is None:
        return None
    height, width = frames.shape[1:3]
    steps = np.linalg.norm(np.diff(centroids * (width, height), axis=0), axis=1)  # pixels, (N,)
    return float(steps[0] / max(float(np.median(steps[1:])), 1.0))


def frames_without_subject(frames: np.ndarray) -> int:
    """How many of frames (N, H, W, 3) show no subject (`subjects.subject_masks`)."""
    return int((~subject_masks(frames).any(axis=(1, 2))).sum())


class SeamDraws:
    """The draws of one continuation call, judged at its seam as they come: `take` says when to stop
    drawing, `kept` is the draw to keep, and `outcome` names how it went, as
    `kino_gateway_seam_checks_total` counts it.

    A draw is kept at once when its subject steps into it smoothly. Where the known frames show a
    subject and a draw loses it in some frame, that draw is drawn again too: the DiT now and then lets
    a small, fast subject fade into the backdrop, and the video's subject vanishes for a while. Every
    draw failing, the smoothest is kept, else the one that loses the subject in the fewest frames. Where
    the known frames show no subject to follow, the first draw is taken as it is."""

    def __init__(self, before: np.ndarray) -> None:
        self.before = before
        self.tracked = len(before) > 0 and frames_without_subject(before[-1:]) == 0
        self.draws = 0
        self.kept: np.ndarray | None = None
        self.kept_ratio = math.inf
        self.kept_lost = math.inf  # frames the kept draw shows no subject in, while none is smooth
        self.last_ratio: float | None = None
        self.outcome = "untracked"

    def take(self, new: np.ndarray) -> bool:
        """Judges one more draw's new frames; True when drawing can stop."""
        ratio = self.last_ratio = seam_ratio(self.before, new)
        first = self.draws == 0
        self.draws += 1
        # A ratio means every frame showed the subject; only a draw without one needs its frames counted.
        lost = 0 if ratio is not None else frames_without_subject(new)
        if not self.tracked or (ratio is None and not lost):  # nothing to follow, or too few new frames
            self.kept, self.outcome = new, "untracked"
            return True
        if ratio is not None and ratio <= JUMP_RATIO:
            self.kept, self.outcome = new, "smooth" if first else "redrawn"
            return True
        if ratio is not None and ratio < self.kept_ratio:
            self.kept, self.kept_ratio, self.outcome = new, ratio, "kept_jump"
        elif ratio is None and self.kept_ratio == math.inf and lost < self.kept_lost:  # none kept it so far
            self.kept, self.kept_lost, self.outcome = new, lost, "kept_lost"
        return False
