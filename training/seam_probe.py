"""Where extension seams jump: the video model continuing clips from their last frames, in process.

    .venv/bin/python -m training.seam_probe --clips 36

Three measurements (docs/modes/REPORT.md and docs/model/NOTES.md cite them):

1. Rendered continuations: a clip of the shapes world cut anywhere from its motion carried on past the
   clip (`shapes_world.render_continuation`), its first `EXTEND_CONTEXT_FRAMES` (3; `--context N` for
   another count) frames given as `first_frames`, continued with the planner's path, with the true
   path, and as the gateway continues a video (the planner's path and the video's first frame as the reference image). The share of seam steps (last known frame -> first
   new frame) within 2x the clip's median step says how much of a seam is the planner's and how much
   the DiT's own drawing; the share of continuations whose new frames keep the caption's colour and
   shape, and do not flicker, is what an extension's identity over a minute is made of.
2. A traced chain: a straight move that has reached the far side, continued call after call from the
   model's own last frames, printing the known, planned and generated x of the subject around every seam.
3. Steps inside and across the DiT's tokens: each token spans `patch_size[0]` frames, and the subject's
   centroid step from frame k to k+1 is inside a token when k is not the last frame of one. Rendered
   clips and planned paths move evenly; a DiT sampled on one token grid moved its subject once per
   token, which put every extension seam after an even number of known frames on a token boundary
   (`EXTEND_CONTEXT_FRAMES` in services/gateway/pipeline.py). It measures whatever sampling the model's
   config asks for (`PipelineConfig.token_grid`).
4. Redraws (`--redraws N`, instead of the above): continuations as the gateway makes them, drawn again
   from other seeds while the gateway's seam check (`services.gateway.seams`) sees a jump, up to N
   times: seams within 2x for the first draw against the draw kept, and the draws that took.
5. Chains (`--chains N --calls M`, instead of the above): N chains extended M calls each as the
   gateway extends a video, with no redraws and with up to `--redraws`, each judged over its whole
   length by the modes report's rules: its seams, and its identity (the colour and shape of every
   2-second segment against the first's, and the segments that show no subject); in process, so unlike
   the report's runs (whose batches vary with timing) it repeats exactly.

The seam rule is the modes report's: a step counts as a jump above 2x the median step inside the clip,
floored at 1 pixel.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from services.common.subjects import subject_centroids
from services.denoiser.model.paths import default_path
from services.denoiser.model.pipeline import VideoPipeline
from services.gateway.pipeline import EXTEND_CONTEXT_FRAMES as CONTEXT  # what an extension starts from
from services.gateway.seams import SeamDraws
from training.evaluator import analyze
from training.shapes_world import SIZE, render, render_continuation, sample_spec

MOTIONS = (
    "bounces left and right",
    "moves right",
    "bounces on the floor",
    "moves left",
    "moves up",
    "stays still",
)


def seam_within_2x(frames: np.ndarray, context: int = CONTEXT) -> bool:
    """Whether the step into the first new frame (after `context` known ones) is within 2x the median
    step after it."""
    steps = np.linalg.norm(np.diff(analyze(frames).centroids, axis=0), axis=1)
    return bool(steps[context - 1] <= 2 * max(float(np.nanmedian(steps[context:])), 1.0))


def token_step_split(centroids: np.ndarray, frames_per_token: int) -> tuple[np.ndarray, np.ndarray]:
    """Centroid steps (F - 1,) of a (F, 2) track, split into those inside a token and those from one
    token to the next."""
    steps = np.linalg.norm(np.diff(np.asarray(centroids, np.float64), axis=0), axis=1)  # step k: k -> k+1
    across = (np.arange(steps.size) + 1) % frames_per_token == 0
    return steps[~across], steps[across]


def token_steps(pipe: VideoPipeline, encode, clips: int, seed: int) -> dict[str, tuple[float, float]]:
    """Mean centroid step inside and across tokens, in pixels, for rendered clips of moving subjects,
    the planner's paths for their captions, and the clips the model makes along those paths."""
    rng = np.random.default_rng(seed)
    per_token = pipe.config.dit.patch_size[0]
    steps: dict[str, tuple[list, list]] = {name: ([], []) for name in ("rendered", "planned", "generated")}
    for i in range(clips):
        spec = dataclasses.replace(sample_spec(rng), motion=MOTIONS[i % 5])  # every one but 'stays still'
        clip = render(spec, rng)
        tokens = encode(clip.caption)
        path = default_path(pipe.planner, tokens, seed + i, path_input=True)
        made = pipe.generate(tokens, seed=seed + i, subject_path=path).frames
        tracks = {"rendered": clip.centroids, "planned": path * SIZE, "generated": analyze(made).centroids}
        for name, track in tracks.items():
            inside, across = token_step_split(track, per_token)
            steps[name][0].extend(inside)
            steps[name][1].extend(across)
    return {name: (float(np.nanmean(a)), float(np.nanmean(b))) for name, (a, b) in steps.items()}


