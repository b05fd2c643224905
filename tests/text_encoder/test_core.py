"""TextEncoderCore: validation, the prompt cache, batching of requests, the response's tensors."""

import asyncio

import numpy as np
import pytest

from kino.v1 import text_encoder_pb2
from services.common.errors import KinoError
from services.common.settings import TextEncoderSettings
from services.common.tensors import from_proto
from services.text_encoder.core import TextEncoderCore, backend_from_settings
from tests.text_encoder.helpers import save_tiny_bert


@pytest.fixture
async def core(recording):
    core = TextEncoderCore(recording, max_batch=32, max_wait_ms=10, cache_entries=16)
    yield core
    await core.close()


def request(*texts, include_tokens=False):
    return text_encoder_pb2.EncodeRequest(texts=list(texts), include_tokens=include_tokens)


async def test_response_carries_pooled_vectors_and_tokens(core, minilm):
    texts = ["a red cube bounces", "a long slow pan across a misty lake at dawn"]
    response = await core.encode(request(*texts, include_tokens=True))
    assert (response.model, response.dim) == ("all-MiniLM-L6-v2", 384)
    expected = minilm.encode(texts)
    for embedding, reference in zip(response.embeddings, expected, strict=True):
        pooled = from_proto(embedding.pooled, field="pooled", dtype=np.float32, ndim=1)
        tokens = from_proto(embedding.tokens, field="tokens", dtype=np.float32, ndim=2)
        np.testing.assert_allclose(pooled, reference.pooled, atol=1e-5)
        np.testing.assert_allclose(tokens, reference.tokens, atol=1e-4)
        assert embedding.num_tokens == tokens.shape[0]
        assert not embedding.truncated and not embedding.cached


async def test_tokens_are_left_out_unless_asked_for(core):
    embedding = (await core.encode(request("a cat"))).embeddings[0]
    assert not embedding.HasField("tokens")
    assert embedding.num_tokens == 4 and embedding.pooled.shape == [384]


async def test_repeated_prompts_come_from_the_cache(core, recording):
    first = await core.encode(request("a dog runs", "a cat sleeps"))
    second = await core.encode(request("a cat sleeps", "a bird sings"))
    assert recording.calls == [["a dog runs", "a cat sleeps"], ["a bird sings"]]
    assert [e.cached for e in second.embeddings] == [True, False]
    assert second.embeddings[0].pooled == first.embeddings[1].pooled
    assert (core.cache.hits, core.cache.misses) == (1, 3)


async def test_a_prompt_repeated_in_one_request_is_encoded_once(core, recording):
    response = await core.encode(request("same", "other", "same"))
    assert recording.calls == [["same", "other"]]
    assert response.embeddings[0] == response.embeddings[2]


async def test_concurrent_requests_share_forward_passes(core, recording):
    responses = await asyncio.gather(*(core.encode(request(f"caller {i} prompt")) for i in range(8)))
    assert len(recording.calls) < 8
    assert sum(len(call) for call in recording.calls) == 8
    assert all(len(r.embeddings) == 1 for r in responses)


async def test_long_prompt_reports_truncation(core):
    embedding = (await core.encode(request(" ".join(["word"] * 300), include_tokens=True))).embeddings[0]
    assert embedding.truncated and embedding.num_tokens == 256
    assert list(embedding.tokens.shape) == [256, 384]


@pytest.mark.parametrize(
    ("texts", "reason", "metadata"),
    [
        ([], "FIELD_REQUIRED", {"field": "texts"}),
        (["x"] * 65, "OUT_OF_RANGE", {"field": "texts", "value": "65", "min": "1", "max": "64"}),
        (["fine", "   \n"], "FIELD_REQUIRED", {"field": "texts[1]"}),
        (["fine", ""], "FIELD_REQUIRED", {"field": "texts[1]"}),
        (
            ["fine", "\u200b\u200b\u00ad"],
            "FIELD_REQUIRED",
            {"field": "texts[1]"},
        ),  # the tokenizer drops them all
        (["fine", "\u0301\ufe0f\u034f"], "FIELD_REQUIRED", {"field": "texts[1]"}),  # marks with no letter
        (["y" * 2001], "PROMPT_TOO_LONG", {"field": "texts[0]", "length": "2001", "max": "2000"}),
    ],
)
async def test_invalid_requests_are_refused_before_encoding(core, recording, texts, reason, metadata):
    with pytest.raises(KinoError) as raised:
        await core.encode(request(*texts))
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert (raised.value.reason, raised.value.metadata) == (reason, metadata)
    assert recording.calls == []


async def test_limits_are_inclusive(core):
    response = await core.encode(request(*(f"p{i}" for i in range(64))))
    assert len(response.embeddings) == 64
    assert len((await core.encode(request("z" * 2000))).embeddings) == 1


def test_backend_comes_from_settings(minilm, tmp_path):
    assert backend_from_settings(TextEncoderSettings()) is minilm
    save_tiny_bert(tmp_path)
    local = backend_from_settings(TextEncoderSettings(backend="huggingface", model_dir=tmp_path))
    assert (local.name, local.dim) == (tmp_path.name, 32)
    with pytest.raises(ValueError, match="model_dir"):
        backend_from_settings(TextEncoderSettings(backend="huggingface"))
