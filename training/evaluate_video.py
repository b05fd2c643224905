"""Scores the shipped text-to-video model with the independent evaluator and writes docs/model/REPORT.md.

    python -m training.evaluate_video

For every held-out (color, shape, motion) combination and as many seen ones, it renders a spec,
captions it, encodes the caption with the text encoder backend the service uses, generates a clip and
scores the clip against the spec: color, shape, size, motion, flicker. It also scores the evaluator on
rendered ground truth, the autoencoder alone (an upper bound for the model), and the conditioning
modes (image-to-video, cameo reference, remix); then writes sample grids (PNG), animations (GIF) and
the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from services.denoiser.model.autoencoder import PRECISIONS
from services.denoiser.model.pipeline import DEFAULT_WEIGHTS_DIR, VideoPipeline
from training.evaluator import Score, analyze, path_distances, score
from training.shapes_world import (
    COLORS,
    HELD_OUT_COMBOS,
    MOTION_PHRASES,
    MOTIONS,
    SHAPES,
    SIZE,
    SceneSpec,
    make_caption,
    parse_caption,
    render,
    render_along_path,
    render_reference,
    sample_spec,
)
from training.speed import TARGET_STEPS, compare_precisions, measure_speed

ATTRIBUTES = ("color", "shape", "size", "motion", "no_flicker")
PATH_MODE = "subject path (a random path given; motion does not apply)"
TARGETS = {"color": 0.97, "motion": 0.95, "shape": 0.85, "no_flicker": 1.0}


@dataclass
class Sample:
    spec: SceneSpec
    caption: str
    frames: np.ndarray  # uint8 (F, H, W, 3)
    score: Score


def seen_combos(count: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    every = [(c, s, m) for c in COLORS for s in SHAPES for m in MOTIONS if (c, s, m) not in HELD_OUT_COMBOS]
    return [every[i] for i in rng.choice(len(every), size=count, replace=False)]


def spec_for(combo: tuple[str, str, str], rng: np.random.Generator) -> SceneSpec:
    color, shape, motion = combo
    spec = sample_spec(rng, held_out=None)
    return SceneSpec(shape, spec.size, color, motion, spec.material, spec.background, spec.seed)


def generate_set(
    pipeline: VideoPipeline,
    encoder,
    combos,
    per_combo: int,
    rng: np.random.Generator,
    steps: int,
    guidance: float,
) -> list[Sample]:
    specs = [spec_for(combo, rng) for combo in combos for _ in range(per_combo)]
    captions = [make_caption(spec, rng) for spec in specs]
    encoded = encoder.encode(captions)
    samples = []
    for i, (spec, caption, enc) in enumerate(
        tqdm(list(zip(specs, captions, encoded, strict=True)), desc="generate")
    ):
        out = pipeline.generate(enc.tokens, seed=i, num_steps=steps, guidance_scale=guidance)
        samples.append(Sample(spec, caption, out.frames, score(out.frames, spec)))
    return samples


def clip_record(sample: Sample) -> dict:
    """One generated clip as the evaluator read it: what was asked, what was scored, and the subject's
    area (pixels) and centroid (pixels) in every frame, from which flicker and motion are judged."""
    a = analyze(sample.frames)
    scores = dataclasses.asdict(sample.score)
    scores["area_cv"] = _finite(scores["area_cv"])  # inf when the subject vanishes
    return {
        "caption": sample.caption,
        "spec": dataclasses.asdict(sample.spec),
        "size_named": caption_names_size(sample.caption),
        "score": scores,
        "read": {"color": a.color, "shape": a.shape, "size": a.size, "motion": a.motion},
        "areas": [round(float(x), 1) for x in a.areas],
        "centroids": [[_finite(v) for v in c] for c in a.centroids],  # null where no subject was found
    }


def _finite(value: float) -> float | None:
    return round(float(value), 3) if np.isfinite(value) else None


def caption_names_size(caption: str) -> bool:
    """Whether the caption says the subject's size: when it does not, the model may draw either."""
    return parse_caption(caption.replace(",", " ")).size is not None


