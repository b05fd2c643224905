"""The taste regressed on a user's response history points at what they engaged with."""

import numpy as np

from services.ranker.features import MIN_RESPONSE_VIDEOS, regressed_taste
from services.ranker.items import ItemCatalog, ItemRecord
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
    # Watch ratio capped at a full watch, then 2 for a like and 4 for a remix; a follow is not a response.
    assert [e.response for e in outcome.events] == [0.0, 1.0, 2.0, 4.0, None]
