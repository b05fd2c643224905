import dataclasses

import numpy as np
import pytest

from training.evaluator import analyze, score
from training.shapes_world import (
    COLORS,
    HALF_EXTENT,
    HELD_OUT_COMBOS,
    LONG_PATH_FRAMES,
    MOTIONS,
    NUM_FRAMES,
    PATH_PHRASES,
    SHAPES,
    SIZE,
    SceneSpec,
    long_path,
    make_caption,
    make_generic_caption,
    parse_caption,
    render,
    render_along_path,
    render_continuation,
    render_training_batch,
    sample_spec,
)


def _spec(**overrides) -> SceneSpec:
    fields = dict(
        shape="circle",
        size="large",
        color="red",
        motion="moves left",
        material="rubber",
        background="black",
        seed=3,
    )
    fields.update(overrides)
    return SceneSpec(**fields)


def test_render_gives_frames_masks_and_centroids_of_the_clip():
    clip = render(_spec())
    assert clip.frames.shape == (NUM_FRAMES, SIZE, SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.masks.shape == (NUM_FRAMES, SIZE, SIZE)
    assert clip.centroids.shape == (NUM_FRAMES, 2)
    assert (clip.frames[clip.masks] == (230, 40, 40)).all()


def test_render_is_a_pure_function_of_the_spec():
    spec = _spec(motion="bounces on the floor", seed=11)
    a, b = render(spec), render(spec)
    assert np.array_equal(a.frames, b.frames) and a.impacts == b.impacts and a.caption == b.caption


@pytest.mark.parametrize("motion", ["moves left", "moves right", "moves up", "moves down"])
def test_straight_motions_keep_the_object_inside_the_frame_and_move_one_way(motion):
    for seed in range(20):
        clip = render(_spec(motion=motion, seed=seed))
        border = (
            clip.masks[:, 0].any()
            or clip.masks[:, -1].any()
            or clip.masks[:, :, 0].any()
            or clip.masks[:, :, -1].any()
        )
        assert not border
        axis = 0 if motion in ("moves left", "moves right") else 1
        step = np.diff(clip.centroids[:, axis])
        assert (np.sign(step) == (-1 if motion in ("moves left", "moves up") else 1)).all()
        assert clip.impacts == ()


def test_wall_bounces_record_impacts_where_horizontal_velocity_reverses():
    for seed in range(20):
        clip = render(_spec(motion="bounces left and right", seed=seed))
        assert clip.impacts and all(i.surface in ("left wall", "right wall") for i in clip.impacts)
        vx = np.diff(clip.centroids[:, 0])
        for impact in clip.impacts:
            f = impact.frame
            if f > NUM_FRAMES - 2:
                continue  # the reversal would show only after the clip ends
            assert abs(impact.time_s * 8 - f) <= 0.5
            window = vx[max(0, f - 2) : f + 2]
            assert (window > 0).any() and (window < 0).any()


def test_floor_bounces_fall_with_gravity_and_reverse_at_the_floor():
    for seed in range(20):
        clip = render(_spec(motion="bounces on the floor", seed=seed))
        assert clip.impacts[0].surface == "floor"
        first = clip.impacts[0].frame
        vy = np.diff(clip.centroids[:, 1])
        assert (np.diff(vy[: first - 1]) > 0).all()  # accelerating downward before the first impact
        assert vy[first] < 0 or vy[first - 1] > 0 > vy[first + 1]


def test_impact_times_are_increasing_and_inside_the_clip():
    for seed in range(30):
        clip = render(_spec(motion="bounces on the floor", material="rubber", seed=seed))
        times = [i.time_s for i in clip.impacts]
        assert times == sorted(times) and times[0] > 0 and times[-1] < NUM_FRAMES / 8


def test_still_objects_do_not_move():
    clip = render(_spec(motion="stays still"))
    assert np.ptp(clip.centroids, axis=0).max() == 0


def test_held_out_split_has_sixteen_combos_and_training_never_samples_them():
    assert len(HELD_OUT_COMBOS) == 16
    assert {c for c, _, _ in HELD_OUT_COMBOS} == set(COLORS)
    assert {s for _, s, _ in HELD_OUT_COMBOS} == set(SHAPES)
    assert {m for _, _, m in HELD_OUT_COMBOS} == set(MOTIONS)
    rng = np.random.default_rng(0)
    assert all(sample_spec(rng).combo not in HELD_OUT_COMBOS for _ in range(500))
    assert all(sample_spec(rng, held_out=True).combo in HELD_OUT_COMBOS for _ in range(50))


def test_captions_are_varied_and_parse_back_to_the_spec():
    rng = np.random.default_rng(1)
    captions = set()
    for _ in range(300):
        spec = sample_spec(rng, held_out=None)
        caption = make_caption(spec, rng)
        captions.add(caption)
        said = parse_caption(caption)
        assert (said.color, said.shape, said.motion) == spec.combo, caption
        assert said.size in (None, spec.size) and said.material in (None, spec.material)
        assert said.background in (None, spec.background)
    assert len(captions) > 250


def test_parse_caption_reads_free_paraphrases():
    said = parse_caption("small metal yellow square dropping onto the floor")
    assert (said.color, said.shape, said.motion, said.size, said.material) == (
        "yellow",
        "square",
        "bounces on the floor",
        "small",
        "metal",
    )
    said = parse_caption("a red circle bouncing left and right on a black background")
    assert (said.color, said.shape, said.motion, said.background) == (
        "red",
        "circle",
        "bounces left and right",
        "black",
    )


def test_evaluator_reads_rendered_ground_truth_at_least_99_percent():
    rng = np.random.default_rng(7)
    n, right, impacts_total, impacts_right = 400, 0, 0, 0
    for _ in range(n):
        spec = sample_spec(rng, held_out=None)
        clip = render(spec)
        s = score(clip.frames, spec, tuple(i.frame for i in clip.impacts))
        right += s.color and s.shape and s.size and s.background and s.motion and s.no_flicker
        if s.first_impact is not None:
            impacts_total += 1
            impacts_right += s.first_impact
    assert right / n >= 0.99
    assert impacts_right / impacts_total >= 0.99


def test_evaluator_flags_flicker_and_missing_objects():
    clip = render(_spec(motion="stays still"))
    frames = clip.frames.copy()
    frames[::2][clip.masks[::2]] = 0  # the object vanishes on every other frame
    analysis = analyze(frames)
    assert analysis.flickers
    assert analyze(np.zeros_like(frames)).color is None


def test_generic_captions_say_how_it_moves_but_not_what_it_looks_like():
    rng = np.random.default_rng(2)
    for _ in range(100):
        spec = sample_spec(rng, held_out=None)
        said = parse_caption(make_generic_caption(spec, rng))
        assert (said.color, said.shape, said.motion) == (None, None, spec.motion)


def test_clips_along_a_random_path_follow_it_and_say_so():
    rng = np.random.default_rng(3)
    for _ in range(20):
        clip = render_along_path(sample_spec(rng), rng)
        assert any(phrase in clip.caption for phrase in PATH_PHRASES)
        seen = analyze(clip.frames)
        assert np.allclose(seen.centroids, clip.centroids, atol=0.5)
        assert clip.masks.any(axis=(1, 2)).all()  # the object stays in the frame


def test_training_batches_depend_on_their_seed_alone_so_workers_can_render_them_in_any_order():
    first = render_training_batch((0, 2, 5), 6, path_fraction=0.5)
    again = render_training_batch((0, 2, 5), 6, path_fraction=0.5)
    other = render_training_batch((0, 2, 6), 6, path_fraction=0.5)
    np.testing.assert_array_equal(first.frames, again.frames)
    assert first.captions == again.captions and first.generic_captions == again.generic_captions
    assert first.captions != other.captions
    assert first.frames.shape == (6, NUM_FRAMES, SIZE, SIZE, 3) and first.references.shape == (
        6,
        SIZE,
        SIZE,
        3,
    )
    assert first.paths.shape == (6, NUM_FRAMES, 2) and first.paths.min() > 0 and first.paths.max() < 1
    assert all(parse_caption(c).color is None for c in first.generic_captions)


@pytest.mark.parametrize("motion", MOTIONS)
def test_long_paths_start_as_the_clip_and_go_on_by_the_same_laws(motion):
    rng = np.random.default_rng(5)
    for _ in range(12):
        spec = dataclasses.replace(sample_spec(rng), motion=motion)
        path = long_path(spec, 64)
        np.testing.assert_allclose(path[:NUM_FRAMES], render(spec).centroids, atol=1e-4)
        r = HALF_EXTENT[spec.size]
        assert path.min() >= r / 2 and path.max() <= SIZE - r / 2  # never leaves the frame
        steps = np.diff(path, axis=0)
        if motion.startswith("moves"):  # goes one way, then rests at the far side
            axis = 0 if motion in ("moves left", "moves right") else 1
            sign = 1 if motion in ("moves right", "moves down") else -1
            assert np.all(sign * steps[:, axis] >= -1e-4)
            assert np.allclose(steps[-10:], 0, atol=1e-4)
        if motion == "bounces left and right":  # keeps crossing the frame
            assert np.median(np.abs(steps[NUM_FRAMES:, 0])) > 3.0


def test_continuation_clips_are_cut_from_the_long_path_after_its_start():
    rng = np.random.default_rng(6)
    for _ in range(10):
        spec = sample_spec(rng)
        clip = render_continuation(spec, np.random.default_rng(1))
        path = long_path(spec, LONG_PATH_FRAMES)
        starts = [
            s
            for s in range(1, LONG_PATH_FRAMES - NUM_FRAMES + 1)
            if np.allclose(path[s : s + NUM_FRAMES], clip.centroids, atol=1e-4)
        ]
        assert starts, spec
        assert parse_caption(clip.caption).motion == spec.motion
    batch = render_training_batch((0, 1), 16, path_fraction=0.0, continuation_fraction=1.0)
    assert batch.frames.shape[0] == 16
