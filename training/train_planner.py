"""Trains the path planner (`services/denoiser/model/planner.py`) on the video model's cached dataset.

    python -m training.train_planner --minutes 3

It reads the rendered clips' paths (the object's centroid in each frame) and caption embeddings that
`training.train_video` cached under --work-dir, trains a flow-matching model of the path given the
caption (with caption dropout, for guidance), checks it on held-out combinations with the same
evaluator the videos are scored by (motion read from the path), and writes `planner.safetensors`
plus the planner's config into the weights directory's config.json. `training.train_video` runs it as
its last stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from services.denoiser.model.planner import PathPlanner, PathPlannerConfig, to_flow_space
from services.denoiser.model.weights import save_weights
from training.evaluator import classify_motion, find_reversals
from training.shapes_world import (
    LONG_PATH_FRAMES,
    NUM_FRAMES,
    SIZE,
    long_path,
    make_caption,
    render,
    sample_spec,
)

logger = logging.getLogger("training.train_planner")


# Rows trained with a known prefix of 1..MAX_PREFIX positions (image-to-video knows one frame, an
# extension a few), so one planner serves text-to-video and continuation.
PREFIX_PROB = 0.5
MAX_PREFIX = 8
# Of the rows with a prefix, the share cut from the world's long paths at a random point
# (`continuation_windows`). An extension continues from wherever the video got to: near a wall, between
# two bounces, on the floor. Clips of the dataset all start where a clip starts: a planner trained on
# them alone kept its first step after four positions cut from anywhere in a long path within 2x the
# world's step 68% of the time (`mid_path_seams`); with the windows, 92.5%.
CONTINUATION_PROB = 0.5


@dataclasses.dataclass(frozen=True)
class ContinuationWindows:
    """Windows of the world's long paths (`shapes_world.long_path`) starting anywhere after frame 0,
    with their captions' pooled embeddings: what continuing a motion from any point of it looks like."""

    paths: torch.Tensor  # float32 (N, F, 2), fractions of the frame
    tokens: list[np.ndarray]  # float32 (L, text_dim) per caption


def continuation_windows(
    encoder, count: int, *, held_out: bool = False, seed: int = 3
) -> ContinuationWindows:
    """`count` windows of training (or held-out) combinations, each cut at a random frame after the
    first from a path of LONG_PATH_FRAMES, with its caption encoded by `encoder`."""
    rng = np.random.default_rng(seed)
    paths, captions = [], []
    for _ in tqdm(range(count), desc="continuation windows", leave=False):
        spec = sample_spec(rng, held_out=held_out)
        start = int(rng.integers(1, LONG_PATH_FRAMES - NUM_FRAMES + 1))
        paths.append(long_path(spec, LONG_PATH_FRAMES)[start : start + NUM_FRAMES] / SIZE)
        captions.append(make_caption(spec, rng))
    tokens = []
    for start in range(0, count, 256):
        tokens += [np.asarray(e.tokens, np.float32) for e in encoder.encode(captions[start : start + 256])]
    return ContinuationWindows(torch.from_numpy(np.stack(paths)), tokens)


def path_bounds(*paths: torch.Tensor) -> tuple[float, float, float, float]:
    """(x_min, y_min, x_max, y_max) over sets of paths (N, F, 2): the planner's `bounds`."""
    points = torch.cat([p.reshape(-1, 2).float() for p in paths])
    low, high = points.min(dim=0).values, points.max(dim=0).values
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def _pooled(model: PathPlanner, tokens: list[np.ndarray]) -> torch.Tensor:
    """Each caption's mean-pooled token embedding, (N, text_dim)."""
    with torch.no_grad():
        return torch.cat(
            [
                model.pooled_text(torch.from_numpy(t)[None], torch.ones(1, len(t), dtype=torch.bool))
                for t in tokens
            ]
        )


