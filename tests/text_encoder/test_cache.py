"""The prompt LRU."""

import numpy as np
import pytest

from services.text_encoder.backends import EncodedText
from services.text_encoder.cache import PromptCache


def _encoded(value: float) -> EncodedText:
    return EncodedText(
        tokens=np.full((2, 4), value, np.float32), pooled=np.full(4, value, np.float32), truncated=False
    )


def test_hits_and_misses_are_counted():
    cache = PromptCache(4)
    assert cache.get("a cat") is None
    entry = _encoded(1.0)
    cache.put("a cat", entry)
    assert cache.get("a cat") is entry
    assert cache.get("A cat") is None  # keyed by the exact text
    assert (cache.hits, cache.misses) == (1, 2)


def test_least_recently_used_entry_is_evicted():
    cache = PromptCache(2)
    cache.put("one", _encoded(1))
    cache.put("two", _encoded(2))
    cache.get("one")  # "two" is now the least recently used
    cache.put("three", _encoded(3))
    assert len(cache) == 2
    assert cache.get("two") is None
    assert cache.get("one") is not None and cache.get("three") is not None


def test_capacity_zero_disables_the_cache():
    cache = PromptCache(0)
    cache.put("a cat", _encoded(1))
    assert len(cache) == 0 and cache.get("a cat") is None


def test_negative_capacity_is_rejected():
    with pytest.raises(ValueError):
        PromptCache(-1)
