"""Tunes the frame decoder on the DiT's own samples, with temporal layers, so that what the DiT almost
draws comes out as the shapes world draws it.

    python -m training.tune_decoder --weights services/denoiser/weights --out var/models/tuned

The DiT's samples of a caption put the right object in the right place, but its edges ripple from
frame to frame: a square's corners round off and the evaluator reads a circle, the object's area
swings by more than 15% across a clip. A decoder trained only on the encoder's latents of rendered
clips has never seen such latents. Here it learns to map them to the clip the sample meant:

1. samples: clips of training combinations (never a held-out one) made as the service makes them
   (the planner's path, the DiT with guidance), cached under --work-dir;
2. targets (`crisp_targets`): each sample's object re-drawn by the shapes world's renderer, in the
   caption's colour and shape, at the sample's own position in every frame, in the sample's size class
   and on its background, so the decoder is taught to sharpen, never to move or recolour;
3. tuning: the decoder and its temporal blocks (`autoencoder.TemporalBlock`; a frame alone is often
   ambiguous, the clip is not) on those pairs, together with the usual round trip of rendered clips so
   that the decoder still reproduces real frames (image-to-video, extend). The encoder, and with it the
   latent space the DiT works in, stays as it is.

Writes a full weights directory (the DiT and planner copied) whose version is one more than the input's.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from services.denoiser.model.autoencoder import FrameAutoencoder, tensor_to_video
from services.denoiser.model.paths import path_heatmap
from services.denoiser.model.pipeline import VideoPipeline, save_pipeline
from training.evaluator import OBJECT_THRESHOLD, border_pixels, nearest_background
from training.shapes_world import (
    BACKGROUND_PALETTE,
    HALF_EXTENT,
    NUM_FRAMES,
    PALETTE,
    SceneSpec,
    make_caption,
    render,
    sample_spec,
    shape_mask,
)
from training.train_video import (
    continued_from_record,
    latent_noise,
    object_weight,
    pad_tokens,
    weighted_error,
)

logger = logging.getLogger("training.tune_decoder")

# A sample whose object's side is off its nearest size class by more than this ratio is left out: the
# target would have to resize it, which is not the decoder's job.
SIDE_RATIO_RANGE = (0.75, 1.3)


@dataclass(frozen=True)
class TuneConfig:
    clips: int = 4000  # samples drawn
    minutes: float = 12.0  # tuning budget (the samples are extra)
    lr: float = 2e-4
    clips_per_step: int = 4  # samples per step, plus `rendered_per_step` round-trip clips
    rendered_per_step: int = 2
    sample_batch: int = 32
    seed: int = 11
    checkpoint_every_s: float = 120.0
    max_steps: int = 0  # stop after this many steps even within the budget; 0: no cap


# ---------------------------------------------------------------------------------------------
# 1. Samples
# ---------------------------------------------------------------------------------------------


@dataclass
class Samples:
    latents: torch.Tensor  # float16 (N, C, F, h, w), as the DiT made them (scaled)
    specs: list[SceneSpec]
    captions: list[str]


@torch.inference_mode()
def draw_samples(pipeline: VideoPipeline, encoder, config: TuneConfig) -> Samples:
    """`config.clips` clips of training combinations made as the service makes them: the planner's path
    for the caption, then the DiT with the model's default steps and guidance, in batches."""
    rng = np.random.default_rng(config.seed)
    specs = [sample_spec(rng, held_out=False) for _ in range(config.clips)]
    captions = [make_caption(spec, rng) for spec in specs]
    encoded = encoder.encode(captions)
    cfg = pipeline.config
    C, Fr, h, w = pipeline.latent_shape
    sampler = pipeline.sampler(cfg.default_steps)  # with the model's restart, if it has one
    out = []
    for start in tqdm(range(0, config.clips, config.sample_batch), desc="samples", unit="batch"):
        chunk = encoded[start : start + config.sample_batch]
        b = len(chunk)
        tokens, mask = pad_tokens(chunk, cfg.dit.text_dim, torch.float32)
        conditioning = {}
        if pipeline.planner is not None:
            paths = np.stack(
                [
                    pipeline.planner.sample(e.tokens, config.seed * 100_000 + start + i)
                    for i, e in enumerate(chunk)
                ]
            )
            conditioning["path_map"] = path_heatmap(torch.from_numpy(paths).float(), h)
        generator = torch.Generator().manual_seed(config.seed * 100_000 + start)
        x = torch.randn((b, C, Fr, h, w), generator=generator)
        for i in range(cfg.default_steps):
            t = sampler.timesteps(i).expand(b)
            grid = cfg.token_grid(i)._asdict()  # the samples are made as the service makes them
            v = pipeline.dit.forward_with_cfg(
                x,
                t,
                tokens,
                mask,
                cfg.default_guidance_scale,
                guide_path=cfg.path_guidance,
                **grid,
                **conditioning,
            )
            x = sampler.step(v, i, x).prev_sample
            if sampler.restarts_after(i):
                x = sampler.add_noise(
                    pipeline.autoencoder.round_trip(x), torch.randn(x.shape, generator=generator), i + 1
                )
        out.append(x.half())
    return Samples(torch.cat(out), specs, captions)


