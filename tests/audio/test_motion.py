"""Visual impacts from the frames: found where the renderer put them, timed between frames."""

import numpy as np

from services.audio.motion import find_impacts, track_object
from training.shapes_world import FPS, SIZE, SceneSpec, render, sample_spec


def clips(motion_prefix: str, count: int, seed: int):
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        spec = sample_spec(rng, held_out=None)
        if spec.motion.startswith(motion_prefix):
            found.append(render(spec))
    return found


def test_track_follows_the_objects_centroid():
    clip = render(SceneSpec("square", "large", "yellow", "moves right", "wood", "navy", 3))
    track = track_object(clip.frames)
    np.testing.assert_allclose(track.centroids * SIZE, clip.centroids, atol=0.05)


def test_impacts_are_timed_between_frames_within_a_few_milliseconds():
    errors, missed, observable = [], 0, 0
    for clip in clips("bounces", 40, seed=11):
        found = find_impacts(clip.frames, FPS)
        # An impact in the last 1.5 frames has no frame after it that shows the reversal.
        truth = [i for i in clip.impacts if i.time_s * FPS < len(clip.frames) - 1.5]
        observable += len(truth)
        for impact in truth:
            distances = [abs(f.time_s - impact.time_s) for f in found]
            if distances and min(distances) < 0.04:
                errors.append(min(distances))
            else:
                missed += 1
        assert len(found) <= len(clip.impacts), "no impact is invented"
    assert observable > 30 and missed <= observable * 0.03
    assert np.median(errors) < 0.005 and np.percentile(errors, 95) < 0.02


def test_floor_bounces_are_floor_impacts_and_the_top_of_an_arc_is_not():
    for clip in clips("bounces on the floor", 10, seed=5):
        assert all(i.surface == "floor" and i.axis == "y" for i in find_impacts(clip.frames, FPS))


def test_wall_bounces_name_the_wall_and_slide_with_the_object():
    clip = render(SceneSpec("circle", "small", "red", "bounces left and right", "metal", "black", 4))
    found = find_impacts(clip.frames, FPS)
    assert [i.surface for i in found] == [i.surface for i in clip.impacts if i.time_s * FPS < 14.5]
    for impact in found:
        assert (impact.x > 0.7) == (impact.surface == "right wall")
        assert impact.speed > 0.4  # 4..6 pixels per frame of 64, at 8 fps


def test_no_impacts_without_a_bounce():
    for motion in ("moves left", "moves down", "stays still"):
        for clip in clips(motion, 3, seed=2):
            assert find_impacts(clip.frames, FPS) == []
    blank = np.zeros((16, 32, 32, 3), np.uint8)
    assert find_impacts(blank, FPS) == []
