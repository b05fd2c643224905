"""The compact text encoder export: what a GPU machine without the encoder package trains with."""

import numpy as np
import pytest

from services.text_encoder.backends import load_default_backend
from training.compact_encoder import CompactEncoder, export, world_texts


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> CompactEncoder:
    out = tmp_path_factory.mktemp("compact_minilm")
    manifest = export(out, check_texts=200)
    assert manifest["vocabulary"] < 500  # a few hundred word pieces, not 30,522
    return CompactEncoder(out)


def test_compact_encoder_gives_the_full_encoders_token_embeddings_for_world_captions(compact):
    texts = world_texts(samples=50, seed=7)[-64:]
    full = load_default_backend().encode(texts)
    mine = compact.encode(texts)
    for a, b in zip(full, mine, strict=True):
        assert a.tokens.shape == b.tokens.shape  # the same word pieces, special tokens included
        np.testing.assert_allclose(b.tokens, a.tokens, atol=0.02)
        np.testing.assert_allclose(b.pooled, a.pooled, atol=0.005)
    assert compact.dim == load_default_backend().dim


def test_compact_encoder_refuses_words_outside_its_vocabulary(compact):
    with pytest.raises(ValueError, match="outside the compact encoder's vocabulary"):
        compact.encode(["a purple hexagon spinning"])


def test_missing_export_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="compact_encoder export"):
        CompactEncoder(tmp_path)
