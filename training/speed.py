"""Times one 2-second clip at batch one: the denoiser's latency check on a CPU.

    python -m training.speed [--steps 20] [--guidance 4] [--threads 1]

Prints one JSON object: the median and minimum wall seconds per clip over --runs runs (after a warm-up)
and the median CPU seconds (the honest figure when other jobs share the machine), the FLOPs of one
clip (counted by torch's FlopCounterMode) and the achieved FLOP/s as a fraction of this machine's
float32 matmul peak measured in the same run (model FLOP utilization),
counting the whole `VideoPipeline.generate` call: every DiT step with classifier-free guidance (one
batched call of two rows per step) and the autoencoder's decode.

`--compare-precisions` instead times the same clips with the autoencoder in float32 and in bfloat16,
interleaved run by run so that both see the same machine, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from services.denoiser.model.autoencoder import PRECISIONS, cpu_has_bfloat16_units
from services.denoiser.model.pipeline import DEFAULT_WEIGHTS_DIR, VideoPipeline

TARGET_S = 0.5
# The 0.5 s budget is for a clip made with 20 to 30 steps and guidance: a model whose default takes fewer
# steps is timed at its default and at this many, and the target is judged at this many.
TARGET_STEPS = 20


def matmul_peak_flops(size: int = 1024, repeats: int = 20) -> float:
    """The best float32 FLOP/s of a square matmul with the current thread setting: the machine's
    practical peak, against which the model's achieved FLOP/s is put."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def clip_flops(pipeline: VideoPipeline, tokens: np.ndarray, *, steps: int, guidance: float) -> int:
    """FLOPs of one whole generate call (every DiT step and the decode), counted, not estimated."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        pipeline.generate(tokens, seed=0, num_steps=steps, guidance_scale=guidance)
    return counter.get_total_flops()


def measure_speed(pipeline: VideoPipeline, *, steps: int, guidance: float, runs: int) -> dict:
    tokens = np.random.default_rng(0).standard_normal((12, pipeline.config.dit.text_dim)).astype(np.float32)
    pipeline.generate(tokens, seed=0, num_steps=steps, guidance_scale=guidance)  # warm-up
    flops = clip_flops(pipeline, tokens, steps=steps, guidance=guidance)
    peak = matmul_peak_flops()
    times, cpu_times = [], []
    for seed in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        pipeline.generate(tokens, seed=seed, num_steps=steps, guidance_scale=guidance)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "steps": steps,
        "guidance": guidance,
        "frames": pipeline.config.dit.num_frames,
        "size": pipeline.config.frame_size,
        "threads": torch.get_num_threads(),
        "runs": runs,
        "median_s": round(float(np.median(times)), 4),
        "min_s": round(float(np.min(times)), 4),
        # CPU seconds this process used per clip, all threads together. With one thread on a machine
        # other jobs share, it is what the wall time would be if the core were ours alone.
        "median_cpu_s": round(float(np.median(cpu_times)), 4),
        "autoencoder_precision": str(pipeline.autoencoder.dtype).removeprefix("torch."),
        "gflop_per_clip": round(flops / 1e9, 2),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        # Achieved FLOP/s over CPU time (what this process got), as a fraction of the matmul peak.
        "mfu": round(flops / float(np.median(cpu_times)) / peak, 4),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target_s": TARGET_S,
        "target_steps": TARGET_STEPS,
        "meets_target": bool(steps >= TARGET_STEPS and np.median(times) <= TARGET_S),
    }


def compare_precisions(weights_dir: Path, *, steps: int, guidance: float | None, runs: int) -> dict:
    """Median wall seconds per clip with the autoencoder in float32 and in bfloat16, the two pipelines'
    runs interleaved, and the ratio bfloat16 / float32. On a CPU without bfloat16 units it times
    nothing: bfloat16 is emulated there (a clip takes about 30 s) and never served."""
    if not cpu_has_bfloat16_units():
        return {"steps": steps, "cpu_has_bfloat16_units": False}
    pipelines = {
        name: VideoPipeline.from_pretrained(weights_dir, autoencoder_precision=name)
        for name in ("float32", "bfloat16")
    }
    first = pipelines["float32"].config
    guidance = first.default_guidance_scale if guidance is None else guidance
    tokens = np.random.default_rng(0).standard_normal((12, first.dit.text_dim)).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for seed in range(-1, runs):  # seed -1 warms both up
        for name, pipeline in pipelines.items():
            start = time.perf_counter()
            pipeline.generate(tokens, seed=max(seed, 0), num_steps=steps, guidance_scale=guidance)
            if seed >= 0:
                times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    return {
        "steps": steps,
        "threads": torch.get_num_threads(),
        "runs": runs,
        "cpu_has_bfloat16_units": cpu_has_bfloat16_units(),
        **{f"{name}_median_s": round(m, 4) for name, m in medians.items()},
        "ratio_bfloat16_to_float32": round(medians["bfloat16"] / medians["float32"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the model's")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--autoencoder-precision", choices=PRECISIONS, default="auto")
    parser.add_argument(
        "--compare-precisions", action="store_true", help="time float32 against bfloat16 autoencoders"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare_precisions:
        steps = TARGET_STEPS if args.steps is None else args.steps
        print(
            json.dumps(compare_precisions(args.weights, steps=steps, guidance=args.guidance, runs=args.runs))
        )
        return
    pipeline = VideoPipeline.from_pretrained(args.weights, autoencoder_precision=args.autoencoder_precision)
    guidance = pipeline.config.default_guidance_scale if args.guidance is None else args.guidance
    steps = pipeline.config.default_steps if args.steps is None else args.steps
    print(json.dumps(measure_speed(pipeline, steps=steps, guidance=guidance, runs=args.runs)))


if __name__ == "__main__":
    main()
