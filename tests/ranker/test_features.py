"""The taste regressed on a user's response history points at what they engaged with; without
enough history the model's taste input falls back to the positives."""

import numpy as np

from services.ranker.features import MIN_RESPONSE_VIDEOS, build_profile, regressed_taste
from services.ranker.items import ItemCatalog, ItemRecord
from services.ranker.store import UserState
from tests.ranker.conftest import DIM, TOPICS, topic_vector


def _catalog(count: int = 400) -> tuple[ItemCatalog, np.ndarray]:
    rng = np.random.default_rng(0)
    topics = np.arange(count) % TOPICS
    catalog = ItemCatalog(DIM)
    catalog.upsert(
        [
            ItemRecord(f"videos/v{i}", "c", topic_vector(int(t), rng), 0.0, (), "", 10.0, "")
            for i, t in enumerate(topics)
        ]
    )
    return catalog, topics


def test_a_taste_regressed_on_responses_ranks_the_engaged_topic_first():
    catalog, topics = _catalog()
    # Shown 80 videos of every topic; watched topic 2 through and liked some, ignored the rest.
    shown = np.arange(80)
    responses = []
    for row in shown:
        responses.append((f"videos/v{row}", 0.0))  # the impression
        if topics[row] == 2:
            responses += [(f"videos/v{row}", 1.0), (f"videos/v{row}", 2.0 * (row % 3 == 0))]
    taste = regressed_taste(responses[::-1], catalog)
    assert taste.shape == (DIM,) and abs(np.linalg.norm(taste) - 1) < 1e-5
    unseen = np.arange(80, 400)
    scores = catalog.embeddings[unseen] @ taste
    top = unseen[np.argsort(-scores)[:20]]
    assert (topics[top] == 2).all()


def test_too_short_a_history_or_unknown_videos_give_no_regressed_taste():
    catalog, _ = _catalog()
    few = [(f"videos/v{i}", float(i % 2)) for i in range(MIN_RESPONSE_VIDEOS - 1)]
    assert not regressed_taste(few, catalog).any()
    unknown = [(f"videos/gone{i}", 1.0) for i in range(50)]
    assert not regressed_taste(unknown, catalog).any()
    assert not regressed_taste([], ItemCatalog(DIM)).any()


def test_events_carry_the_objectives_response_values():
    from kino.v1 import ranker_pb2 as E
    from services.ranker.events import resolve_events

    catalog, _ = _catalog(40)
    request = E.IngestRequest(
        events=[
            E.FeedEvent(user="u", video="videos/v1", type=E.FEED_EVENT_TYPE_IMPRESSION),
            E.FeedEvent(user="u", video="videos/v1", type=E.FEED_EVENT_TYPE_WATCH, watch_seconds=15.0),
            E.FeedEvent(user="u", video="videos/v1", type=E.FEED_EVENT_TYPE_LIKE),
            E.FeedEvent(user="u", video="videos/v1", type=E.FEED_EVENT_TYPE_REMIX),
            E.FeedEvent(user="u", video="videos/v1", type=E.FEED_EVENT_TYPE_FOLLOW),
        ]
    )
    outcome = resolve_events(request, lambda name: catalog.records[catalog.index_of(name)], now=0.0)
    # Watch ratio capped at a full watch, then a like and a remix (events.RESPONSE_VALUES); a follow is
    # not a response.
    assert [e.response for e in outcome.events] == [0.0, 1.0, 0.25, 0.5, None]


def test_taste_coordinates_follow_rewritten_and_new_rows():
    catalog, _ = _catalog()
    mean, directions = catalog.taste_basis()
    rng = np.random.default_rng(1)
    # Rewrite one row's embedding and add a row, without the catalog doubling (the basis stays).
    catalog.upsert(
        [
            ItemRecord("videos/v5", "c", topic_vector(3, rng), 0.0, (), "", 10.0, ""),
            ItemRecord("videos/new", "c", topic_vector(1, rng), 0.0, (), "", 10.0, ""),
        ]
    )
    assert catalog.taste_basis()[1] is directions
    rows = np.array([0, 5, catalog.index_of("videos/new")])
    expected = (catalog.embeddings[rows] - mean) @ directions
    np.testing.assert_allclose(catalog.taste_coordinates(rows), expected, atol=1e-5)
    assert ItemCatalog(DIM).taste_coordinates(np.zeros(0, np.int64)) is None


def test_likes_without_impressions_give_the_model_the_positives_as_its_taste():
    """Too short a history to regress on: the model's taste input is the positives' mean, not zeros
    (the model never saw zeros beside positives, and ranked the liked topic no higher)."""
    catalog, topics = _catalog()
    liked = [f"videos/v{row}" for row in (2, 10, 18)]  # topic 2
    state = UserState(positives=[(video, 2.0) for video in liked], responses=[(v, 2.0) for v in liked])
    profile = build_profile(state, catalog)
    assert not regressed_taste(state.responses, catalog).any()
    np.testing.assert_array_equal(profile.model_taste, profile.vector)
    assert profile.model_taste.any()
    cold = build_profile(UserState(), catalog)
    assert not cold.model_taste.any()