# ---------------------------------------------------------------------------------------------
# 2. Targets
# ---------------------------------------------------------------------------------------------


def crisp_target(frames: np.ndarray, spec: SceneSpec) -> np.ndarray | None:
    """uint8 (F, H, W, 3): the clip `frames` (F, H, W, 3) meant, drawn by the renderer, or None when it
    cannot be told (a frame without an object, or an object of neither size).

    Per frame, the object is the largest connected region far from the background (as the evaluator
    sees it); its bounding box's centre is where the target draws the spec's shape in the spec's colour.
    Background and size are the sample's own (a caption need not name them): the nearest background of
    the palette to the border, the size class nearest to the clip's median bounding-box side."""
    pixels = frames.astype(np.float32)
    background = nearest_background(border_pixels(pixels))
    far = (
        np.linalg.norm(pixels - np.array(BACKGROUND_PALETTE[background], np.float32), axis=-1)
        > OBJECT_THRESHOLD
    )
    boxes = []
    for mask in far:
        labels, count = ndimage.label(mask)
        if count == 0:
            return None
        largest = labels == 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, count + 1))))
        rows, cols = np.flatnonzero(largest.any(axis=1)), np.flatnonzero(largest.any(axis=0))
        side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        boxes.append(((cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2, side))
    side = float(np.median([b[2] for b in boxes]))
    size = min(HALF_EXTENT, key=lambda s: abs(2 * HALF_EXTENT[s] - side))
    r = HALF_EXTENT[size]
    if not SIDE_RATIO_RANGE[0] <= side / (2 * r) <= SIDE_RATIO_RANGE[1]:
        return None
    target = np.empty_like(frames)
    target[:] = BACKGROUND_PALETTE[background]
    for f, (cx, cy, _) in enumerate(boxes):
        target[f][shape_mask(spec.shape, cx, cy, r)] = PALETTE[spec.color]
    return target


@dataclass
class Pairs:
    latents: torch.Tensor  # float32 (N, C, F, h, w), unscaled (what the decoder takes)
    targets: torch.Tensor  # float32 (N, F, 3, H, W) in [-1, 1]
    weights: torch.Tensor  # float32 (N, F, 1, H, W): the loss weight, high near either object


@torch.inference_mode()
def make_pairs(autoencoder: FrameAutoencoder, samples: Samples) -> Pairs:
    """Decodes every sample with the decoder as it is and keeps those with a crisp target."""
    latents, targets, weights = [], [], []
    for start in tqdm(range(0, len(samples.specs), 64), desc="targets", unit="batch"):
        batch = samples.latents[start : start + 64].float()
        decoded = tensor_to_video(autoencoder.decode(batch)).numpy()
        for k, (frames, spec) in enumerate(zip(decoded, samples.specs[start : start + 64], strict=True)):
            target = crisp_target(frames, spec)
            if target is None:
                continue
            near = (target != target[:1, :1, :1]).any(-1) | (
                np.abs(frames.astype(int) - target[:1, :1, :1]).sum(-1) > 40
            )
            latents.append(batch[k] / autoencoder.config.latent_scale)
            targets.append(torch.from_numpy(target).permute(0, 3, 1, 2).float() / 127.5 - 1)
            weights.append(object_weight(torch.from_numpy(near).float()[:, None]))
    if not latents:
        raise SystemExit("no sample had a readable object: is the DiT trained?")
    return Pairs(torch.stack(latents), torch.stack(targets), torch.stack(weights))


# ---------------------------------------------------------------------------------------------
# 3. Tuning
# ---------------------------------------------------------------------------------------------


def rendered_round_trip(
    autoencoder: FrameAutoencoder, rng: np.random.Generator, clips: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents of rendered clips with the training noise (train_video.latent_noise), (B*F, C, h, w)
    unscaled, and their frames and loss weights: the decoder must keep decoding real frames."""
    rendered = [render(sample_spec(rng, held_out=False)) for _ in range(clips)]
    x = torch.from_numpy(np.concatenate([c.frames for c in rendered])).permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = torch.from_numpy(np.concatenate([c.masks for c in rendered])).float()[:, None]
    with torch.no_grad():
        z = autoencoder.encoder(x)
    return z + latent_noise(z), x, object_weight(masks)


def tune(autoencoder: FrameAutoencoder, pairs: Pairs, config: TuneConfig, work_dir: Path) -> dict:
    """Trains the decoder and its temporal blocks within `config.minutes`, resumable from
    work_dir/decoder_tuning.pt; returns what the run did."""
    path = work_dir / "decoder_tuning.pt"
    autoencoder.encoder.requires_grad_(False)
    params = [*autoencoder.decoder.parameters(), *autoencoder.temporal.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    state = {"elapsed_s": 0.0, "step": 0, "losses": []}
    if path.exists():
        saved = torch.load(path, weights_only=False)
        autoencoder.decoder.load_state_dict(saved["decoder"])
        autoencoder.temporal.load_state_dict(saved["temporal"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        logger.info("decoder tuning: resumed at step %d (%.0f s)", state["step"], state["elapsed_s"])

    def save() -> None:
        torch.save(
            {
                "decoder": autoencoder.decoder.state_dict(),
                "temporal": autoencoder.temporal.state_dict(),
                "optimizer": opt.state_dict(),
                "state": state,
            },
            path,
        )

    budget_s, n = config.minutes * 60, len(pairs.latents)
    rng = np.random.default_rng([config.seed, state["step"]])
    torch.manual_seed(config.seed + state["step"])
    start, last_save = time.monotonic() - state["elapsed_s"], time.monotonic()
    bar = tqdm(total=int(budget_s), desc="decoder", unit="s", initial=int(min(state["elapsed_s"], budget_s)))
    window: list[tuple[float, float]] = []
    while (elapsed := time.monotonic() - start) < budget_s and not (
        config.max_steps and state["step"] >= config.max_steps
    ):
        for group in opt.param_groups:
            group["lr"] = config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        idx = torch.from_numpy(rng.integers(n, size=config.clips_per_step))
        z = pairs.latents[idx]  # (b, C, F, h, w)
        z = z.permute(0, 2, 1, 3, 4).reshape(-1, *z.shape[1:2], *z.shape[3:])  # (b*F, C, h, w)
        sample_loss = weighted_error(
            autoencoder.decode_frames(z, NUM_FRAMES),
            pairs.targets[idx].flatten(0, 1),
            pairs.weights[idx].flatten(0, 1),
        )
        z, x, weight = rendered_round_trip(autoencoder, rng, config.rendered_per_step)
        rendered_loss = weighted_error(autoencoder.decode_frames(z, NUM_FRAMES), x, weight)
        opt.zero_grad(set_to_none=True)
        (sample_loss + rendered_loss).backward()
        opt.step()
        state["step"] += 1
        window.append((sample_loss.item(), rendered_loss.item()))
        bar.update(int(time.monotonic() - start) - bar.n)
        bar.set_postfix(
            step=state["step"], samples=f"{sample_loss.item():.4f}", rendered=f"{rendered_loss.item():.4f}"
        )
        if state["step"] % 100 == 0:
            mean = np.mean(window, axis=0)
            window.clear()
            state["losses"].append([state["step"], round(elapsed, 1), float(mean[0]), float(mean[1])])
            logger.info("decoder step %d loss on samples %.4f, on rendered clips %.4f", state["step"], *mean)
        if time.monotonic() - last_save > config.checkpoint_every_s:
            state["elapsed_s"] = time.monotonic() - start
            save()
            last_save = time.monotonic()
    bar.close()
    state["elapsed_s"] = time.monotonic() - start
    save()
    autoencoder.encoder.requires_grad_(True)
    return state


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="the model to tune (a weights directory)")
    parser.add_argument("--out", type=Path, required=True, help="where the tuned weights go")
    parser.add_argument("--work-dir", type=Path, default=Path("var/training/decoder"))
    parser.add_argument("--clips", type=int, default=TuneConfig.clips)
    parser.add_argument("--minutes", type=float, default=TuneConfig.minutes)
    parser.add_argument("--lr", type=float, default=TuneConfig.lr)
    parser.add_argument("--seed", type=int, default=TuneConfig.seed)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = TuneConfig(clips=args.clips, minutes=args.minutes, lr=args.lr, seed=args.seed)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    from services.text_encoder.backends import load_default_backend

    previous = VideoPipeline.from_pretrained(args.weights, autoencoder_precision="float32")  # trained on
    started = time.monotonic()
    cache = args.work_dir / f"samples_{config.clips}_{config.seed}.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=False)
        samples = Samples(saved["latents"], saved["specs"], saved["captions"])
    else:
        samples = draw_samples(previous, load_default_backend(), config)
        torch.save(dataclasses.asdict(samples), cache)
    sample_seconds = time.monotonic() - started

    ae_config = dataclasses.replace(previous.config.autoencoder, temporal_decoder=True)
    autoencoder = FrameAutoencoder(ae_config)
    autoencoder.load_state_dict(previous.autoencoder.state_dict(), strict=False)  # temporal blocks start at 0
    pairs = make_pairs(previous.autoencoder, samples)
    logger.info("%d of %d samples have a crisp target", len(pairs.latents), config.clips)
    state = tune(autoencoder.train(), pairs, config, args.work_dir)

    command = (
        f"python -m training.tune_decoder --weights {args.weights} --clips {config.clips} "
        f"--minutes {config.minutes:g} --lr {config.lr:g} --seed {config.seed}"
    )
    pipeline_config = dataclasses.replace(
        previous.config,
        autoencoder=ae_config,
        version=str(int(previous.config.version) + 1),
        training={
            "command": command,
            "continued_from": continued_from_record(previous.config),
            "device": "cpu",
            "dit_steps": 0,
            "decoder_tuning": {
                "train_config": dataclasses.asdict(config),
                "samples": config.clips,
                "pairs": len(pairs.latents),
                "steps": state["step"],
                "seconds": round(state["elapsed_s"]),
                "sample_seconds": round(sample_seconds),
                "loss_curve": state["losses"],
            },
            "total_minutes": round((sample_seconds + state["elapsed_s"]) / 60, 1),
            "planner": previous.config.training.get("planner"),
            "notes": (
                f"The DiT, the planner and the encoder are v{previous.config.version}'s; the decoder "
                + (
                    "was tuned further"
                    if previous.config.autoencoder.temporal_decoder
                    else "gained temporal blocks and was tuned"
                )
                + " on the DiT's own samples (training/tune_decoder.py)."
            ),
        },
    )
    save_pipeline(args.out, pipeline_config, previous.dit, autoencoder.eval(), previous.planner)
    logger.info(
        "wrote %s (decoder tuned for %d steps on %d pairs)", args.out, state["step"], len(pairs.latents)
    )


if __name__ == "__main__":
    main()
