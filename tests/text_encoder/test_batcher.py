"""The dynamic batcher, driven by the real MiniLM through a recording wrapper."""

import asyncio
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from services.text_encoder.batcher import BatcherClosed, DynamicBatcher
from tests.text_encoder.helpers import RecordingBackend


async def test_concurrent_submits_share_one_forward_pass(recording, minilm):
    batcher = DynamicBatcher(recording.encode, max_batch=32, max_wait_ms=20)
    texts = [f"prompt number {i}" for i in range(8)]
    results = await asyncio.gather(*(batcher.submit(t) for t in texts))
    await batcher.close()
    assert [len(call) for call in recording.calls] == [8]
    # Every caller gets the encoding of its own text.
    for text, result in zip(texts, results, strict=True):
        np.testing.assert_allclose(result.pooled, minilm.encode([text])[0].pooled, atol=1e-5)


async def test_batches_never_exceed_max_batch(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=4, max_wait_ms=20)
    await asyncio.gather(*(batcher.submit(f"text {i}") for i in range(10)))
    await batcher.close()
    assert [len(call) for call in recording.calls] == [4, 4, 2]
    assert [t for call in recording.calls for t in call] == [f"text {i}" for i in range(10)]


async def test_a_full_batch_does_not_wait(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=4, max_wait_ms=60_000)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(batcher.submit(f"t{i}") for i in range(4))), timeout=30)
    assert time.monotonic() - started < 30
    await batcher.close()


async def test_a_lone_text_waits_at_most_max_wait(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=32, max_wait_ms=50)
    started = time.monotonic()
    await batcher.submit("alone")
    elapsed = time.monotonic() - started
    await batcher.close()
    assert recording.calls == [["alone"]]
    assert 0.05 <= elapsed < 5


async def test_texts_arriving_during_a_batch_form_the_next_one(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=32, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit("first"))
    while not recording.calls:  # the first batch is now running in its thread
        await asyncio.sleep(0.001)
    rest = [asyncio.create_task(batcher.submit(f"later {i}")) for i in range(5)]
    await asyncio.gather(first, *rest)
    await batcher.close()
    assert [len(call) for call in recording.calls] == [1, 5]


async def test_backend_error_reaches_exactly_the_callers_of_that_batch(minilm):
    failing = RecordingBackend(minilm, fail_on="boom")
    batcher = DynamicBatcher(failing.encode, max_batch=2, max_wait_ms=20)
    results = await asyncio.gather(
        *(batcher.submit(t) for t in ["boom", "unlucky", "fine", "also fine"]), return_exceptions=True
    )
    assert failing.calls == [["boom", "unlucky"], ["fine", "also fine"]]
    assert [type(r).__name__ for r in results[:2]] == ["RuntimeError", "RuntimeError"]
    assert all(r.pooled.shape == (384,) for r in results[2:])
    # The batcher keeps serving after a failed batch.
    assert (await batcher.submit("after")).pooled.shape == (384,)
    await batcher.close()


async def test_a_cancelled_caller_is_dropped_and_the_batcher_keeps_going(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=32, max_wait_ms=100)
    gone = asyncio.create_task(batcher.submit("gone"))
    stays = asyncio.create_task(batcher.submit("stays"))
    await asyncio.sleep(0.01)  # both are queued; the batch is still collecting
    gone.cancel()
    result = await stays
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert result.pooled.shape == (384,)
    assert recording.calls == [["stays"]]
    assert (await batcher.submit("next")).num_tokens > 0
    await batcher.close()


async def test_a_caller_cancelled_while_its_batch_runs_does_not_break_the_batch(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=32, max_wait_ms=10)
    gone = asyncio.create_task(batcher.submit("gone"))
    stays = asyncio.create_task(batcher.submit("stays"))
    while not recording.calls:
        await asyncio.sleep(0.001)
    gone.cancel()
    assert (await stays).pooled.shape == (384,)
    assert recording.calls == [["gone", "stays"]]
    await batcher.close()


async def test_close_finishes_queued_texts_then_refuses_new_ones(recording):
    batcher = DynamicBatcher(recording.encode, max_batch=2, max_wait_ms=1000)
    queued = [asyncio.create_task(batcher.submit(f"q{i}")) for i in range(5)]
    await asyncio.sleep(0)
    await batcher.close()
    assert all(task.done() and task.result().pooled.shape == (384,) for task in queued)
    assert sum(len(call) for call in recording.calls) == 5
    with pytest.raises(BatcherClosed):
        await batcher.submit("too late")


async def test_batch_sizes_and_queue_wait_are_measured(recording):
    def count(name):
        return REGISTRY.get_sample_value(name) or 0.0

    batches, texts = (
        count("kino_text_encoder_batch_size_texts_count"),
        count("kino_text_encoder_batch_size_texts_sum"),
    )
    waits = count("kino_text_encoder_queue_wait_seconds_count")
    batcher = DynamicBatcher(recording.encode, max_batch=32, max_wait_ms=5)
    await asyncio.gather(*(batcher.submit(f"m{i}") for i in range(6)))
    await batcher.close()
    assert count("kino_text_encoder_batch_size_texts_count") - batches == 1
    assert count("kino_text_encoder_batch_size_texts_sum") - texts == 6
    assert count("kino_text_encoder_queue_wait_seconds_count") - waits == 6


def test_bad_limits_are_rejected(recording):
    with pytest.raises(ValueError):
        DynamicBatcher(recording.encode, max_batch=0, max_wait_ms=1)
    with pytest.raises(ValueError):
        DynamicBatcher(recording.encode, max_batch=1, max_wait_ms=-1)
