"""What counts as text. A prompt of zero-width spaces is no prompt: `str.strip` keeps such characters, the
tokenizer drops them, and the model would be given a prompt with no words in it."""

from __future__ import annotations

import unicodedata

# Separators (spaces, line and paragraph breaks), control characters, format characters (zero-width
# spaces and joiners, byte-order marks, soft hyphens, direction marks), and non-spacing marks (combining
# accents, variation selectors), which only change the character before them: nothing a reader sees.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn"})


def is_blank(text: str) -> bool:
    """True when no character of `text` is visible."""
    return all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)
