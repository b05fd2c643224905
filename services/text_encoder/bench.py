"""TextEncoder benchmark: latency of one 32-prompt Encode, and throughput under 8 concurrent callers.

Everything goes through `TextEncoderCore` (validation, batcher, response tensors) with the prompt
cache disabled and every prompt distinct, so no number comes from a cache. Each measurement is
printed next to its baseline from the same run: the bare forward pass for latency, the same
callers with batching turned off (max_batch 1) for throughput.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import statistics
import time
from collections.abc import Iterator

import torch
from prometheus_client import REGISTRY

from kino.v1 import text_encoder_pb2
from services.common.settings import TextEncoderSettings
from services.text_encoder.backends import EncoderBackend, load_default_backend
from services.text_encoder.core import TextEncoderCore

LATENCY_PROMPTS = 32
LATENCY_RUNS = 15
LATENCY_TARGET_MS = 100.0
CALLERS = 8
REQUESTS_PER_CALLER = 40


def video_prompts(seed: int = 0) -> Iterator[str]:
    """Distinct prompts shaped like the platform's (subject, action, place, camera, style)."""
    subjects = ["a red fox", "two astronauts", "an old fisherman", "a paper boat", "a golden retriever",
                "a street dancer", "a hummingbird", "a vintage car", "a glass robot", "a child with a kite",
                "a herd of horses", "a lighthouse keeper"]  # fmt: skip
    actions = ["runs through", "drifts across", "spins slowly in", "waits alone in", "leaps over a puddle in",
               "explores", "dances in", "races through", "sleeps in", "looks up at the sky in"]  # fmt: skip
    places = ["a snowy pine forest", "a neon-lit alley in the rain", "a sunflower field at dusk",
              "a crowded night market", "the surface of the moon", "a flooded cathedral", "a desert canyon",
              "a quiet library", "a coral reef", "a rooftop garden in Tokyo"]  # fmt: skip
    cameras = ["slow dolly in", "handheld close-up", "aerial drone shot", "static wide shot",
               "tracking shot from the side", "low-angle shot"]  # fmt: skip
    styles = ["cinematic lighting", "watercolor style", "35mm film grain", "hyperrealistic, 4k",
              "stop-motion look", "soft pastel colors"]  # fmt: skip
    combos = list(itertools.product(subjects, actions, places, cameras, styles))
    random.Random(seed).shuffle(combos)
    for subject, action, place, camera, style in combos:
        yield f"{subject} {action} {place}, {camera}, {style}"


def run_bench() -> dict:
    """Runs the benchmark on the shipped all-MiniLM-L6-v2, prints a report, returns the numbers."""
    load_average = os.getloadavg()[0]
    started = time.perf_counter()
    backend = load_default_backend()
    load_s = time.perf_counter() - started
    result = asyncio.run(_measure(backend))
    result["load_seconds"] = load_s
    result["load_average_1m"] = load_average
    _report(backend, result)
    return result


async def _measure(backend: EncoderBackend) -> dict:
    prompts = video_prompts()
    settings = TextEncoderSettings()

    def take(n: int) -> list[str]:
        return list(itertools.islice(prompts, n))

    core = TextEncoderCore(
        backend, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, cache_entries=0
    )
    for _ in range(3):
        await core.encode(text_encoder_pb2.EncodeRequest(texts=take(LATENCY_PROMPTS), include_tokens=True))

    # Alternating the two measurements keeps a noisy neighbour from favouring either one.
    forward_ms, encode_ms, token_counts = [], [], []
    for _ in range(LATENCY_RUNS):
        texts = take(LATENCY_PROMPTS)
        t0 = time.perf_counter()
        backend.encode(texts)
        forward_ms.append((time.perf_counter() - t0) * 1000)

        request = text_encoder_pb2.EncodeRequest(texts=take(LATENCY_PROMPTS), include_tokens=True)
        t0 = time.perf_counter()
        response = await core.encode(request)
        encode_ms.append((time.perf_counter() - t0) * 1000)
        token_counts.extend(e.num_tokens for e in response.embeddings)
    await core.close()

    batched = await _concurrent_callers(
        backend, take, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms
    )
    unbatched = await _concurrent_callers(backend, take, max_batch=1, max_wait_ms=0)
    return {
        "encode_32_median_ms": statistics.median(encode_ms),
        "encode_32_p90_ms": _percentile(encode_ms, 0.9),
        "forward_32_median_ms": statistics.median(forward_ms),
        "mean_tokens_per_prompt": statistics.fmean(token_counts),
        "latency_target_ms": LATENCY_TARGET_MS,
        "throughput_prompts_per_s": batched["prompts_per_s"],
        "throughput_unbatched_prompts_per_s": unbatched["prompts_per_s"],
        "batching_speedup": batched["prompts_per_s"] / unbatched["prompts_per_s"],
        "mean_batch_size": batched["mean_batch_size"],
        "request_p50_ms": batched["request_p50_ms"],
        "request_p99_ms": batched["request_p99_ms"],
        "unbatched_request_p50_ms": unbatched["request_p50_ms"],
    }


