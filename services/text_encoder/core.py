"""The TextEncoder service without its transport: EncodeRequest in, EncodeResponse out.

The gRPC servicer and the Ray Serve deployment both delegate here. A request's texts are
validated, looked up in the prompt cache, and the misses go through the dynamic batcher, where
they share forward passes with the texts of concurrent requests.
"""

from __future__ import annotations

import asyncio
import logging

from kino.v1 import text_encoder_pb2
from services.common.errors import invalid_argument, out_of_range
from services.common.settings import TextEncoderSettings
from services.common.tensors import to_proto
from services.common.text import is_blank
from services.text_encoder import metrics
from services.text_encoder.backends import (
    EncodedText,
    EncoderBackend,
    HuggingFaceEncoder,
    load_default_backend,
)
from services.text_encoder.batcher import DynamicBatcher
from services.text_encoder.cache import PromptCache

log = logging.getLogger(__name__)

MAX_TEXTS = 64  # per request, as documented in text_encoder.proto
MAX_TEXT_CHARS = 2000


class TextEncoderCore:
    def __init__(
        self, backend: EncoderBackend, *, max_batch: int, max_wait_ms: float, cache_entries: int
    ) -> None:
        self.backend = backend
        self.cache = PromptCache(cache_entries)
        self.batcher = DynamicBatcher(backend.encode, max_batch=max_batch, max_wait_ms=max_wait_ms)

    @classmethod
    def from_settings(cls, settings: TextEncoderSettings) -> TextEncoderCore:
        return cls(
            backend_from_settings(settings),
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            cache_entries=settings.cache_entries,
        )

    async def warmup(self) -> None:
        """One forward pass, so the first real request does not pay for lazy initialization."""
        await asyncio.to_thread(self.backend.encode, ["warm-up"])

    async def close(self) -> None:
        await self.batcher.close()

    async def encode(self, request: text_encoder_pb2.EncodeRequest) -> text_encoder_pb2.EncodeResponse:
        texts = list(request.texts)
        _validate(texts)
        encoded: dict[str, EncodedText] = {}
        misses: list[str] = []
        for text in dict.fromkeys(texts):  # a prompt repeated within one request is encoded once
            hit = self.cache.get(text)
            if hit is None:
                misses.append(text)
            else:
                encoded[text] = hit
        metrics.CACHE_HITS.inc(len(encoded))
        metrics.CACHE_MISSES.inc(len(misses))
        if misses:
            results = await asyncio.gather(*(self.batcher.submit(text) for text in misses))
            for text, result in zip(misses, results, strict=True):
                self.cache.put(text, result)
                encoded[text] = result
        missed = set(misses)
        return text_encoder_pb2.EncodeResponse(
            embeddings=[
                _embedding(encoded[text], cached=text not in missed, include_tokens=request.include_tokens)
                for text in texts
            ],
            model=self.backend.name,
            dim=self.backend.dim,
        )


def backend_from_settings(settings: TextEncoderSettings) -> EncoderBackend:
    if settings.backend == "minilm":
        return load_default_backend()
    if settings.model_dir is None:
        raise ValueError("text_encoder.model_dir is required when text_encoder.backend is 'huggingface'")
    return HuggingFaceEncoder(settings.model_dir)


def _validate(texts: list[str]) -> None:
    if not texts:
        raise invalid_argument("FIELD_REQUIRED", "texts is required: send 1 to 64 texts", field="texts")
    if len(texts) > MAX_TEXTS:
        raise out_of_range("texts", len(texts), 1, MAX_TEXTS)
    for i, text in enumerate(texts):
        if is_blank(text):
            raise invalid_argument(
                "FIELD_REQUIRED", f"texts[{i}] is empty or has no visible characters", field=f"texts[{i}]"
            )
        if len(text) > MAX_TEXT_CHARS:
            raise invalid_argument(
                "PROMPT_TOO_LONG",
                f"texts[{i}] has {len(text)} characters; the limit is {MAX_TEXT_CHARS}",
                field=f"texts[{i}]",
                length=len(text),
                max=MAX_TEXT_CHARS,
            )


def _embedding(encoded: EncodedText, *, cached: bool, include_tokens: bool) -> text_encoder_pb2.TextEmbedding:
    return text_encoder_pb2.TextEmbedding(
        tokens=to_proto(encoded.tokens) if include_tokens else None,
        pooled=to_proto(encoded.pooled),
        num_tokens=encoded.num_tokens,
        truncated=encoded.truncated,
        cached=cached,
    )