# Ways of continuing: name -> (the true path instead of the planner's, the first frame as reference).
CONTINUATIONS = {
    "planner's path": (False, False),  # generate plans it from the known frames, as the service does
    "true path": (True, False),
    # What every continuation call of the gateway sends.
    "planner's path and the first frame as reference": (False, True),
}


def rendered_continuations(
    pipe: VideoPipeline, encode, clips: int, seed: int, context: int = CONTEXT
) -> dict[str, dict[str, float]]:
    """For each way of continuing (`CONTINUATIONS`): the share of seams within 2x, and of continued
    clips whose new frames keep the caption's colour and shape (read by the evaluator) and do not
    flicker. Each continuation starts from the clip's first `context` frames."""
    rng = np.random.default_rng(seed)
    kept: dict[str, dict[str, list[bool]]] = {
        name: {"seam within 2x": [], "colour kept": [], "shape kept": [], "no flicker": []}
        for name in CONTINUATIONS
    }
    for i in range(clips):
        spec = dataclasses.replace(sample_spec(rng), motion=MOTIONS[i % len(MOTIONS)])
        clip = render_continuation(spec, rng)
        tokens = encode(clip.caption)
        known = clip.frames[:context]
        true_path = np.clip(clip.centroids / SIZE, 0, 1).astype(np.float32)
        for name, (given_path, given_reference) in CONTINUATIONS.items():
            frames = pipe.generate(
                tokens,
                seed=seed + i,
                first_frames=known,
                subject_path=true_path if given_path else None,
                reference_image=clip.frames[0] if given_reference else None,
            ).frames
            new = analyze(frames[context:])
            kept[name]["seam within 2x"].append(seam_within_2x(frames, context))
            kept[name]["colour kept"].append(new.color == spec.color)
            kept[name]["shape kept"].append(new.shape == spec.shape)
            kept[name]["no flicker"].append(not new.flickers)
    return {name: {k: float(np.mean(v)) for k, v in measures.items()} for name, measures in kept.items()}


def redrawn_continuations(
    pipe: VideoPipeline, encode, clips: int, seed: int, redraws: int, context: int = CONTEXT
) -> dict[str, float]:
    """Continuations as the gateway makes them (the planner's path, the first frame as the reference),
    each drawn again from the next seeds while its seam jumps by the gateway's own check
    (`services.gateway.seams`), up to `redraws` times: the share of seams within 2x by the evaluator
    for the first draw and for the draw the gateway keeps, and the draws made per continuation."""
    rng = np.random.default_rng(seed)
    first, kept, draws = [], [], []
    for i in range(clips):
        spec = dataclasses.replace(sample_spec(rng), motion=MOTIONS[i % len(MOTIONS)])
        clip = render_continuation(spec, rng)
        tokens = encode(clip.caption)
        known = clip.frames[:context]
        judged, drawn = SeamDraws(known), []  # drawn: (new frames, the whole clip) per draw
        for attempt in range(1 + redraws):
            frames = pipe.generate(
                tokens, seed=seed + i + 1000 * attempt, first_frames=known, reference_image=clip.frames[0]
            ).frames
            if not attempt:
                first.append(seam_within_2x(frames, context))
            drawn.append((frames[context:], frames))
            if judged.take(drawn[-1][0]):
                break
        kept.append(seam_within_2x(next(whole for new, whole in drawn if new is judged.kept), context))
        draws.append(judged.draws)
    return {
        "first draw's seams within 2x": float(np.mean(first)),
        "kept draw's seams within 2x": float(np.mean(kept)),
        "draws per continuation": float(np.mean(draws)),
    }


