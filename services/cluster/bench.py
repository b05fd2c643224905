"""What Ray Serve adds to a unary RPC: TextEncoder.Encode of a cached prompt, Serve vs single process.

Both paths run at the same time in one process tree and are called alternately, one call in flight,
so machine noise lands on both alike. The prompt is cached after the first call, which leaves the
transport and dispatch cost: client -> grpc.aio server -> servicer in one case, client -> Serve's
gRPC proxy -> router -> replica actor in the other. Target: Serve adds at most 3 ms at the median.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kino.v1 import text_encoder_pb2, text_encoder_pb2_grpc
from services.cluster import catalog, routing
from services.cluster.local_ray import LocalRayConfig, start_kino_on_ray, stop_kino_on_ray
from services.common.server import KinoServer
from services.common.settings import load_settings
from services.text_encoder.servicer import registration as text_encoder_registration

TARGET_ADDED_MS = 3.0
PROMPT = "a red ball bounces twice on a wooden floor"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(calls: int, warmup: int, local_address: str, serve_address: str) -> dict[str, list[float]]:
    request = text_encoder_pb2.EncodeRequest(texts=[PROMPT])
    timings: dict[str, list[float]] = {"single process": [], "Ray Serve": []}
    async with (
        routing.insecure_channel(local_address) as local_channel,
        routing.insecure_channel(serve_address) as serve_channel,
    ):
        stubs = {
            "single process": text_encoder_pb2_grpc.TextEncoderStub(local_channel),
            "Ray Serve": text_encoder_pb2_grpc.TextEncoderStub(serve_channel),
        }
        for i in range(warmup + calls):
            for name, stub in stubs.items():
                start = time.perf_counter()
                response = await stub.Encode(request)
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    if not response.embeddings[0].cached:
                        raise RuntimeError(f"{name}: the prompt was not served from the cache")
                    timings[name].append(elapsed * 1000)
    return timings


def run_bench(calls: int = 300, warmup: int = 30) -> dict[str, float]:
    """Prints both paths' latency side by side and the median Serve adds; returns the numbers."""
    with tempfile.TemporaryDirectory(prefix="kino-bench-") as data_dir:
        settings = load_settings(
            data_dir=data_dir, server={"port": 0, "metrics_port": -1}, log_level="WARNING"
        )
        endpoint = start_kino_on_ray(
            settings,
            0,
            LocalRayConfig(num_cpus=2, metrics_dir=Path(data_dir) / "metrics"),
            [catalog.TEXT_ENCODER],
        )
        try:
            timings = asyncio.run(_run_both(settings, endpoint.address, calls, warmup))
        finally:
            stop_kino_on_ray()
    print(f"TextEncoder.Encode, cached prompt, {calls} calls per path, alternating, one in flight")
    print(f"{'path':<16} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    summary: dict[str, float] = {}
    for name, values in timings.items():
        p50, p90, p99 = (_percentile(values, q) for q in (0.5, 0.9, 0.99))
        print(f"{name:<16} {p50:>8.2f} {p90:>8.2f} {p99:>8.2f} {statistics.fmean(values):>8.2f}")
        summary[f"{name} p50 ms"] = p50
    added = summary["Ray Serve p50 ms"] - summary["single process p50 ms"]
    summary["added p50 ms"] = added
    verdict = "within" if added <= TARGET_ADDED_MS else "over"
    print(
        f"Serve adds {added:.2f} ms at the median ({verdict} the {TARGET_ADDED_MS:g} ms target, "
        f"{added / TARGET_ADDED_MS:.2f}x of it)"
    )
    return summary


async def _run_both(settings, serve_address: str, calls: int, warmup: int) -> dict[str, list[float]]:
    server = KinoServer(settings.server, [text_encoder_registration(settings)])
    await server.start()
    try:
        return await _measure(calls, warmup, server.address, serve_address)
    finally:
        await server.stop(0)


if __name__ == "__main__":
    run_bench()
    sys.exit(0)
