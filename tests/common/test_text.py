"""A prompt of invisible characters is no prompt, wherever a prompt is read."""

from services.common.text import is_blank
from services.gateway.validation import shot_prompt


def test_only_visible_characters_make_text():
    for blank in ("", " \n\t", "\u200b\u2060", "\ufeff", "\u00ad", "\u200e\u3000", "\u0301\u0301", "\ufe0f"):
        assert is_blank(blank), repr(blank)
    for text in ("a", " a ", "\u200ba", "ß", "猫", "🙂", "1", "e\u0301", "🙂\ufe0f"):
        assert not is_blank(text), repr(text)


def test_a_storyboard_subject_of_invisible_characters_is_no_subject():
    assert shot_prompt("\u200b ", "a circle moving left") == "a circle moving left"
    assert shot_prompt(" a red ball ", "moving left") == "a red ball. moving left"