def gateway_chains(
    pipe: VideoPipeline,
    encode,
    chains: int,
    calls: int,
    seed: int,
    redraws: int,
    captions: list[str] | None = None,
) -> dict[int, dict[str, float]]:
    """Chains made as the gateway extends a video (a clip, then `calls` continuations from the last
    CONTEXT frames with the first frame as the reference image), without redraws and with up to
    `redraws`, judged by the modes report's rule over the whole chain (`evaluate_modes.seam_stats`):
    per redraw budget, the mean and worst share of seams within 2x, and the draws per call. And the
    chain's identity as the report judges it: the share of 2-second segments whose colour and shape the
    evaluator reads as the first segment's, the chains where every segment does, and the segments where
    it finds no subject at all. `captions` replaces the sampled chains' captions (e.g. subjects that end
    at rest)."""
    from services.gateway.evaluate_modes import EXTEND_MOTIONS, caption_with, seam_stats, segment_reads

    rng = np.random.default_rng(seed)
    specs = [
        dataclasses.replace(sample_spec(rng, held_out=None), motion=EXTEND_MOTIONS[i % 3])
        for i in range(chains)
    ]
    captions = captions or [caption_with(spec, rng) for spec in specs]
    shares: dict[int, list[float]] = {0: [], redraws: []}
    draws = dict.fromkeys(shares, 0)
    kept_looks: dict[int, list[float]] = {budget: [] for budget in shares}  # per chain
    no_subject = dict.fromkeys(shares, 0)
    for index, caption in enumerate(captions):
        tokens = encode(caption)
        for budget in shares:
            frames = pipe.generate(tokens, seed=seed + 100 * index).frames
            seams, call_seed = [], seed + 100 * index + 1
            for _ in range(calls):
                judged = SeamDraws(frames)
                for _ in range(1 + budget):
                    new = pipe.generate(
                        tokens, seed=call_seed, first_frames=frames[-CONTEXT:], reference_image=frames[0]
                    ).frames[CONTEXT:]
                    call_seed += 1
                    if judged.take(new):
                        break
                draws[budget] += judged.draws
                seams.append(len(frames))
                frames = np.concatenate([frames, judged.kept])
            stats = seam_stats(frames, seams)
            shares[budget].append(stats["seam_step_within_2x"])
            segments = segment_reads(frames)
            looks = [(s.color, s.shape) for s in segments]
            kept_looks[budget].append(float(np.mean([look == looks[0] for look in looks])))
            no_subject[budget] += sum(s.shape is None for s in segments)
            print(
                f"  '{caption}', {budget} redraws: seams within 2x {stats['seam_step_within_2x']:.0%}, "
                f"segments as the first {kept_looks[budget][-1]:.0%}",
                flush=True,
            )
    return {
        budget: {
            "mean seams within 2x": float(np.mean(values)),
            "worst chain": float(np.min(values)),
            "draws per call": draws[budget] / (len(captions) * calls),
            "segments as the first": float(np.mean(kept_looks[budget])),
            "chains without drift": float(np.mean([kept == 1.0 for kept in kept_looks[budget]])),
            "segments without a subject": no_subject[budget],
        }
        for budget, values in shares.items()
    }


