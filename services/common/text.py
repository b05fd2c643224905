"""What counts as text. A prompt of zero-width spaces is no prompt: `str.strip` keeps such characters, the
tokenizer drops them, and the model would be given a prompt with no words in it."""

from __future__ import annotations

import re
import unicodedata

from services.common.errors import invalid_argument

# Separators (spaces, line and paragraph breaks), control characters, format characters (zero-width
# spaces and joiners, byte-order marks, soft hyphens, direction marks), and non-spacing marks (combining
# accents, variation selectors), which only change the character before them: nothing a reader sees.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn"})


def is_blank(text: str) -> bool:
    """True when no character of `text` is visible."""
    return all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)


# C0 controls and DEL. PostgreSQL text cannot hold NUL at all, the Redis store separates names with
# newlines, and none of them belongs in a user name, a video name, an idempotency key or a display name.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
# Metadata carries the offending value; a megabyte of it helps nobody.
MAX_ECHOED_CHARS = 200


def check_no_control_characters(field: str, value: str) -> None:
    """MALFORMED_NAME when a single-line identifier (a user, a key, a display name) holds a control
    character: refused where it arrives, not left to fail in a store."""
    found = CONTROL_CHARACTER.search(value)
    if found is not None:
        code_point = f"U+{ord(found.group()):04X}"
        raise invalid_argument(
            "MALFORMED_NAME",
            f"{field} contains the control character {code_point} at position {found.start()}",
            field=field,
            value=value[:MAX_ECHOED_CHARS].encode("unicode_escape").decode("ascii"),
            detail=f"control character {code_point}",
        )
