"""The ranking model: shapes, save/load, the shipped weights, and the content-only fallback."""

import logging

import numpy as np
import pytest
import torch

from services.ranker.core import RankerCore, scorer_from_weights
from services.ranker.features import (
    FEATURE_NAMES,
    NUM_FEATURES,
    UserProfile,
    build_profile,
    candidate_features,
)
from services.ranker.items import ItemCatalog, ItemRecord, similarity_dtype
from services.ranker.model import (
    DEFAULT_WEIGHTS_DIR,
    FeedRankerModel,
    RankerConfig,
    load_ranker,
    multitask_loss,
    save_ranker,
)
from services.ranker.scoring import ContentScorer, ModelScorer
from services.ranker.store import COUNTERS, MemoryFeatureStore, UserState


def test_forward_shapes_and_score():
    torch.manual_seed(0)
    model = FeedRankerModel(RankerConfig(embedding_dim=32)).eval()
    taste, items, dense = torch.randn(1, 32), torch.randn(7, 32), torch.randn(7, NUM_FEATURES)
    logits = model(taste, items, dense)
    assert logits.shape == (7, 3)
    heads = model.predict(taste, items, dense)
    assert heads.like.shape == (7,) and bool(((heads.watch > 0) & (heads.watch < 1)).all())
    expected = heads.watch + 2 * heads.like + 4 * heads.remix
    torch.testing.assert_close(model.score(heads), expected)
    loss, per_head = multitask_loss(logits, torch.rand(7, 3).round())
    assert loss.ndim == 0 and set(per_head) == {"watch", "like", "remix"}


def test_cached_item_features_give_the_same_heads_as_forward():
    torch.manual_seed(2)
    model = FeedRankerModel(RankerConfig(embedding_dim=32)).eval()
    model.set_feature_stats(torch.randn(NUM_FEATURES), torch.rand(NUM_FEATURES) + 0.5)
    taste, items, dense = torch.randn(1, 32), torch.randn(9, 32), torch.randn(9, NUM_FEATURES)
    with torch.inference_mode():
        direct = model.predict(taste, items, dense)
        cached = model.predict_cached(taste, model.item_features(items), dense)
    for head in ("watch", "like", "remix"):
        torch.testing.assert_close(getattr(cached, head), getattr(direct, head), rtol=1e-5, atol=1e-6)


def _record(name: str, embedding: np.ndarray) -> ItemRecord:
    return ItemRecord(name, "c", embedding, 0.0, ("ai-generated",), "", 10.0, "")


def test_model_scorer_recomputes_a_cached_video_after_its_embedding_changes():
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    model = FeedRankerModel(RankerConfig(embedding_dim=16)).eval()
    unit = lambda: (v := rng.normal(size=16).astype(np.float32)) / np.linalg.norm(v)  # noqa: E731
    catalog = ItemCatalog(16)
    catalog.upsert([_record(f"videos/{i}", unit()) for i in range(5)])
    scorer = ModelScorer(model)
    profile = build_profile(UserState(positives=[("videos/0", 1.0)]), catalog)
    rows = np.array([3, 1, 4, 1])

    def scores(profile: UserProfile) -> tuple[np.ndarray, np.ndarray]:
        features = candidate_features(profile, catalog, rows, np.zeros((rows.size, len(COUNTERS))), 0.0)
        with torch.inference_mode():
            heads = model.predict(
                torch.from_numpy(profile.model_taste[None]),
                torch.from_numpy(features.item_vectors),
                torch.from_numpy(features.dense),
            )
        return scorer.score(profile, features), model.score(heads).numpy()

    np.testing.assert_allclose(*scores(profile), rtol=1e-5)
    catalog.upsert([_record("videos/1", unit())])  # same row, new embedding
    np.testing.assert_allclose(*scores(profile), rtol=1e-5)


def test_similarity_features_match_float32_cosines_in_whichever_dtype_the_cpu_runs_faster():
    rng = np.random.default_rng(5)
    unit = lambda: (v := rng.normal(size=384).astype(np.float32)) / np.linalg.norm(v)  # noqa: E731
    catalog = ItemCatalog(384)
    catalog.upsert([_record(f"videos/{i}", unit()) for i in range(40)])
    assert catalog.similarity_table.dtype == similarity_dtype() in (torch.float32, torch.bfloat16)
    state = UserState(positives=[("videos/0", 1.0), ("videos/7", 2.0)], negatives=["videos/9"])
    profile = build_profile(state, catalog)
    rows = np.arange(10, 40)
    features = candidate_features(profile, catalog, rows, np.zeros((rows.size, len(COUNTERS))), 0.0)
    exact = catalog.embeddings[rows] @ catalog.embeddings[[0, 7]].T  # (30, 2)
    index = {name: i for i, name in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(features.dense[:, index["max_cos_positive"]], exact.max(axis=1), atol=0.01)
    np.testing.assert_allclose(
        features.dense[:, index["cos_taste"]], catalog.embeddings[rows] @ profile.vector, atol=0.01
    )


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = FeedRankerModel(RankerConfig(embedding_dim=32))
    model.set_feature_stats(torch.randn(NUM_FEATURES), torch.rand(NUM_FEATURES) + 0.5)
    save_ranker(model.eval(), tmp_path, {"note": "test"})
    loaded = load_ranker(tmp_path)
    x = (torch.randn(1, 32), torch.randn(4, 32), torch.randn(4, NUM_FEATURES))
    torch.testing.assert_close(loaded(*x), model(*x))


def test_missing_weights_fall_back_to_content_scoring_with_a_log_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        scorer = scorer_from_weights(tmp_path / "nothing-here")
    assert isinstance(scorer, ContentScorer)
    assert "content-only fallback" in caplog.text


async def test_a_core_without_weights_still_ranks(tmp_path):
    core = RankerCore(MemoryFeatureStore(), scorer_from_weights(tmp_path))
    page = await core.rank_page("anyone")
    assert page.rows == []  # empty catalog: an empty page, not an error
    await core.close()


@pytest.mark.skipif(
    not (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file(), reason="weights not trained yet"
)
def test_the_shipped_weights_load_by_default():
    scorer = scorer_from_weights(None)
    assert isinstance(scorer, ModelScorer)
    assert sum(p.numel() for p in scorer.model.parameters()) < 500_000
    assert (DEFAULT_WEIGHTS_DIR / "model.safetensors").stat().st_size < 2_000_000
    np.testing.assert_array_equal(scorer.model.config.head_weights, (1.0, 2.0, 4.0))


@pytest.mark.parametrize("pinned", ["float32", "bfloat16"])
def test_the_similarity_dtype_can_be_pinned_and_a_wrong_name_is_refused(pinned):
    from services.common.settings import load_settings
    from services.ranker.items import SIMILARITY_DTYPES, pin_similarity_dtype

    try:
        pin_similarity_dtype(pinned)
        assert similarity_dtype() == SIMILARITY_DTYPES[pinned]
        with pytest.raises(ValueError, match="float32"):
            pin_similarity_dtype("float16")
        with pytest.raises(ValueError, match="float32"):
            load_settings(env={"KINO_RANKER__SIMILARITY_DTYPE": "float16"})
    finally:
        pin_similarity_dtype("auto")  # the next caller measures again, as a process does
