"""`make bench`: every benchmark of the services, printed one after another in one run.

Benchmarks are scripts, never timed tests: these machines are shared and noisy, so each bench prints
its measurements, the machine's load average and the ratio to its target rather than asserting on
time. The denoiser engine's serving comparison takes about a quarter of an hour; `--quick` leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

JOB_TARGET_S = 3.0


async def _job_latencies(jobs: int) -> list[float]:
    """Seconds from Submit to SUCCEEDED for text-to-video jobs sent one at a time to a running Kino."""
    from kino.v1 import generation_pb2, generation_pb2_grpc
    from services.app import LocalKino
    from services.cli import follow_job
    from services.cluster.routing import insecure_channel
    from services.common.settings import load_settings

    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(data_dir=data_dir, server={"port": 0, "metrics_port": -1})
        kino = LocalKino(settings)
        if kino.missing:
            raise RuntimeError(f"cannot run jobs: {kino.missing}")
        await kino.start()
        latencies = []
        try:
            async with insecure_channel(kino.address) as channel:
                stub = generation_pb2_grpc.GenerationStub(channel)
                for i in range(jobs + 1):  # the first job warms the caches up and is not counted
                    spec = generation_pb2.GenerationSpec(prompt=f"a red circle moves left, take {i}", seed=i)
                    started = time.perf_counter()
                    job = await stub.Submit(generation_pb2.SubmitRequest(spec=spec, requester="bench"))
                    job = await follow_job(stub, job.name, lambda _update: None)
                    if job.state != generation_pb2.JOB_STATE_SUCCEEDED:
                        raise RuntimeError(f"{job.name} ended {generation_pb2.JobState.Name(job.state)}")
                    if i:
                        latencies.append(time.perf_counter() - started)
        finally:
            await kino.stop(grace=1.0)
    return latencies


def job_latency_bench(jobs: int = 5) -> dict:
    latencies = asyncio.run(_job_latencies(jobs))
    median = statistics.median(latencies)
    print(
        f"whole job (encode, denoise, decode, sound, MP4 + watermark + C2PA), {jobs} jobs one at a time: "
        f"median {median:.2f} s, min {min(latencies):.2f} s; target <= {JOB_TARGET_S:.0f} s "
        f"(ratio {median / JOB_TARGET_S:.2f}); load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return {"median_s": median, "latencies_s": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the 15-minute engine comparison")
    args = parser.parse_args(argv)

    from services.cluster.bench import run_bench as serve_overhead_bench
    from services.denoiser.model.pipeline import DEFAULT_WEIGHTS_DIR, VideoPipeline
    from services.ranker.bench import run_bench as ranker_bench
    from services.text_encoder.bench import run_bench as text_encoder_bench
    from training.speed import TARGET_STEPS, compare_precisions, measure_speed

    print("== TextEncoder ==", flush=True)
    text_encoder_bench()
    print(
        "\n== Video model: one 2-second clip at batch one (target 0.5 s at 20 steps), model FLOP utilization ==",
        flush=True,
    )
    pipeline = VideoPipeline.from_pretrained()
    config = pipeline.config
    for steps in sorted({config.default_steps, max(config.default_steps, TARGET_STEPS)}):
        print(measure_speed(pipeline, steps=steps, guidance=config.default_guidance_scale, runs=10))
    print("autoencoder in float32 against bfloat16, interleaved:", flush=True)
    print(compare_precisions(DEFAULT_WEIGHTS_DIR, steps=TARGET_STEPS, guidance=None, runs=10))
    print("\n== Whole job through a running Kino ==", flush=True)
    job_latency_bench()
    print("\n== FeedRanker ==", flush=True)
    ranker_bench()
    print("\n== Ray Serve path vs single process ==", flush=True)
    serve_overhead_bench()
    if not args.quick:
        from services.denoiser.bench import run_bench as engine_bench

        print("\n== Denoiser engine vs per-request serving ==", flush=True)
        engine_bench()
    return 0


if __name__ == "__main__":
    sys.exit(main())
