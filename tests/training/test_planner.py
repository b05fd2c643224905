"""The path planner learns trajectories from captions (and continues known first positions), and the
denoiser uses it only where it may."""

from types import SimpleNamespace

import numpy as np
import torch

from kino.v1 import denoiser_pb2
from services.common.settings import load_settings
from services.common.tensors import to_proto
from services.denoiser.core import DenoiserCore
from services.denoiser.model.planner import PathPlanner, PathPlannerConfig
from tests.denoiser.engine.helpers import prompt, tiny_executor
from training.train_planner import ContinuationWindows, continuation_windows, train_planner

SMALL = PathPlannerConfig(hidden_size=64, depth=2, steps=10, prefix_input=True)
CAPTION = np.random.default_rng(1).standard_normal(384).astype(np.float32)  # "moving right"; negated: left


def toy_dataset(n: int = 512) -> SimpleNamespace:
    """Two captions (a token vector and its negative): paths across the frame to the right or to the
    left, starting anywhere on the left or right third."""
    rng = np.random.default_rng(0)
    right = rng.random(n) < 0.5
    start = np.where(right, rng.uniform(0.1, 0.35, n), rng.uniform(0.65, 0.9, n))
    travel = np.where(right, 0.5, -0.5)
    xs = start[:, None] + travel[:, None] * np.linspace(0, 1, 16)[None]  # (n, 16)
    paths = np.stack([xs, np.full_like(xs, 0.5)], axis=-1)  # (n, 16, 2)
    sign = torch.from_numpy(np.where(right, 1.0, -1.0)).float()[:, None, None]
    tokens = (sign * torch.from_numpy(CAPTION)[None, None]).expand(n, 3, 384).clone()
    mask = torch.ones(n, 3, dtype=torch.bool)
    return SimpleNamespace(
        paths=torch.from_numpy(paths).float(),
        tokens=tokens,
        token_mask=mask,
        generic_tokens=tokens,
        generic_mask=mask,
    )


def test_a_planned_path_stays_where_the_training_paths_went_and_known_positions_stay_as_given():
    torch.manual_seed(0)
    config = PathPlannerConfig(
        hidden_size=64, depth=2, steps=4, prefix_input=True, bounds=(0.25, 0.375, 0.75, 0.625)
    )
    planner = PathPlanner(config)
    with torch.no_grad():
        for parameter in planner.parameters():  # an untrained planner's paths go anywhere
            parameter.normal_(0.0, 0.5)
    known = np.array([[0.05, 0.95], [0.1, 0.9]], np.float32)  # outside the bounds, as a video may show
    for seed in range(5):
        path = planner.sample(CAPTION[None], seed, known=known if seed % 2 else None)
        start = 2 if seed % 2 else 0
        assert (path[start:] >= [0.25, 0.375]).all() and (path[start:] <= [0.75, 0.625]).all()
        if seed % 2:
            assert np.array_equal(path[:2], known)
    assert PathPlannerConfig(**{"bounds": [0, 0, 1, 1]}).bounds == (0.0, 0.0, 1.0, 1.0)  # from config.json


def test_the_planner_learns_which_way_a_caption_moves():
    torch.set_num_threads(1)
    planner, record = train_planner(toy_dataset(), budget_s=12.0, config=SMALL)
    assert record["steps"] > 50
    x_min, y_min, x_max, y_max = planner.config.bounds  # the toy paths' range
    assert (y_min, y_max) == (0.5, 0.5) and 0.1 <= x_min < 0.12 and 0.88 < x_max <= 0.9
    for sign in (1.0, -1.0):
        tokens = np.tile(sign * CAPTION, (3, 1))
        for seed in range(3):
            path = planner.sample(tokens, seed)
            assert path.shape == (16, 2) and path.min() >= 0 and path.max() <= 1
            assert np.sign(path[-1, 0] - path[0, 0]) == sign  # the caption's direction
    assert np.array_equal(planner.sample(tokens, 7), planner.sample(tokens, 7))  # seeded
    # After known first positions: kept exactly, and continued from where they end, the caption's way.
    for sign, start in ((1.0, 0.2), (-1.0, 0.8)):
        tokens = np.tile(sign * CAPTION, (3, 1))
        known = np.stack([start + sign * np.arange(4) * 0.5 / 15, np.full(4, 0.5)], axis=1).astype(np.float32)
        for seed in range(3):
            path = planner.sample(tokens, seed, known=known)
            assert np.allclose(path[:4], known, atol=1e-6)
            assert abs(path[4, 0] - path[3, 0]) < 0.15  # no jump: a path crosses 0.5 of the frame here
            assert np.sign(path[-1, 0] - path[3, 0]) == sign


