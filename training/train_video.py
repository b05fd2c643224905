"""Trains Kino's text-to-video model from scratch on the shapes world, on a CPU, within a time budget.

    python -m training.train_video --minutes 50

Stages, each checkpointed under --work-dir so that a second run with the same arguments resumes:

1. the frame autoencoder, on crops around the object (flat backgrounds teach little);
2. the dataset: rendered clips of the training combos, encoded once to latents, with their captions
   encoded once by the text encoder backend the service uses (the vocabulary is finite);
   (a share of the clips follow random paths, so that the model learns to follow any path it is given);
3. the video DiT, flow matching with caption dropout (for guidance) and random conditioning masks
   (known first frames, a reference image with a caption that leaves the look out, the subject's
   path), with an EMA of the weights;
4. the decoder again, with the encoder frozen, so the DiT's latent space does not move;
5. the path planner (`training/train_planner.py`): where the subject goes, from the caption.

The budget is wall-clock time. Stages 1 and 4 get fixed fractions, the DiT gets what is left after the
measured time of stages 1 and 2; each learning rate follows the fraction of its stage's budget spent,
so a resumed run continues the same schedule. Writes safetensors plus config.json to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from services.denoiser.model.autoencoder import (
    AUTOENCODER_PRESETS,
    FrameAutoencoder,
    FrameAutoencoderConfig,
    video_to_tensor,
)
from services.denoiser.model.dit import VIDEO_DIT_PRESETS, VideoDiT, VideoDiTConfig, grow_depth
from services.denoiser.model.paths import path_heatmap
from services.denoiser.model.pipeline import PipelineConfig, VideoPipeline, save_pipeline
from training.shapes_world import NUM_FRAMES, SIZE, render, render_training_batch, sample_spec
from training.train_planner import train_and_measure

logger = logging.getLogger("training.train_video")

CPU = torch.device("cpu")

EXPORT_MARGIN_S = 30.0  # writing the weights at the end


@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 50.0
    autoencoder_fraction: float = 0.10  # of the budget, for stage 1
    decoder_fraction: float = 0.08  # of the budget, for stage 4
    planner_fraction: float = 0.04  # of the budget, for stage 5
    dataset_clips: int = 6000
    dit_preset: str = "shapes-s"
    autoencoder_preset: str = "f4"
    batch_size: int = 32
    autoencoder_batch: int = 64  # 32x32 crops
    lr: float = 6e-4
    autoencoder_lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.998
    caption_dropout: float = 0.1
    known_frames_prob: float = 0.25  # rows that get 1..8 known first frames
    reference_prob: float = 0.3  # rows that get a reference image
    generic_caption_prob: float = 0.6  # of those, rows whose caption leaves colour and shape out
    path_prob: float = 0.3  # rows that get their subject's path
    path_clip_fraction: float = 0.15  # clips rendered along random paths rather than the world's motions
    # Clips cut from a motion carried on past its clip (shapes_world.render_continuation): an extension
    # continues from wherever the video got to, e.g. an object resting at the far side after "moves right".
    continuation_clip_fraction: float = 0.2
    # Extra loss weight where the subject is (a Gaussian around its path, in latent cells): the subject
    # covers a few percent of the frame, so a plain mean spends most of the gradient on flat backdrop
    # while shape lives in the subject's outline. 0 is the plain mean; 3 over 10,200 steps from v7 gave no
    # gain beyond the evaluation's noise (docs/model/NOTES.md).
    subject_loss_weight: float = 0.0
    # Extra loss weight on the first SEAM_FRAMES frames after known ones, in rows with known frames: an
    # extension's seam is where the DiT must carry the known frames' subject (its place and its size)
    # into frames it makes, and a plain mean gives those two of the 8-15 frames a row makes a quarter of
    # its gradient at most.
    seam_loss_weight: float = 0.0
    checkpoint_every_s: float = 120.0
    seed: int = 0


def parse_args() -> tuple[TrainConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=TrainConfig.minutes, help="total wall-clock budget")
    parser.add_argument("--dit-preset", default=TrainConfig.dit_preset, choices=sorted(VIDEO_DIT_PRESETS))
    parser.add_argument(
        "--autoencoder-preset", default=TrainConfig.autoencoder_preset, choices=sorted(AUTOENCODER_PRESETS)
    )
    parser.add_argument("--dataset-clips", type=int, default=TrainConfig.dataset_clips)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    # One thread by default: on a shared 2-core machine, two OpenMP threads spin-wait on each other
    # whenever another process takes a core, and a step measured 10-40x slower than with one.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--work-dir", type=Path, default=Path("var/training/video"), help="checkpoints and caches"
    )
    parser.add_argument("--out", type=Path, default=Path("services/denoiser/weights"))
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="continue from a saved model (e.g. services/denoiser/weights): its autoencoder and planner are "
        "kept, its DiT trains on with a fresh optimizer and schedule",
    )
    parser.add_argument(
        "--grow-depth",
        type=int,
        default=None,
        help="with --init-from: the continued DiT grows to this many blocks, the new ones starting as the "
        "identity (dit.grow_depth), so it trains on from the saved model's function",
    )
    parser.add_argument("--lr", type=float, default=TrainConfig.lr, help="the DiT's peak learning rate")
    parser.add_argument(
        "--subject-loss-weight",
        type=float,
        default=TrainConfig.subject_loss_weight,
        help="extra loss weight around the subject's path (0: every latent cell counts the same)",
    )
    parser.add_argument(
        "--seam-loss-weight",
        type=float,
        default=TrainConfig.seam_loss_weight,
        help="extra loss weight on the first frames after known ones (0: they count as any other)",
    )
    parser.add_argument(
        "--known-frames-prob",
        type=float,
        default=TrainConfig.known_frames_prob,
        help="share of rows that get 1..F/2 known first frames",
    )
    parser.add_argument(
        "--device", default="cpu", help="where the DiT trains and the clips are encoded: cpu, cuda, cuda:N"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes that render the dataset's clips")
    parser.add_argument(
        "--dataset-only", action="store_true", help="build and cache the dataset in --work-dir, then stop"
    )
    parser.add_argument(
        "--dit-minutes",
        type=float,
        default=None,
        help="the DiT stage's budget, instead of what --minutes leaves after the other stages",
    )
    parser.add_argument(
        "--text-encoder",
        type=Path,
        default=None,
        help="a compact export of the text encoder (python -m training.compact_encoder export DIR), for "
        "machines without the encoder package",
    )
    args = parser.parse_args()
    if args.grow_depth is not None and args.init_from is None:
        parser.error("--grow-depth grows a saved model: give --init-from")
    config = TrainConfig(
        minutes=args.minutes,
        lr=args.lr,
        dit_preset=args.dit_preset,
        autoencoder_preset=args.autoencoder_preset,
        dataset_clips=args.dataset_clips,
        batch_size=args.batch_size,
        seed=args.seed,
        subject_loss_weight=args.subject_loss_weight,
        seam_loss_weight=args.seam_loss_weight,
        known_frames_prob=args.known_frames_prob,
    )
    if args.subject_loss_weight < 0:
        parser.error("--subject-loss-weight must be 0 or more")
    if args.seam_loss_weight < 0:
        parser.error("--seam-loss-weight must be 0 or more")
    if not 0 <= args.known_frames_prob <= 1:
        parser.error("--known-frames-prob must be within [0, 1]")
    torch.set_num_threads(args.threads)
    return config, args


# ---------------------------------------------------------------------------------------------
# Stage 1: autoencoder
# ---------------------------------------------------------------------------------------------


def object_crops(rng: np.random.Generator, count: int, crop: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops (N, 3, crop, crop) in [-1, 1] near the object, and per-pixel loss weights (N, 1, crop, crop)
    that favour the object and its edges. Four frames come from each rendered clip."""
    images, masks = [], []
    for i in range(count):
        if i % 4 == 0:
            clip = render(sample_spec(rng, held_out=None))
        f = rng.integers(NUM_FRAMES)
        cx, cy = clip.centroids[f]
        x0 = int(np.clip(cx - crop / 2 + rng.integers(-10, 11), 0, SIZE - crop))
        y0 = int(np.clip(cy - crop / 2 + rng.integers(-10, 11), 0, SIZE - crop))
        images.append(clip.frames[f, y0 : y0 + crop, x0 : x0 + crop])
        masks.append(clip.masks[f, y0 : y0 + crop, x0 : x0 + crop])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, crop, crop)
    return x, object_weight(torch.from_numpy(np.stack(masks)).float()[:, None])