def accuracy(scores: list[Score]) -> dict[str, float]:
    return {a: float(np.mean([getattr(s, a) for s in scores])) for a in ATTRIBUTES}


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------


def grid_png(samples: list[Sample], path: Path, frames_shown: int = 8, scale: int = 2) -> None:
    """One row per sample, every other frame left to right."""
    step = samples[0].frames.shape[0] // frames_shown
    rows = [np.concatenate(list(s.frames[::step][:frames_shown]), axis=1) for s in samples]
    image = np.concatenate(rows, axis=0)
    Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST).save(path)


def grid_gif(clips: list[np.ndarray], path: Path, columns: int = 4, scale: int = 2, fps: float = 8.0) -> None:
    """An animated grid of clips (each uint8 (F, H, W, 3)), looping."""
    pad = columns - len(clips) % columns if len(clips) % columns else 0
    clips = clips + [np.zeros_like(clips[0])] * pad
    rows = [np.concatenate(clips[r : r + columns], axis=2) for r in range(0, len(clips), columns)]
    video = np.concatenate(rows, axis=1)  # (F, H*rows, W*columns, 3)
    frames = [
        Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in video
    ]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def evaluator_on_ground_truth(count: int, rng: np.random.Generator) -> tuple[dict[str, float], float]:
    scores, impacts = [], []
    for _ in range(count):
        spec = sample_spec(rng, held_out=None)
        clip = render(spec)
        s = score(clip.frames, spec, tuple(i.frame for i in clip.impacts))
        scores.append(s)
        if s.first_impact is not None:
            impacts.append(s.first_impact)
    return accuracy(scores), float(np.mean(impacts))


def autoencoder_round_trip(pipeline: VideoPipeline, count: int, rng: np.random.Generator) -> dict[str, float]:
    scores = []
    for _ in range(count):
        spec = sample_spec(rng, held_out=None)
        frames = render(spec).frames
        scores.append(score(pipeline.decode(pipeline.encode(frames))[0], spec))
    return accuracy(scores)


def conditioning_checks(
    pipeline: VideoPipeline, encoder, rng: np.random.Generator, count: int, steps: int, guidance: float
):
    """Image-to-video, cameo, remix and a subject path on held-out combos, each scored against its spec;
    the path also by the mean distance of the tracked centroid to it (fraction of the frame)."""
    results: dict[str, list[Score]] = defaultdict(list)
    path_errors: list[float] = []
    clips: dict[str, list[np.ndarray]] = defaultdict(list)
    combos = sorted(HELD_OUT_COMBOS)
    for i in tqdm(range(count), desc="conditioning"):
        spec = spec_for(combos[i % len(combos)], rng)
        clip = render(spec)
        tokens = encoder.encode([make_caption(spec, rng)])[0].tokens
        out = pipeline.generate(
            tokens, seed=i, num_steps=steps, guidance_scale=guidance, first_frames=clip.frames[:1]
        )
        results["image-to-video (first frame given)"].append(score(out.frames, spec))
        clips["i2v"].append(out.frames)
        # Cameo: the caption names no colour or shape; the reference image carries the appearance.
        phrases = MOTION_PHRASES[spec.motion]
        plain = encoder.encode([f"it is {phrases[rng.integers(len(phrases))]}"])[0]
        reference = render_reference(spec, rng)
        out = pipeline.generate(
            plain.tokens, seed=i, num_steps=steps, guidance_scale=guidance, reference_image=reference
        )
        results["cameo (appearance from a reference image)"].append(score(out.frames, spec))
        clips["cameo"].append(
            np.concatenate([np.broadcast_to(reference, out.frames.shape), out.frames], axis=2)
        )
        # Remix: the ground-truth clip with a caption of another colour, strength 0.6.
        other = COLORS[(COLORS.index(spec.color) + 3) % len(COLORS)]
        target = SceneSpec(
            spec.shape, spec.size, other, spec.motion, spec.material, spec.background, spec.seed
        )
        tokens = encoder.encode([make_caption(target, rng)])[0].tokens
        out = pipeline.generate(
            tokens, seed=i, num_steps=steps, guidance_scale=guidance, source_video=clip.frames, strength=0.6
        )
        results["remix to another colour (strength 0.6)"].append(score(out.frames, target))
        clips["remix"].append(np.concatenate([clip.frames, out.frames], axis=2))
        # Subject path: a random path of the kind training renders, captioned as following a path.
        if not pipeline.config.dit.path_input:
            continue
        along = render_along_path(spec, rng)
        path = along.centroids / SIZE  # (F, 2)
        tokens = encoder.encode([along.caption])[0].tokens
        out = pipeline.generate(tokens, seed=i, num_steps=steps, guidance_scale=guidance, subject_path=path)
        results[PATH_MODE].append(score(out.frames, spec))
        path_errors.append(float(path_distances(out.frames, path).mean()))
        clips["path"].append(np.concatenate([along.frames, out.frames], axis=2))
    summary = {k: accuracy(v) | {"n": len(v)} for k, v in results.items()}
    if path_errors:  # motion does not apply: the clip follows the path, not the spec's motion
        summary[PATH_MODE]["path_error"] = float(np.mean(path_errors))
        summary[PATH_MODE]["path_within_5pct"] = float(np.mean(np.array(path_errors) <= 0.05))
    return summary, clips


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def _training_work(training: dict) -> str:
    """What the latest training run did: DiT steps, or the decoder's tuning (training/tune_decoder.py)."""
    tuning = training.get("decoder_tuning")
    if tuning:
        return f"{tuning['steps']} decoder steps on {tuning['pairs']} pairs of the DiT's samples and their targets"
    return f"{training.get('dit_steps', '?')} DiT steps"