def train_planner(
    dataset,
    budget_s: float,
    *,
    config: PathPlannerConfig | None = None,
    seed: int = 0,
    continuation: ContinuationWindows | None = None,
) -> tuple[PathPlanner, dict]:
    """dataset: the video model's LatentDataset (paths, tokens, generic tokens); continuation: windows
    that a share of the rows with a prefix are drawn from instead. Returns the EMA model."""
    config = config or PathPlannerConfig(prefix_input=True)
    trained_on = [dataset.paths] if continuation is None else [dataset.paths, continuation.paths]
    config = dataclasses.replace(config, bounds=path_bounds(*trained_on))
    torch.manual_seed(seed)
    model, ema = PathPlanner(config), PathPlanner(config)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    paths = to_flow_space(dataset.paths.float())  # (N, F, 2)
    with torch.no_grad():  # pooled once: the text norm has no parameters
        text = model.pooled_text(dataset.tokens.float(), dataset.token_mask)  # (N, text_dim)
        generic = model.pooled_text(dataset.generic_tokens.float(), dataset.generic_mask)
    if continuation is not None:
        windows, window_text = to_flow_space(continuation.paths), _pooled(model, continuation.tokens)
    N, step, losses, start = len(paths), 0, [], time.monotonic()
    bar = tqdm(total=int(budget_s), desc="path planner", unit="s")
    while (elapsed := time.monotonic() - start) < budget_s:
        for group in opt.param_groups:
            group["lr"] = 1e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        idx = torch.randint(N, (256,), generator=generator)
        x0 = paths[idx]
        cond = torch.where((torch.rand(256, generator=generator) < 0.3)[:, None], generic[idx], text[idx])
        prefix = {}
        if config.prefix_input:
            lengths = torch.randint(1, MAX_PREFIX + 1, (256,), generator=generator)
            lengths = lengths * (torch.rand(256, generator=generator) < PREFIX_PROB)  # (256,), 0 = none
            if continuation is not None:
                cut = (lengths > 0) & (torch.rand(256, generator=generator) < CONTINUATION_PROB)  # (256,)
                w = torch.randint(len(windows), (256,), generator=generator)
                x0 = torch.where(cut[:, None, None], windows[w], x0)
                cond = torch.where(cut[:, None], window_text[w], cond)
            known_mask = (torch.arange(config.num_frames)[None] < lengths[:, None]).float()  # (256, F)
            prefix = {"known": x0, "known_mask": known_mask}
        drop = torch.rand(256, generator=generator) < 0.1
        cond = torch.where(drop[:, None], model.text_norm(model.null_text)[None].expand_as(cond), cond)
        t = torch.rand(256, generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        error = (model(xt, t, cond, **prefix) - (noise - x0)).square()  # (256, F, 2)
        loss = error.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - min(0.999, (1 + step) / (10 + step)))
        step += 1
        losses.append(loss.item())
        bar.update(int(time.monotonic() - start) - bar.n)
        bar.set_postfix(step=step, loss=f"{np.mean(losses[-100:]):.4f}")
        if step % 1000 == 0:
            logger.info("planner step %d loss %.4f", step, np.mean(losses[-1000:]))
    bar.close()
    return ema.eval(), {
        "steps": step,
        "seconds": round(time.monotonic() - start),
        "loss": float(np.mean(losses[-500:])),
    }


def motion_accuracy(planner: PathPlanner, encoder, count: int = 160, seed: int = 1) -> float:
    """How often the evaluator reads the caption's motion from a planned path, on held-out combos."""
    rng = np.random.default_rng(seed)
    right = 0
    for i in range(count):
        spec = sample_spec(rng, held_out=True)
        tokens = encoder.encode([make_caption(spec, rng)])[0].tokens
        centroids = planner.sample(tokens, seed=i) * SIZE
        right += classify_motion(centroids, find_reversals(centroids)) == spec.motion
    return right / count


def ground_truth_motion_accuracy(count: int = 160, seed: int = 1) -> float:
    """The same reading on rendered paths: what the evaluator itself gets right."""
    rng = np.random.default_rng(seed)
    clips = [render(sample_spec(rng, held_out=True)) for _ in range(count)]
    return float(
        np.mean([classify_motion(c.centroids, find_reversals(c.centroids)) == c.spec.motion for c in clips])
    )


def continuation_accuracy(
    planner: PathPlanner, encoder, known_frames: int, count: int = 160, seed: int = 2
) -> dict:
    """Paths planned after the first `known_frames` positions of rendered held-out clips: how often
    the evaluator reads the caption's motion from the whole path, and how far the first planned step
    strays from the rendered object's (pixels, median and p90): a jump at the seam."""
    rng = np.random.default_rng(seed)
    right, seam = 0, []
    for i in range(count):
        clip = render(sample_spec(rng, held_out=True), rng)
        tokens = encoder.encode([make_caption(clip.spec, rng)])[0].tokens
        k = known_frames
        path = planner.sample(tokens, seed=i, known=clip.centroids[:k] / SIZE) * SIZE
        right += classify_motion(path, find_reversals(path)) == clip.spec.motion
        truth = clip.centroids
        seam.append(float(np.linalg.norm((path[k] - path[k - 1]) - (truth[k] - truth[k - 1]))))
    return {
        "motion_accuracy": right / count,
        "seam_step_error_px_median": round(float(np.median(seam)), 2),
        "seam_step_error_px_p90": round(float(np.percentile(seam, 90)), 2),
    }


