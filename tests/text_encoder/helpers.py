"""Test helpers: a recording wrapper around a real backend, and a tiny BERT saved to a directory."""

import threading

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from services.text_encoder.backends import EncodedText, EncoderBackend


class RecordingBackend(EncoderBackend):
    """Wraps a real backend and records the texts of every forward pass; fails batches that hold `fail_on`."""

    def __init__(self, inner: EncoderBackend, fail_on: str | None = None) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def encode(self, texts: list[str]) -> list[EncodedText]:
        with self._lock:
            self.calls.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"encoder failed on {self.fail_on!r}")
        return self.inner.encode(texts)


WORDS = ["a", "red", "cube", "circle", "bounces", "across", "the", "table", "slow", "##ly", "fast", "night"]


def save_tiny_bert(model_dir, max_position_embeddings=16):
    """A randomly initialized 2-layer BERT and its WordPiece tokenizer; returns both, reloaded."""
    vocab_file = model_dir / "vocab.txt"
    vocab_file.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
    )
    BertModel(config).eval().save_pretrained(model_dir)
    return BertModel.from_pretrained(model_dir).eval(), tokenizer