def traced_chain(pipe: VideoPipeline, encode, caption: str, calls: int, seed: int) -> None:
    tokens = encode(caption)
    frames = pipe.generate(tokens, seed=seed).frames
    print(f"'{caption}': subject x (pixels) around each seam: known | planned | generated")
    for call in range(calls):
        known = frames[-CONTEXT:]
        known_xy = subject_centroids(known)
        path = pipe.planner.sample(tokens, seed + 1 + call, known=known_xy)
        out = pipe.generate(tokens, seed=seed + 1 + call, first_frames=known, subject_path=path).frames
        made = analyze(out).centroids[CONTEXT : CONTEXT + 3, 0]
        print(
            f"  seam {call + 1}: {np.round(known_xy[-2:, 0] * SIZE, 1)} | "
            f"{np.round(path[CONTEXT : CONTEXT + 3, 0] * SIZE, 1)} | {np.round(made, 1)}"
        )
        frames = np.concatenate([frames, out[CONTEXT:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="video model weights (default: the shipped ones)")
    parser.add_argument("--clips", type=int, default=36)
    parser.add_argument(
        "--calls", type=int, default=5, help="continuations of the traced chain, or of each of --chains"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--context",
        type=int,
        default=CONTEXT,
        help="frames a rendered continuation starts from (the gateway's)",
    )
    parser.add_argument(
        "--continuations-only", action="store_true", help="measure the rendered continuations and stop"
    )
    parser.add_argument(
        "--chains",
        type=int,
        default=0,
        help="instead: this many chains of --calls continuation calls as the gateway makes them, without "
        "redraws and with --redraws (2 unless given), judged over each chain as the modes report does",
    )
    parser.add_argument(
        "--caption",
        action="append",
        help="with --chains: a chain of this caption instead of sampled ones (repeat for more)",
    )
    parser.add_argument(
        "--redraws",
        type=int,
        default=None,
        help="instead: continuations drawn again up to this many times while their seam jumps, as the "
        "gateway does (seam_redraws), against their first draws",
    )
    parser.add_argument(
        "--known-frames-strength",
        type=float,
        default=None,
        help="in place of the model config's (PipelineConfig.known_frames_strength; 1: new frames from noise)",
    )
    parser.add_argument(
        "--known-frames-still-only",
        action="store_true",
        help="with --known-frames-strength: only where the subject path stays still "
        "(PipelineConfig.known_frames_start_still_only)",
    )
    parser.add_argument(
        "--frame-init",
        type=float,
        nargs=2,
        metavar=("CUTOFF", "NOISE_SHARE"),
        default=None,
        help="in place of the model config's (PipelineConfig.frame_init_cutoff, frame_init_noise_share)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from services.text_encoder.backends import load_default_backend

    pipe = VideoPipeline.from_pretrained(args.weights) if args.weights else VideoPipeline.from_pretrained()
    if args.known_frames_strength is not None:
        pipe.config = dataclasses.replace(
            pipe.config,
            known_frames_strength=args.known_frames_strength,
            known_frames_start_still_only=args.known_frames_still_only,
        )
    if args.frame_init is not None:
        cutoff, share = args.frame_init
        pipe.config = dataclasses.replace(pipe.config, frame_init_cutoff=cutoff, frame_init_noise_share=share)
    backend = load_default_backend()

    def encode(text: str) -> np.ndarray:
        return np.asarray(backend.encode([text])[0].tokens, np.float32)

    if args.chains:
        count = len(args.caption) if args.caption else args.chains
        print(f"{count} chains of {args.calls} continuation calls, made as the gateway makes them:")
        redraws = 2 if args.redraws is None else args.redraws
        for budget, shares in gateway_chains(
            pipe, encode, args.chains, args.calls, args.seed, redraws, args.caption
        ).items():
            print(f"  {budget} redraws: " + ", ".join(f"{k} {v:.3g}" for k, v in shares.items()))
        return
    if args.redraws is not None:
        shares = redrawn_continuations(pipe, encode, args.clips, args.seed, args.redraws, args.context)
        print(
            f"rendered continuations ({args.clips} clips) as the gateway makes them, drawn again up to "
            f"{args.redraws} times while their seam jumps: "
            + ", ".join(f"{k} {v:.3g}" for k, v in shares.items())
        )
        return
    print(
        f"rendered continuations ({args.clips} clips, {args.context} known frames): seam steps within 2x the clip's median step; "
        "the new frames' colour and shape as the caption's, and their flicker"
    )
    shares_by_way = rendered_continuations(pipe, encode, args.clips, args.seed, args.context)
    for name, shares in shares_by_way.items():
        print(f"  with the {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    if args.continuations_only:
        return
    traced_chain(pipe, encode, "cyan triangle drifting to the right", args.calls, args.seed)
    print(
        f"centroid steps inside and across the DiT's tokens ({args.clips} clips of moving subjects), mean px:"
    )
    for name, (inside, across) in token_steps(pipe, encode, args.clips, args.seed).items():
        print(f"  {name}: inside {inside:.2f}, across {across:.2f} (x{across / inside:.2f})")


if __name__ == "__main__":
    main()