def mid_path_seams(planner: PathPlanner, windows: ContinuationWindows, known_frames: int = 4) -> dict:
    """Paths planned after the first `known_frames` positions of windows cut from anywhere in long
    paths (held-out combinations): how far the first planned step strays from the world's (pixels,
    median and p90), and how often it stays within 2x the world's own step there (floored at 1 px),
    the measure an extension's seams are held to."""
    errors, within = [], []
    k = known_frames
    for i, (truth, tokens) in enumerate(zip(windows.paths.numpy() * SIZE, windows.tokens, strict=True)):
        path = planner.sample(tokens, seed=i, known=truth[:k] / SIZE) * SIZE
        step, true_step = path[k] - path[k - 1], truth[k] - truth[k - 1]
        errors.append(float(np.linalg.norm(step - true_step)))
        within.append(float(np.linalg.norm(step)) <= 2 * max(float(np.linalg.norm(true_step)), 1.0))
    return {
        "seam_step_error_px_median": round(float(np.median(errors)), 2),
        "seam_step_error_px_p90": round(float(np.percentile(errors, 90)), 2),
        "seam_step_within_2x": round(float(np.mean(within)), 3),
    }


def train_and_measure(
    dataset, budget_s: float, seed: int = 0, windows: int = 12_000
) -> tuple[PathPlanner, dict]:
    """The trained planner and its training record, with its held-out motion accuracy from the prompt
    alone, after one and four known positions, and after four positions anywhere in a long path."""
    from services.text_encoder.backends import load_default_backend

    encoder = load_default_backend()
    continuation = continuation_windows(encoder, windows, seed=seed + 3) if windows else None
    planner, record = train_planner(dataset, budget_s, seed=seed, continuation=continuation)
    record["continuation_windows"] = windows
    record["held_out_motion_accuracy"] = motion_accuracy(planner, encoder)
    for k in (1, 4):
        record[f"continuation_after_{k}"] = continuation_accuracy(planner, encoder, k)
    record["continuation_mid_path"] = mid_path_seams(
        planner, continuation_windows(encoder, 160, held_out=True, seed=seed + 4)
    )
    return planner, record


def write_planner(weights_dir: Path, planner: PathPlanner, record: dict) -> None:
    """planner.safetensors, and the planner's config and training record in an existing weights
    directory's config.json (a planner trained after the rest of the model)."""
    save_weights(planner, weights_dir / "planner.safetensors")
    config_path = weights_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["planner"] = dataclasses.asdict(planner.config)
    config.setdefault("training", {})["planner"] = record
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--work-dir", type=Path, default=Path("var/training/video"))
    parser.add_argument("--dataset-clips", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=Path("services/denoiser/weights"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--continuation-windows",
        type=int,
        default=12_000,
        help="windows of long paths to learn continuing from any point (0: the dataset's clips only)",
    )
    parser.add_argument(
        "--measure-only", action="store_true", help="measure the planner in --out, train nothing"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    from training.train_video import LatentDataset

    if args.measure_only:
        from services.denoiser.model.pipeline import VideoPipeline
        from services.text_encoder.backends import load_default_backend

        planner = VideoPipeline.from_pretrained(args.out).planner
        windows = continuation_windows(load_default_backend(), 160, held_out=True, seed=4)
        print(json.dumps({"continuation_mid_path": mid_path_seams(planner, windows)}))
        return
    saved = torch.load(args.work_dir / f"dataset_{args.dataset_clips}.pt", weights_only=False)
    planner, record = train_and_measure(
        LatentDataset(**saved["dataset"]), args.minutes * 60, windows=args.continuation_windows
    )
    record["evaluator_on_rendered_paths"] = ground_truth_motion_accuracy()
    record["command"] = (
        f"python -m training.train_planner --minutes {args.minutes:g} --dataset-clips {args.dataset_clips}"
        f" --continuation-windows {args.continuation_windows}"
    )
    logger.info("planner: %s", record)
    write_planner(args.out, planner, record)


if __name__ == "__main__":
    main()