def _token_grids(config) -> str:
    """The token grids the sampling steps take in turn (`PipelineConfig.token_grid`), in words."""
    if config.alternate_token_grid and config.alternate_space_grid:
        return "token grids shifted in time on odd steps and in space on every other pair of steps"
    if config.alternate_token_grid:
        return "token grids shifted in time on odd steps"
    if config.alternate_space_grid:
        return "token grids shifted in space on every other pair of steps"
    return "one token grid"


def _precision_lines(precisions: dict | None) -> list[str]:
    """The autoencoder in float32 against bfloat16 at the target's steps (`speed.compare_precisions`)."""
    if not precisions:
        return []
    if not precisions["cpu_has_bfloat16_units"]:
        return [
            "",
            "This CPU has no bfloat16 units: the autoencoder runs in float32 here (bfloat16 not timed).",
        ]
    return [
        "",
        "The autoencoder runs in bfloat16 where the CPU multiplies it in hardware, as this one does. "
        f"Side by side at {precisions['steps']} steps, the two pipelines' runs interleaved "
        f"(`python -m training.speed --compare-precisions`): float32 {precisions['float32_median_s']:.3f} s, "
        f"bfloat16 {precisions['bfloat16_median_s']:.3f} s median, a ratio of "
        f"{precisions['ratio_bfloat16_to_float32']:.2f}.",
    ]


def _restart(steps: int, restart_steps: int) -> str:
    """The sampler's restart (`services/denoiser/model/sampler.py`), in words; empty without one."""
    if not restart_steps:
        return ""
    return (
        f" (the last {restart_steps} of them run the end of the schedule again, from the result of the first "
        f"{steps - restart_steps} taken through the autoencoder and noised afresh)"
    )