async def _concurrent_callers(backend: EncoderBackend, take, *, max_batch: int, max_wait_ms: float) -> dict:
    """CALLERS tasks, each sending REQUESTS_PER_CALLER one-prompt Encodes back to back."""
    core = TextEncoderCore(backend, max_batch=max_batch, max_wait_ms=max_wait_ms, cache_entries=0)
    work = [take(REQUESTS_PER_CALLER) for _ in range(CALLERS)]
    latencies_ms: list[float] = []

    async def caller(texts: list[str]) -> None:
        for text in texts:
            t0 = time.perf_counter()
            await core.encode(text_encoder_pb2.EncodeRequest(texts=[text]))
            latencies_ms.append((time.perf_counter() - t0) * 1000)

    batches_before, texts_before = _batch_counts()
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(texts) for texts in work))
    elapsed = time.perf_counter() - t0
    await core.close()
    batches_after, texts_after = _batch_counts()
    return {
        "prompts_per_s": CALLERS * REQUESTS_PER_CALLER / elapsed,
        "mean_batch_size": (texts_after - texts_before) / (batches_after - batches_before),
        "request_p50_ms": statistics.median(latencies_ms),
        "request_p99_ms": _percentile(latencies_ms, 0.99),
    }


def _batch_counts() -> tuple[float, float]:
    """(forward passes, texts) so far, from the batcher's batch-size histogram."""
    name = "kino_text_encoder_batch_size_texts"
    return REGISTRY.get_sample_value(f"{name}_count") or 0.0, REGISTRY.get_sample_value(f"{name}_sum") or 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _report(backend: EncoderBackend, r: dict) -> None:
    verdict = "meets" if r["encode_32_median_ms"] < r["latency_target_ms"] else "MISSES"
    print(
        f"{backend.name}, torch {torch.__version__} on {torch.get_num_threads()} threads; "
        f"prompt cache off, every prompt distinct (mean {r['mean_tokens_per_prompt']:.1f} tokens)"
    )
    print(f"  machine load average before the run: {r['load_average_1m']:.2f} on {os.cpu_count()} CPUs")
    print(f"  load                            {r['load_seconds']:.2f} s")
    print(
        f"  Encode, 32 prompts              median {r['encode_32_median_ms']:.1f} ms, p90 {r['encode_32_p90_ms']:.1f} ms"
        f"  ({r['encode_32_median_ms'] / r['latency_target_ms']:.2f}x of the {r['latency_target_ms']:.0f} ms target: {verdict})"
    )
    print(
        f"  forward pass alone, 32 prompts  median {r['forward_32_median_ms']:.1f} ms"
        f"  (service overhead {r['encode_32_median_ms'] - r['forward_32_median_ms']:+.1f} ms)"
    )
    print(
        f"  {CALLERS} concurrent callers, batched  {r['throughput_prompts_per_s']:.0f} prompts/s"
        f"  (mean batch {r['mean_batch_size']:.1f}, request p50 {r['request_p50_ms']:.1f} ms, p99 {r['request_p99_ms']:.1f} ms)"
    )
    print(
        f"  {CALLERS} concurrent callers, max_batch 1  {r['throughput_unbatched_prompts_per_s']:.0f} prompts/s"
        f"  (request p50 {r['unbatched_request_p50_ms']:.1f} ms)  -> batching {r['batching_speedup']:.2f}x"
    )
