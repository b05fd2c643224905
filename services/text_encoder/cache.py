"""A bounded LRU of encoded prompts, keyed by the exact prompt text.

Prompts repeat on the platform (remixes, retries, the ranker re-embedding a video's prompt), and a
hit skips the model entirely. Not thread-safe: the core uses it from the event loop only.
"""

from __future__ import annotations

from collections import OrderedDict

from services.text_encoder.backends import EncodedText


class PromptCache:
    """Least-recently-used map from prompt text to its `EncodedText`; `capacity` 0 disables it."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, EncodedText] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str) -> EncodedText | None:
        """The cached encoding of `text`, now most recently used, or None; counts a hit or a miss."""
        encoded = self._entries.get(text)
        if encoded is None:
            self.misses += 1
            return None
        self._entries.move_to_end(text)
        self.hits += 1
        return encoded

    def put(self, text: str, encoded: EncodedText) -> None:
        """Stores `encoded`, evicting the least recently used entry when full."""
        if self.capacity == 0:
            return
        self._entries[text] = encoded
        self._entries.move_to_end(text)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