def write_report(out: Path, results: dict, command: str) -> None:
    r = results
    lines = [
        "# Kino shapes-world text-to-video model: evaluation",
        "",
        f"Reproduce: `{command}` (writes this file and the pictures next to it).",
        "",
        f"Model `{r['model']}`: {r['dit_params'] / 1e6:.2f}M-parameter video DiT over the latents of a "
        f"{r['ae_params'] / 1e6:.2f}M-parameter frame autoencoder ({r['size'] // r['latent_shape'][2]}x spatial "
        f"compression, {r['latent_shape'][0]} channels), {r['frames']} frames at {r['size']}x{r['size']}, "
        f"{r['fps']:g} fps"
        + (
            f"; a {r['planner_params'] / 1e6:.2f}M-parameter path planner chooses the subject's path from the "
            "prompt where a request leaves it free, continuing from the subject's place in known first frames "
            "(`services/denoiser/model/planner.py`)."
            if r.get("planner_params")
            else "."
        ),
        f"Trained by `{r['training'].get('command', '?')}`: {_training_work(r['training'])} in "
        f"{r['training'].get('total_minutes', '?')} minutes in all on "
        + ("the 2-core CPU" if r["training"].get("device", "cpu") == "cpu" else r["training"]["device"])
        + (
            f", continuing model v{r['training']['continued_from']['version']} "
            f"({r['training']['continued_from'].get('dit_steps', '?')} DiT steps before)."
            if r["training"].get("continued_from")
            else "."
        )
        + (f" {r['training']['notes']}" if r["training"].get("notes") else ""),
        f"Sampling here: {r['steps']} Euler steps{_restart(r['steps'], r.get('restart_steps', 0))}, "
        f"guidance {r['guidance']:g}"
        + (" (the subject's path in its guided half only)" if r.get("path_guidance") else "")
        + f", {r.get('token_grids', 'one token grid')}, one clip per seed; "
        f"the autoencoder in {r.get('autoencoder_precision', 'float32')}.",
        "",
        "Status, causes and next steps: [NOTES.md](NOTES.md).",
        "",
        "Every number below comes from `training/evaluator.py`, which reads the pixels only: colour by palette",
        "distance, shape by the fill ratio of the object's bounding box, size by the box side, motion from the",
        "tracked centroid (reversals for bounces), flicker as the coefficient of variation of the object's area",
        "(a clip flickers above 15%).",
        "",
        "## Text to video",
        "",
        "| set | clips | color | shape | size | motion | no flicker |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("held_out", "seen"):
        acc = r[name]
        lines.append(
            f"| {name.replace('_', '-')} combos | {r[name + '_n']} | "
            + " | ".join(percent(acc[a]) for a in ATTRIBUTES)
            + " |"
        )
    lines += [
        "",
        "Targets on held-out combinations:",
        "",
        "| attribute | target | measured | met |",
        "|---|---|---|---|",
    ]
    for a, target in TARGETS.items():
        got = r["held_out"][a]
        lines.append(f"| {a} | {percent(target)} | {percent(got)} | {'yes' if got >= target else 'no'} |")
    lines += [
        "",
        "Per held-out combination (color, shape, motion accuracy over its clips):",
        "",
        "| combination | color | shape | motion | no flicker |",
        "|---|---|---|---|---|",
    ]
    for combo, acc in sorted(r["per_held_out_combo"].items()):
        lines.append(
            f"| {combo} | "
            + " | ".join(percent(acc[a]) for a in ("color", "shape", "motion", "no_flicker"))
            + " |"
        )
    lines += [
        "",
        "Motion confusion on held-out combinations (rows: asked for, columns: read from the clip):",
        "",
        "| asked \\ read | " + " | ".join(m.replace("bounces ", "b. ") for m in MOTIONS) + " | none |",
        "|---|" + "---|" * (len(MOTIONS) + 1),
    ]
    for m in MOTIONS:
        row = r["motion_confusion"].get(m, {})
        lines.append(f"| {m} | " + " | ".join(str(row.get(n, 0)) for n in [*MOTIONS, "None"]) + " |")
    lines += [
        "",
        "Held-out samples (every other frame, one clip per row; captions in `held_out_captions.txt`):",
        "",
        "![held-out samples](held_out_grid.png)",
        "",
        "![held-out animation](held_out.gif)",
        "",
        "Seen-combination samples:",
        "",
        "![seen samples](seen_grid.png)",
        "",
        "![seen animation](seen.gif)",
        "",
        "## Conditioning (held-out combinations)",
        "",
        "| mode | clips | color | shape | size | motion | no flicker |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, acc in r["conditioning"].items():
        lines.append(f"| {mode} | {acc['n']} | " + " | ".join(percent(acc[a]) for a in ATTRIBUTES) + " |")
    lines += [
        "",
        "Image-to-video (the first frame is given): ![i2v](image_to_video.gif)",
        "",
        "Cameo (left: the reference image; right: the clip, from a caption that names only the motion): ![cameo](cameo.gif)",
        "",
        "Remix (left: the source clip; right: the remix asking for another colour): ![remix](remix.gif)",
        "",
        *(
            [
                f"Subject path: the tracked centroid is on average {percent(p['path_error'])} of the frame from "
                f"the path; {percent(p['path_within_5pct'])} of clips within 5%. Left: a clip rendered along "
                "the path; right: the model's clip given that path: ![subject path](subject_path.gif)",
                "",
            ]
            if (p := r["conditioning"].get(PATH_MODE, {})).get("path_error") is not None
            else []
        ),
        "## The measuring stick",
        "",
        "| check | color | shape | size | motion | no flicker |",
        "|---|---|---|---|---|---|",
        "| evaluator on rendered ground truth | "
        + " | ".join(percent(r["evaluator_gt"][a]) for a in ATTRIBUTES)
        + " |",
        "| autoencoder round trip (the model's ceiling) | "
        + " | ".join(percent(r["autoencoder"][a]) for a in ATTRIBUTES)
        + " |",
        "",
        f"Evaluator: first bounce frame within one frame of the ground-truth impact on {percent(r['evaluator_impacts'])} "
        "of bouncing clips.",
        "",
        "## Speed",
        "",
        f"`python -m training.speed [--steps N]` on this machine's CPU: batch one, guidance "
        f"(the DiT runs on a batch of two), autoencoder decode included, {r['speed']['threads']} torch thread(s), "
        f"{r['speed']['runs']} runs after a warm-up. Target: 0.5 s per 2-second clip made with "
        f"{r['speed'].get('target_steps', 20)} to 30 steps.",
        "",
        "| steps | median CPU seconds per clip | median wall seconds | fastest wall seconds | 1-minute load average |",
        "|---|---|---|---|---|",
        *(
            f"| {s['steps']}{' (the default)' if s['steps'] == r['steps'] else ''} | {s['median_cpu_s']:.3f} | "
            f"{s['median_s']:.3f} | {s['min_s']:.3f} | {s['load_average_1m']:.1f} |"
            for s in (r["speed"], r.get("speed_at_target_steps"))
            if s
        ),
        "",
        "The machine is shared with other jobs (see the load average on 2 cores), so wall time here overstates",
        "latency; with one thread, the CPU seconds this process used are the wall time an idle core would give.",
        *_precision_lines(r.get("precisions")),
        "",
        "## Training loss",
        "",
    ]
    tuning = r["training"].get("decoder_tuning")
    if tuning:  # the latest run tuned the decoder (the DiT's own curve is in the earlier model's record)
        lines += [
            "| decoder step | seconds | loss on the DiT's samples | loss on rendered clips |",
            "|---|---|---|---|",
        ]
        curve = tuning["loss_curve"]
    else:
        lines += ["| DiT step | seconds | flow-matching loss |", "|---|---|---|"]
        curve = r["training"].get("loss_curve", [])
    rows = curve[:: max(1, len(curve) // 12)]
    for step, seconds, *losses in rows + [row for row in curve[-1:] if row not in rows]:
        lines.append(f"| {step} | {seconds:.0f} | " + " | ".join(f"{loss:.4f}" for loss in losses) + " |")
    lines.append("")
    (out / "REPORT.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--out", type=Path, default=Path("docs/model"))
    parser.add_argument("--per-combo", type=int, default=8, help="clips per combination")
    parser.add_argument("--steps", type=int, default=None, help="default: the model's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the model's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--autoencoder-precision",
        choices=PRECISIONS,
        default="auto",
        help="what the autoencoder computes in (auto: bfloat16 on a CPU with bfloat16 units, as served)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=2024,
        help="draws the scenes and captions; another seed gives other clips of the same combinations, "
        "which says how much luck is in a rate",
    )
    parser.add_argument(
        "--per-clip",
        type=Path,
        default=None,
        help="also write every held-out and seen clip's caption, spec, scores and per-frame subject "
        "areas and centroids to this JSON file (where a rate's misses come from)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from services.text_encoder.backends import load_default_backend

    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = VideoPipeline.from_pretrained(args.weights, autoencoder_precision=args.autoencoder_precision)
    guidance = pipeline.config.default_guidance_scale if args.guidance is None else args.guidance
    steps = pipeline.config.default_steps if args.steps is None else args.steps
    encoder = load_default_backend()
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()

    held_out = generate_set(pipeline, encoder, sorted(HELD_OUT_COMBOS), args.per_combo, rng, steps, guidance)
    seen = generate_set(pipeline, encoder, seen_combos(16, rng), args.per_combo, rng, steps, guidance)
    per_combo = defaultdict(list)
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in held_out:
        per_combo[", ".join(s.spec.combo)].append(s.score)
        confusion[s.spec.motion][str(analyze(s.frames).motion)] += 1
    conditioning, cond_clips = conditioning_checks(pipeline, encoder, rng, 16, steps, guidance)
    evaluator_gt, evaluator_impacts = evaluator_on_ground_truth(500, rng)

    shown = [held_out[i * args.per_combo] for i in range(16)]
    grid_png(shown, args.out / "held_out_grid.png")
    grid_gif([s.frames for s in shown], args.out / "held_out.gif")
    (args.out / "held_out_captions.txt").write_text("\n".join(s.caption for s in shown) + "\n")
    shown_seen = [seen[i * args.per_combo] for i in range(16)]
    grid_png(shown_seen, args.out / "seen_grid.png")
    grid_gif([s.frames for s in shown_seen], args.out / "seen.gif")
    grid_gif(cond_clips["i2v"][:8], args.out / "image_to_video.gif")
    grid_gif(cond_clips["cameo"][:8], args.out / "cameo.gif", columns=2)
    grid_gif(cond_clips["remix"][:8], args.out / "remix.gif", columns=2)
    if cond_clips["path"]:
        grid_gif(cond_clips["path"][:8], args.out / "subject_path.gif", columns=2)

    d = pipeline.config
    results = {
        "model": pipeline.model_name,
        "dit_params": sum(p.numel() for p in pipeline.dit.parameters()),
        "ae_params": sum(p.numel() for p in pipeline.autoencoder.parameters()),
        "planner_params": sum(p.numel() for p in pipeline.planner.parameters()) if pipeline.planner else 0,
        "latent_shape": pipeline.latent_shape,
        "frames": d.dit.num_frames,
        "size": d.frame_size,
        "fps": d.fps,
        "training": d.training,
        "steps": steps,
        "guidance": guidance,
        "token_grids": _token_grids(d),
        "path_guidance": d.path_guidance,
        "restart_steps": pipeline.sampler(steps).restart_steps,  # 0 where too few steps restart
        "autoencoder_precision": str(pipeline.autoencoder.dtype).removeprefix("torch."),
        "held_out": accuracy([s.score for s in held_out]),
        "held_out_n": len(held_out),
        "seen": accuracy([s.score for s in seen]),
        "seen_n": len(seen),
        "per_held_out_combo": {k: accuracy(v) for k, v in per_combo.items()},
        "motion_confusion": {k: dict(v) for k, v in confusion.items()},
        "conditioning": conditioning,
        "evaluator_gt": evaluator_gt,
        "evaluator_impacts": evaluator_impacts,
        "autoencoder": autoencoder_round_trip(pipeline, 200, rng),
        "speed": measure_speed(pipeline, steps=steps, guidance=guidance, runs=10),
        "speed_at_target_steps": (
            measure_speed(pipeline, steps=TARGET_STEPS, guidance=guidance, runs=10)
            if steps < TARGET_STEPS
            else None
        ),
        "precisions": compare_precisions(
            args.weights, steps=max(steps, TARGET_STEPS), guidance=guidance, runs=10
        ),
        "evaluation_minutes": round((time.monotonic() - started) / 60, 1),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.per_clip is not None:
        clips = {"held_out": [clip_record(s) for s in held_out], "seen": [clip_record(s) for s in seen]}
        args.per_clip.write_text(json.dumps(clips, indent=1) + "\n")
    command = " ".join(["python -m training.evaluate_video", *sys.argv[1:]])
    write_report(args.out, results, command)
    shown = ("held_out", "seen", "conditioning", "speed", "speed_at_target_steps", "precisions")
    print(json.dumps({k: results[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