def object_weight(masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weights (N, 1, H, W) from object masks (N, 1, H, W): 5 on and within two pixels of
    the object (its edges decide the shape read from a clip), 1 elsewhere."""
    return 1 + 4 * F.max_pool2d(masks, 5, 1, 2)


def latent_noise(z: torch.Tensor) -> torch.Tensor:
    """Noise to add to latents before decoding in training, so the decoder forgives the denoiser's small
    errors; relative to the latents' spread, since their scale is free."""
    return 0.15 * z.detach().std() * torch.randn_like(z)


def weighted_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The decoder's loss: weighted L2 + L1/2."""
    error = pred - target
    return (weight * (error.square() + 0.5 * error.abs())).mean()


def reconstruction_loss(
    ae: FrameAutoencoder, x: torch.Tensor, weight: torch.Tensor, *, train_encoder: bool
) -> torch.Tensor:
    """Weighted L2 + L1 of a round trip through latents with noise added: the decoder must forgive the
    denoiser's small errors. Stage 4 refines the decoder alone (train_encoder=False), so the latents the
    DiT learned stay valid."""
    with torch.set_grad_enabled(train_encoder):
        z = ae.encoder(x)
    return weighted_error(ae.decoder(z + latent_noise(z)), x, weight)


def train_autoencoder(
    config: TrainConfig, ae_config: FrameAutoencoderConfig, work_dir: Path, budget_s: float
) -> tuple[FrameAutoencoder, float]:
    """The trained autoencoder and the seconds its stage took (across resumes)."""
    path = work_dir / "autoencoder.pt"
    ae = FrameAutoencoder(ae_config)
    opt = torch.optim.AdamW(ae.parameters(), lr=config.autoencoder_lr, weight_decay=0.0)
    state = {"elapsed_s": 0.0, "step": 0}
    if path.exists():
        saved = torch.load(path, weights_only=False)
        ae.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        logger.info("autoencoder: resumed at step %d (%.0f s)", state["step"], state["elapsed_s"])
    if state["elapsed_s"] >= budget_s:
        return ae, state["elapsed_s"]

    rng = np.random.default_rng([config.seed, 1, state["step"]])
    torch.manual_seed(config.seed + state["step"])
    start, last_save = time.monotonic() - state["elapsed_s"], time.monotonic()
    bar = tqdm(total=int(budget_s), desc="autoencoder", unit="s", initial=int(state["elapsed_s"]))
    while (elapsed := time.monotonic() - start) < budget_s:
        lr = config.autoencoder_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, weight = object_crops(rng, config.autoencoder_batch)
        loss = reconstruction_loss(ae, x, weight, train_encoder=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        bar.update(int(time.monotonic() - start) - bar.n)
        bar.set_postfix(step=state["step"], loss=f"{loss.item():.4f}")
        if state["step"] % 100 == 0:
            logger.info("autoencoder step %d loss %.5f lr %.2e", state["step"], loss.item(), lr)
        if time.monotonic() - last_save > config.checkpoint_every_s:
            state["elapsed_s"] = time.monotonic() - start
            torch.save({"model": ae.state_dict(), "optimizer": opt.state_dict(), "state": state}, path)
            last_save = time.monotonic()
    bar.close()
    state["elapsed_s"] = max(budget_s, time.monotonic() - start)
    torch.save({"model": ae.state_dict(), "optimizer": opt.state_dict(), "state": state}, path)
    return ae, state["elapsed_s"]


# ---------------------------------------------------------------------------------------------
# Stage 2: dataset of latents and caption embeddings
# ---------------------------------------------------------------------------------------------


@dataclass
class LatentDataset:
    latents: torch.Tensor  # float16 (N, C, F, h, w), unit variance
    references: torch.Tensor  # float16 (N, C, h, w): another still of the same object
    tokens: torch.Tensor  # float16 (N, L, 384), zero padded
    token_mask: torch.Tensor  # bool (N, L)
    generic_tokens: torch.Tensor  # float16 (N, L, 384): captions without colour and shape
    generic_mask: torch.Tensor  # bool (N, L)
    paths: torch.Tensor  # float32 (N, F, 2): the object's centroid per frame, fractions of the frame
    captions: list[str]


def dataset_recipe(config: TrainConfig) -> dict:
    """What decides a cached training set's clips besides their number (which names the cache file)."""
    return {
        "seed": config.seed,
        "path_clip_fraction": config.path_clip_fraction,
        "continuation_clip_fraction": config.continuation_clip_fraction,
    }


def check_dataset_recipe(saved: dict, config: TrainConfig, path: Path) -> None:
    """A cached set drawn with another seed or other clip fractions than the run asks for would train
    the run on clips it did not ask for, silently: refuse it. Sets cached before the recipe was
    recorded carry none and are taken as they are."""
    recipe = saved.get("recipe")
    if recipe is not None and recipe != dataset_recipe(config):
        raise ValueError(
            f"{path} was built with {recipe}, this run asks for {dataset_recipe(config)}: "
            "use another --work-dir, or delete the file to rebuild it"
        )


def pad_tokens(encoded, dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded prompts (each with `tokens` (L_i, dim) and `num_tokens`) -> tokens (N, L, dim) zero padded
    to the longest, and the mask (N, L) of real tokens."""
    length = max(e.num_tokens for e in encoded)
    tokens = torch.zeros(len(encoded), length, dim, dtype=dtype)
    token_mask = torch.zeros(len(encoded), length, dtype=torch.bool)
    for i, e in enumerate(encoded):
        tokens[i, : e.num_tokens] = torch.from_numpy(e.tokens.copy()).to(dtype)
        token_mask[i, : e.num_tokens] = True
    return tokens, token_mask


def check_unit_variance(latents: torch.Tensor) -> None:
    """The DiT's flow runs from unit noise to the data: latents far from unit variance make it another
    (much harder) problem. A latent scale applied twice once trained a whole run on latents with a
    standard deviation of 0.09, and the model fell apart; this stops such a run before it starts.
    Reads the first 512 clips: enough for the spread, without a float copy of the whole set."""
    std = float(latents[:512].float().std())
    if not 0.5 < std < 2.0:
        raise ValueError(
            f"the dataset's latents have standard deviation {std:.3f}, not about 1: is the autoencoder's "
            "latent_scale applied twice (an autoencoder loaded with its scale, then scaled again)?"
        )


@torch.no_grad()
def build_dataset(
    config: TrainConfig,
    ae: FrameAutoencoder,
    work_dir: Path,
    *,
    device: torch.device = CPU,
    workers: int = 1,
    text_encoder: Path | None = None,
) -> tuple[LatentDataset, float, float]:
    """Renders, encodes and caches the training set; returns it, the autoencoder's latent scale and
    the seconds the build took. A fresh autoencoder (latent_scale 1) gets the scale measured on the
    set; one that has a scale (a model trained before) already applies it in `encode`, and keeps it.
    Clips render in seeded batches, in `workers` processes when more than one; the autoencoder runs on
    `device`; captions are encoded by the service's encoder, or by a compact export of it
    (`training/compact_encoder.py`) where the encoder package is not installed."""
    path = work_dir / f"dataset_{config.dataset_clips}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=False)
        check_dataset_recipe(saved, config, path)
        check_unit_variance(saved["dataset"]["latents"])
        return LatentDataset(**saved["dataset"]), saved["latent_scale"], saved["build_seconds"]
    started = time.monotonic()

    chunk = 32
    jobs = [
        (
            (config.seed, 2, index),
            min(chunk, config.dataset_clips - start),
            config.path_clip_fraction,
            config.continuation_clip_fraction,
        )
        for index, start in enumerate(range(0, config.dataset_clips, chunk))
    ]
    ae.eval().to(device)
    latents, references, captions, generic, paths = [], [], [], [], []
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            )
            batches = pool.map(render_training_batch, *zip(*jobs, strict=True))
        else:
            batches = (render_training_batch(*job) for job in jobs)
        for batch in tqdm(batches, total=len(jobs), desc="render + encode clips"):
            video = video_to_tensor(batch.frames).to(device)  # (b, 3, F, H, W)
            latents.append(ae.encode(video).half().cpu())  # (b, C, F, h, w)
            stills = video_to_tensor(batch.references[:, None]).to(device)  # (b, 3, 1, H, W)
            references.append(ae.encode(stills)[:, :, 0].half().cpu())  # (b, C, h, w)
            captions += batch.captions
            generic += batch.generic_captions
            paths.append(torch.from_numpy(batch.paths))
    ae.to(CPU)
    latents_t = torch.cat(latents)
    rescale = float(1.0 / latents_t.float().std()) if ae.config.latent_scale == 1.0 else 1.0
    latent_scale = ae.config.latent_scale * rescale
    latents_t = (latents_t.float() * rescale).half()
    check_unit_variance(latents_t)
    references_t = (torch.cat(references).float() * rescale).half()

    if text_encoder is None:
        from services.text_encoder.backends import load_default_backend

        encoder = load_default_backend()
    else:
        from training.compact_encoder import CompactEncoder

        encoder = CompactEncoder(text_encoder, device=str(device))

    def encode_all(texts: list[str], desc: str) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = []
        for start in tqdm(range(0, len(texts), 256), desc=desc):
            encoded += encoder.encode(texts[start : start + 256])
        return pad_tokens(encoded, encoder.dim, torch.float16)

    tokens, token_mask = encode_all(captions, "encode captions")
    generic_tokens, generic_mask = encode_all(generic, "encode generic captions")
    length = max(tokens.shape[1], generic_tokens.shape[1])  # one width, so rows can swap captions
    tokens, generic_tokens = (F.pad(t, (0, 0, 0, length - t.shape[1])) for t in (tokens, generic_tokens))
    token_mask, generic_mask = (F.pad(m, (0, length - m.shape[1])) for m in (token_mask, generic_mask))
    dataset = LatentDataset(
        latents_t,
        references_t,
        tokens,
        token_mask,
        generic_tokens,
        generic_mask,
        torch.cat(paths),
        captions,
    )
    build_seconds = time.monotonic() - started
    torch.save(
        {
            "dataset": dataclasses.asdict(dataset),
            "latent_scale": latent_scale,
            "build_seconds": build_seconds,
            "recipe": dataset_recipe(config),
        },
        path,
    )
    return dataset, latent_scale, build_seconds


# ---------------------------------------------------------------------------------------------
# Stage 3: the DiT
# ---------------------------------------------------------------------------------------------


SEAM_FRAMES = 2


def seam_frames(num_known: torch.Tensor, num_frames: int) -> torch.Tensor:
    """float (B, F): 1 on the first SEAM_FRAMES frames after each row's `num_known` (B,) known frames,
    0 elsewhere and on every frame of a row without known frames."""
    index = torch.arange(num_frames, device=num_known.device)[None]  # (1, F)
    after = (index >= num_known[:, None]) & (index < num_known[:, None] + SEAM_FRAMES)
    return (after & (num_known[:, None] > 0)).float()


def flow_matching_loss(
    model: VideoDiT, batch: dict[str, torch.Tensor], generator: torch.Generator, config: TrainConfig
) -> torch.Tensor:
    """One flow-matching loss with caption dropout and random conditioning masks."""
    x0 = batch["latents"]  # (B, C, F, h, w)
    B, _, Fr = x0.shape[:3]
    # Uniform times. Logit-normal times (SD3's choice for large images) left t > 0.9 in 1.4% of rows, and
    # in this world the noisy end is where everything is decided (where the object is, how it moves):
    # the model denoised real clips well from t = 0.5 but made fragments from pure noise.
    device = x0.device
    t = torch.rand(B, generator=generator, device=device)
    noise = torch.randn(x0.shape, generator=generator, device=device)
    tb = t.view(B, 1, 1, 1, 1)
    xt = (1 - tb) * x0 + tb * noise  # (B, C, F, h, w)
    target = noise - x0

    has_reference = torch.rand(B, generator=generator, device=device) < config.reference_prob
    generic = has_reference & (
        torch.rand(B, generator=generator, device=device) < config.generic_caption_prob
    )
    tokens = torch.where(generic[:, None, None], batch["generic_tokens"], batch["tokens"])  # (B, L, 384)
    token_mask = torch.where(generic[:, None], batch["generic_mask"], batch["token_mask"])  # (B, L)
    drop = torch.rand(B, generator=generator, device=device) < config.caption_dropout
    null_tokens, null_mask = model.null_text_tokens(B, tokens.shape[1])
    tokens = torch.where(drop[:, None, None], null_tokens, tokens)  # (B, L, 384)
    token_mask = torch.where(drop[:, None], null_mask, token_mask)  # (B, L)

    has_known = torch.rand(B, generator=generator, device=device) < config.known_frames_prob
    num_known = torch.randint(1, Fr // 2 + 1, (B,), generator=generator, device=device) * has_known  # (B,)
    known_mask = (
        (torch.arange(Fr, device=device)[None] < num_known[:, None]).float().view(B, 1, Fr, 1, 1)
    )  # (B, 1, F, 1, 1)
    has_path = (
        (torch.rand(B, generator=generator, device=device) < config.path_prob).float().view(B, 1, 1, 1, 1)
    )
    path_map = path_heatmap(batch["paths"], x0.shape[-1]) * has_path  # (B, 1, F, h, w)

    v = model(
        xt,
        t,
        tokens,
        token_mask,
        known_latents=x0,
        known_mask=known_mask,
        reference=batch["references"],
        reference_mask=has_reference,
        path_map=path_map,
    )
    weight = (1 - known_mask).expand(B, 1, Fr, *x0.shape[3:])  # only frames the model had to make count
    if config.seam_loss_weight:
        weight = weight * (1 + config.seam_loss_weight * seam_frames(num_known, Fr).view(B, 1, Fr, 1, 1))
    if config.subject_loss_weight:  # (B, 1, F, h, w): 1 on the backdrop, up to 1 + w on the subject
        weight = weight * (1 + config.subject_loss_weight * path_heatmap(batch["paths"], x0.shape[-1]))
    return ((v - target).square() * weight).sum() / (weight.sum() * x0.shape[1])


def train_dit(
    config: TrainConfig,
    dit_config: VideoDiTConfig,
    dataset: LatentDataset,
    work_dir: Path,
    budget_s: float,
    init: VideoDiT | None = None,
    device: torch.device = CPU,
) -> tuple[VideoDiT, dict]:
    """The EMA of the trained DiT (on the CPU) and the stage's state (steps, seconds, loss curve). `init`
    gives the starting weights of a model trained before; a checkpoint in work_dir takes precedence over
    it. On a GPU the whole dataset moves to the device once, and the loss is read back only when logged,
    so that the host never waits on a step."""
    path = work_dir / "dit.pt"
    model = VideoDiT(dit_config)
    if init is not None:
        model.load_state_dict(init.state_dict())
    model.to(device)
    ema = VideoDiT(dit_config).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01, betas=(0.9, 0.99))
    state = {"elapsed_s": 0.0, "step": 0, "losses": []}
    if path.exists():
        saved = torch.load(path, weights_only=False, map_location=device)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        logger.info("dit: resumed at step %d (%.0f s)", state["step"], state["elapsed_s"])
    logger.info(
        "dit: %.2fM parameters, %d clips",
        sum(p.numel() for p in model.parameters()) / 1e6,
        len(dataset.captions),
    )

    def save():
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "state": state,
            },
            path,
        )

    data = {  # every tensor of the dataset, on the device
        f.name: getattr(dataset, f.name).to(device)
        for f in dataclasses.fields(dataset)
        if isinstance(getattr(dataset, f.name), torch.Tensor)
    }
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    generator = torch.Generator(device).manual_seed(config.seed * 1000 + state["step"])
    start, last_save, window = time.monotonic() - state["elapsed_s"], time.monotonic(), []
    bar = tqdm(
        total=int(budget_s), desc="video DiT", unit="s", initial=int(min(state["elapsed_s"], budget_s))
    )
    while (elapsed := time.monotonic() - start) < budget_s:
        progress = elapsed / budget_s
        lr = (
            config.lr
            * min(1.0, (state["step"] + 1) / config.warmup_steps)
            * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        )
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(dataset.captions), (config.batch_size,), generator=generator, device=device)
        batch = {k: v[idx].float() if v.dtype == torch.float16 else v[idx] for k, v in data.items()}
        loss = flow_matching_loss(model, batch, generator, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model_params, 1.0)
        opt.step()
        decay = min(config.ema_decay, (1 + state["step"]) / (10 + state["step"]))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, model_params, 1 - decay)
        state["step"] += 1
        window.append(loss.detach())
        bar.update(int(time.monotonic() - start) - bar.n)
        if state["step"] % 100 == 0:
            mean = float(torch.stack(window).mean())
            bar.set_postfix(step=state["step"], loss=f"{mean:.4f}", lr=f"{lr:.1e}")
            state["losses"].append((state["step"], round(time.monotonic() - start, 1), mean))
            logger.info(
                "dit step %d loss %.5f lr %.2e elapsed %.0fs",
                state["step"],
                mean,
                lr,
                time.monotonic() - start,
            )
            window = []
        if time.monotonic() - last_save > config.checkpoint_every_s:
            state["elapsed_s"] = time.monotonic() - start
            save()
            last_save = time.monotonic()
    bar.close()
    state["elapsed_s"] = max(budget_s, time.monotonic() - start)
    save()
    return ema.to(CPU), state


# ---------------------------------------------------------------------------------------------
# Stage 4: decoder refinement
# ---------------------------------------------------------------------------------------------


def refine_decoder(
    config: TrainConfig, ae: FrameAutoencoder, work_dir: Path, budget_s: float
) -> FrameAutoencoder:
    """More decoder training with the encoder frozen: the DiT's latent space stays exactly as it was
    trained on, while edges (which decide the shape read from a clip) get sharper."""
    path = work_dir / "decoder.pt"
    opt = torch.optim.AdamW(ae.decoder.parameters(), lr=config.autoencoder_lr * 0.5, weight_decay=0.0)
    state = {"elapsed_s": 0.0, "step": 0}
    if path.exists():
        saved = torch.load(path, weights_only=False)
        ae.decoder.load_state_dict(saved["decoder"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
    ae.encoder.requires_grad_(False)

    def save():
        torch.save({"decoder": ae.decoder.state_dict(), "optimizer": opt.state_dict(), "state": state}, path)

    rng = np.random.default_rng([config.seed, 4, state["step"]])
    start, last_save = time.monotonic() - state["elapsed_s"], time.monotonic()
    bar = tqdm(total=int(budget_s), desc="decoder", unit="s", initial=int(min(state["elapsed_s"], budget_s)))
    while (elapsed := time.monotonic() - start) < budget_s:
        lr = config.autoencoder_lr * 0.5 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, weight = object_crops(rng, config.autoencoder_batch)
        loss = reconstruction_loss(ae, x, weight, train_encoder=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        bar.update(int(time.monotonic() - start) - bar.n)
        bar.set_postfix(step=state["step"], loss=f"{loss.item():.4f}")
        if state["step"] % 100 == 0:
            logger.info("decoder step %d loss %.5f lr %.2e", state["step"], loss.item(), lr)
        if time.monotonic() - last_save > config.checkpoint_every_s:
            state["elapsed_s"] = time.monotonic() - start
            save()
            last_save = time.monotonic()
    bar.close()
    state["elapsed_s"] = max(budget_s, time.monotonic() - start)
    save()
    ae.encoder.requires_grad_(True)
    return ae


def continued_from_record(config: PipelineConfig) -> dict:
    """What a continued model started from: the earlier model's version, DiT steps and how it was made
    (the earlier record's loss curve is left out; it is in the earlier weights' config)."""
    training = {k: v for k, v in config.training.items() if k != "loss_curve"}
    return {"version": config.version, **training}


# The PipelineConfig fields that describe the weights themselves; every other field is a sampling choice.
MODEL_FIELDS = frozenset({"dit", "autoencoder", "name", "version", "fps", "planner", "training"})


def inherited_sampling(config: PipelineConfig) -> dict:
    """The sampling defaults a continued model keeps from the one it continues: they were chosen by
    measuring that model (the guidance sweep in docs/model/NOTES.md), and a new run changes the weights,
    not that choice; a changed default is measured and set on its own. Every field outside MODEL_FIELDS
    is kept, so a sampling setting added later is kept too: a list of names kept by hand missed the
    restart, the known-frames start and path guidance, and continuations came back sampling without them."""
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if field.name not in MODEL_FIELDS
    }


def training_device(name: str) -> torch.device:
    """The device to train on; a CUDA device that is not there is an error, not a silent CPU run."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {name}: torch {torch.__version__} sees no CUDA device here")
        # TF32 matrix products: float32 training at the matrix units' rate, to about 1e-3 per product.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def main() -> None:
    config, args = parse_args()
    work_dir, out, init_from = args.work_dir, args.out, args.init_from
    device = training_device(args.device)
    dataset_options = {"device": device, "workers": args.workers, "text_encoder": args.text_encoder}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work_dir.mkdir(parents=True, exist_ok=True)
    file_log = logging.FileHandler(work_dir / "train.log")
    file_log.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(file_log)
    torch.manual_seed(config.seed)
    budget_s = config.minutes * 60

    previous = (
        None
        if init_from is None
        else VideoPipeline.from_pretrained(init_from, autoencoder_precision="float32")  # trained on
    )
    if previous is None:
        ae_config = AUTOENCODER_PRESETS[config.autoencoder_preset]
        # Once the latents are cached the encoder is frozen: training it further on a resumed run with a
        # larger budget would leave the cached latents encoded by a different encoder.
        latents_cached = (work_dir / f"dataset_{config.dataset_clips}.pt").exists()
        ae_budget = 0.0 if latents_cached else budget_s * config.autoencoder_fraction
        ae, ae_seconds = train_autoencoder(config, ae_config, work_dir, ae_budget)
        dataset, latent_scale, dataset_seconds = build_dataset(config, ae, work_dir, **dataset_options)
        ae_config = dataclasses.replace(ae_config, latent_scale=latent_scale)
        ae.config = ae_config
        dit_config = VIDEO_DIT_PRESETS[config.dit_preset]
    else:
        # The autoencoder, its latent scale and the planner stay as they were; only the DiT (and a
        # short decoder refinement) trains on.
        ae, ae_config, dit_config = (
            previous.autoencoder.train(),
            previous.config.autoencoder,
            previous.config.dit,
        )
        ae_seconds = 0.0
        if args.grow_depth is not None:
            previous.dit = grow_depth(previous.dit, args.grow_depth)
            dit_config = previous.dit.config
        dataset, _, dataset_seconds = build_dataset(config, ae, work_dir, **dataset_options)
    if args.dataset_only:
        logger.info(
            "dataset of %d clips cached in %s (%.0f s)", len(dataset.captions), work_dir, dataset_seconds
        )
        return

    # The DiT gets what the earlier stages left, measured, so the whole run fits the budget. A continued
    # run keeps its refined decoder: a fresh optimizer's first steps at full rate set it back (measured:
    # the reconstruction loss went from 0.045 to 0.31 in one step).
    decoder_budget = 0.0 if previous is not None else budget_s * config.decoder_fraction
    planner_budget = 0.0 if previous is not None else budget_s * config.planner_fraction
    dit_budget = budget_s - ae_seconds - dataset_seconds - decoder_budget - planner_budget - EXPORT_MARGIN_S
    if args.dit_minutes is not None:
        dit_budget = args.dit_minutes * 60
    dit, state = train_dit(
        config,
        dit_config,
        dataset,
        work_dir,
        dit_budget,
        init=None if previous is None else previous.dit,
        device=device,
    )
    if previous is None:
        ae = refine_decoder(config, ae, work_dir, decoder_budget)
        planner, planner_record = train_and_measure(dataset, planner_budget, seed=config.seed)
    else:
        planner, planner_record = previous.planner, previous.config.training.get("planner")

    command = f"python -m training.train_video --minutes {config.minutes:g}"
    if init_from is not None:
        command += f" --init-from {init_from} --lr {config.lr:g} --dataset-clips {config.dataset_clips}"
    if args.grow_depth is not None:
        command += f" --grow-depth {args.grow_depth}"
    if args.dit_minutes is not None:
        command += f" --dit-minutes {args.dit_minutes:g}"
    if config.batch_size != TrainConfig.batch_size:
        command += f" --batch-size {config.batch_size}"
    if config.seed != TrainConfig.seed:
        command += f" --seed {config.seed}"
    if config.subject_loss_weight != TrainConfig.subject_loss_weight:
        command += f" --subject-loss-weight {config.subject_loss_weight:g}"
    if config.seam_loss_weight != TrainConfig.seam_loss_weight:
        command += f" --seam-loss-weight {config.seam_loss_weight:g}"
    if config.known_frames_prob != TrainConfig.known_frames_prob:
        command += f" --known-frames-prob {config.known_frames_prob:g}"
    if device.type != "cpu":
        command += f" --device {args.device}"
    if args.text_encoder is not None:
        command += f" --text-encoder {args.text_encoder}"
    pipeline_config = PipelineConfig(
        dit=dit_config,
        autoencoder=ae_config,
        planner=None if planner is None else planner.config,
        version="1" if previous is None else str(int(previous.config.version) + 1),
        **({} if previous is None else inherited_sampling(previous.config)),
        training={
            "command": command,
            "continued_from": None if previous is None else continued_from_record(previous.config),
            "train_config": dataclasses.asdict(config),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "dit_steps": state["step"],
            "dit_seconds": round(state["elapsed_s"]),
            "autoencoder_seconds": round(ae_seconds),
            "dataset_seconds": round(dataset_seconds),
            "decoder_seconds": round(decoder_budget),
            "total_minutes": round(
                (ae_seconds + dataset_seconds + state["elapsed_s"] + decoder_budget) / 60, 1
            ),
            "loss_curve": state["losses"],
            "planner": planner_record,
        },
    )
    save_pipeline(out, pipeline_config, dit, ae, planner)
    logger.info("wrote %s (%d DiT steps; planner %s)", out, state["step"], planner_record)


if __name__ == "__main__":
    main()