def test_continuation_windows_teach_the_planner_to_go_on_from_where_a_clip_ended():
    """Clips of the toy set all move; windows say that a rightward path which reached the far side
    rests there. After training on both, a prefix resting at the far side stays put."""
    offsets = np.arange(256) % 12  # cut anywhere from 11 frames before the arrival to the arrival
    xs = np.minimum(0.6 + 0.05 * (np.arange(16)[None] + offsets[:, None]), 0.85)  # (256, 16)
    windows = ContinuationWindows(
        paths=torch.from_numpy(np.stack([xs, np.full_like(xs, 0.5)], axis=-1)).float(),
        tokens=[np.tile(CAPTION, (3, 1))] * len(xs),
    )
    torch.set_num_threads(1)
    planner, _ = train_planner(toy_dataset(), budget_s=15.0, config=SMALL, continuation=windows)
    known = np.stack([np.full(4, 0.85), np.full(4, 0.5)], axis=1).astype(np.float32)
    for seed in range(3):
        path = planner.sample(np.tile(CAPTION, (3, 1)), seed, known=known)
        assert np.abs(path[4:, 0] - 0.85).max() < 0.08, path[:, 0]


def test_continuation_windows_are_cut_from_long_paths_after_their_start():
    from services.text_encoder.backends import load_default_backend

    windows = continuation_windows(load_default_backend(), 8, seed=0)
    assert windows.paths.shape == (8, 16, 2) and len(windows.tokens) == 8
    assert windows.paths.min() > 0 and windows.paths.max() < 1
    assert all(t.ndim == 2 and t.shape[1] == 384 for t in windows.tokens)


def test_the_denoiser_plans_a_path_only_where_the_request_leaves_the_layout_free_and_a_remix_follows_its_source():
    executor = tiny_executor()
    executor.planner = PathPlanner(SMALL).eval()
    core = DenoiserCore(executor, load_settings(env={}).denoiser)
    base = dict(
        text_tokens=to_proto(prompt(1)),
        num_frames=16,
        height=64,
        width=64,
        num_steps=4,
        guidance_scale=3.0,
        seed=1,
    )
    free, _ = core.to_engine_request(denoiser_pb2.DenoiseRequest(**base))
    assert free.sampler.path.shape == (16, 2)
    frame = np.zeros((1, 64, 64, 3), np.uint8)
    frame[0, 40:48, 8:16] = (255, 255, 0)  # a yellow square, centred at (12, 44) px
    anchored, _ = core.to_engine_request(denoiser_pb2.DenoiseRequest(**base, first_frames=to_proto(frame)))
    assert np.allclose(anchored.sampler.path[0], (12 / 64, 44 / 64))  # continues from the subject
    blank = to_proto(np.zeros((1, 64, 64, 3), np.uint8))
    lost, _ = core.to_engine_request(denoiser_pb2.DenoiseRequest(**base, first_frames=blank))
    assert lost.sampler.path is None  # no subject to continue from: the DiT decides alone
    # A remix follows its source's path (the subject's centroid in every frame), not a planned one.
    source = np.zeros((16, 64, 64, 3), np.uint8)
    for f in range(16):
        source[f, 20:28, 2 * f : 2 * f + 8] = (255, 0, 0)  # a red square moving right 2 px a frame
    remix, _ = core.to_engine_request(
        denoiser_pb2.DenoiseRequest(**base, source_video=to_proto(source), strength=0.5)
    )
    expected = np.stack([(2 * np.arange(16) + 4) / 64, np.full(16, 24 / 64)], axis=1)
    assert np.allclose(remix.sampler.path, expected, atol=1e-6)
    blank_source = to_proto(np.zeros((16, 64, 64, 3), np.uint8))
    lost, _ = core.to_engine_request(
        denoiser_pb2.DenoiseRequest(**base, source_video=blank_source, strength=0.5)
    )
    assert lost.sampler.path is None  # no subject in the source: the noised source alone holds the motion
