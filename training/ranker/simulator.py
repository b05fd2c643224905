"""A user simulator for the FeedRanker: synthetic users with latent tastes watch a synthetic catalog.

No public short-video interaction log can be downloaded here, so the ranker is trained and evaluated
on a simulated platform whose ground truth is known:

* Videos: prompts generated from a vocabulary of topics, subjects, styles and settings, encoded by
  the real TextEncoder (all-MiniLM-L6-v2 pooled vectors, 384-d), exactly as the gateway would do;
  `content="synthetic"` draws clustered unit vectors instead (fast, for tests). Each video also has a
  latent quality that content cannot reveal, a creator and a duration.
* Users: a taste vector in the content-embedding space (a mix of one to three topic centroids plus
  personal noise) and an activity level. The match of a user and a video is the standardized cosine
  of taste and embedding plus the video's quality, through a sigmoid: p(u, v) in (0, 1).
* Responses: position bias (the chance to really look at the k-th video of a page decays), fatigue
  (each of the last five impressions on the same topic multiplies the match by `fatigue`), watch ratio drawn around
  the match, likes, shares and remixes increasingly likely with the match, hides for bad matches,
  follows after likes.
* Time: new videos arrive all the time, by `arrivals_per_step` per simulated minute.

The oracle knows p(u, v): ranking by it is the ceiling the evaluation compares against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from kino.v1 import ranker_pb2
from services.common.tensors import to_proto

TOPICS = {
    "cats": ["a fluffy cat", "a kitten", "a cat in a box"],
    "dogs": ["a golden retriever", "a puppy", "a corgi"],
    "cooking": ["a chef making ramen", "pancakes on a griddle", "a pizza in a wood oven"],
    "space": ["an astronaut", "a rocket launch", "a nebula"],
    "ocean": ["a whale", "coral reef fish", "a sea turtle"],
    "cars": ["a vintage sports car", "a rally car", "a neon race car"],
    "dance": ["a breakdancer", "a ballet dancer", "a street dance crew"],
    "fantasy": ["a dragon", "a wizard casting a spell", "an enchanted castle"],
    "sports": ["a basketball dunk", "a soccer goal", "a skateboard trick"],
    "music": ["a guitarist on stage", "a drummer", "a piano player"],
    "nature": ["a waterfall in a forest", "a mountain at sunrise", "a field of flowers"],
    "city": ["a busy city street", "skyscrapers at night", "a subway train"],
    "robots": ["a humanoid robot", "a robot dog", "a giant mech"],
    "food art": ["a sushi platter", "a layered cake", "latte art"],
    "horror": ["a haunted house", "a creepy doll", "a foggy graveyard"],
    "comedy": ["a clumsy penguin", "a talking banana", "a goat yelling"],
}
STYLES = [
    "cinematic",
    "anime",
    "claymation",
    "watercolor",
    "pixel art",
    "photorealistic",
    "3D cartoon",
    "film noir",
]
ACTIONS = [
    "in slow motion",
    "close up",
    "time-lapse",
    "with dramatic lighting",
    "at golden hour",
    "in the rain",
]


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    content: str = "minilm"  # or "synthetic"
    num_users: int = 600
    initial_videos: int = 2000
    arrivals_per_step: int = 2
    num_creators: int = 300
    dim: int = 384
    quality_std: float = 0.6
    match_scale: float = 1.6  # steepness of the match in standardized cosine
    match_offset: float = -2.2  # a typical video is a poor match; a user's top few percent are good
    position_decay: float = 0.97  # P(look at the k-th video of a page) = position_decay ** k
    fatigue: float = 0.75  # match multiplier per same-topic video among the last five impressions
    page_size: int = 10


@dataclass
class Response:
    watch_ratio: float
    liked: bool
    shared: bool
    remixed: bool
    hidden: bool
    followed: bool


class World:
    """The simulated platform's ground truth: videos, users and how users respond."""

    def __init__(self, config: SimConfig, total_videos: int) -> None:
        self.config = config
        rng = self.rng = np.random.default_rng(config.seed)
        topic_names = list(TOPICS)
        self.topics = rng.integers(len(topic_names), size=total_videos)  # (V,)
        self.prompts = [
            f"{rng.choice(STYLES)} video of {rng.choice(TOPICS[topic_names[t]])} {rng.choice(ACTIONS)}"
            for t in self.topics
        ]
        self.embeddings = self._embed(topic_names)  # (V, D)
        self.quality = rng.normal(0, config.quality_std, total_videos)  # (V,)
        self.creators = rng.integers(config.num_creators, size=total_videos)  # (V,)
        self.durations = rng.uniform(6, 20, total_videos)  # (V,)
        centroids = np.stack(
            [self.embeddings[self.topics == t].mean(axis=0) for t in range(len(topic_names))]
        )
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        self.user_topics = [
            rng.choice(len(topic_names), size=rng.integers(1, 4), replace=False)
            for _ in range(config.num_users)
        ]
        tastes, topic_tastes = [], []
        for topics in self.user_topics:
            weights = rng.dirichlet(np.ones(len(topics)))
            topic_mix = weights @ centroids[topics]
            taste = topic_mix + 0.08 * rng.normal(size=centroids.shape[1])
            tastes.append(taste / np.linalg.norm(taste))
            topic_tastes.append(topic_mix / np.linalg.norm(topic_mix))
        self.tastes = np.stack(tastes).astype(np.float32)  # (U, D)
        # The taste without its personal component: what knowing a user's topics exactly would give.
        self.topic_tastes = np.stack(topic_tastes).astype(np.float32)  # (U, D)
        cos = self.tastes @ self.embeddings.T  # (U, V)
        self.cos_mean = cos.mean(axis=1)  # (U,)
        self.cos_std = cos.std(axis=1) + 1e-6
        self.activity = rng.gamma(2.0, 0.5, config.num_users)  # (U,)

    def _embed(self, topic_names: list[str]) -> np.ndarray:
        if self.config.content == "minilm":
            from services.text_encoder.backends import load_default_backend

            backend = load_default_backend()
            unique = sorted(set(self.prompts))
            vectors = {}
            for start in range(0, len(unique), 64):
                batch = unique[start : start + 64]
                for text, encoded in zip(batch, backend.encode(batch), strict=True):
                    vectors[text] = encoded.pooled
            return np.stack([vectors[p] for p in self.prompts]).astype(np.float32)
        centers = self.rng.normal(size=(len(topic_names), self.config.dim))
        x = centers[self.topics] + 0.9 * self.rng.normal(size=(len(self.topics), self.config.dim))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def match(self, user: int, videos: np.ndarray, with_quality: bool = True) -> np.ndarray:
        """p(u, v) for `videos` (N,): the oracle's knowledge. Without `with_quality`, what the taste
        alone says: the match of a video of average quality (an evaluation diagnostic)."""
        z = (self.embeddings[videos] @ self.tastes[user] - self.cos_mean[user]) / self.cos_std[user]
        c = self.config
        quality = self.quality[videos] if with_quality else 0.0
        return 1.0 / (1.0 + np.exp(-(c.match_scale * z + c.match_offset + quality)))

    def fatigued_match(
        self, user: int, videos: np.ndarray, recent_topics: list[int], with_quality: bool = True
    ) -> np.ndarray:
        """The match lowered by fatigue: each of the last five impressions on the video's topic."""
        return self.match(user, videos, with_quality) * self.fatigue_factor(videos, recent_topics)

    def fatigue_factor(self, videos: np.ndarray, recent_topics: list[int]) -> np.ndarray:
        """(N,): `fatigue` to the power of the last five impressions on each video's topic."""
        repeats = np.array([sum(t == topic for t in recent_topics[-5:]) for topic in self.topics[videos]])
        return self.config.fatigue**repeats

    def expected_gain(
        self, user: int, videos: np.ndarray, recent_topics: list[int], with_quality: bool = True
    ) -> np.ndarray:
        """E[watch ratio + 2 like + 4 remix] of the next video looked at: what the oracle ranks by."""
        return gain_of_match(self.fatigued_match(user, videos, recent_topics, with_quality))

    def respond(self, user: int, video: int, position: int, recent_topics: list[int]) -> Response:
        c, rng = self.config, self.rng
        p = float(self.fatigued_match(user, np.array([video]), recent_topics)[0])
        if rng.random() > c.position_decay**position:  # scrolled past without looking
            return Response(float(rng.uniform(0, 0.08)), False, False, False, False, False)
        return self._engage(p)

    def draw(self, user: int, videos: np.ndarray, recent_topics: list[int]) -> np.ndarray:
        """Drawn gains (N,) of each of `videos` looked at next, with full attention, by the user in their
        current state (fatigue included): held-out relevance labels."""
        gains = []
        for p in self.fatigued_match(user, videos, recent_topics):
            r = self._engage(float(p))
            gains.append(min(r.watch_ratio, 1.0) + 2 * r.liked + 4 * r.remixed)
        return np.array(gains)

    def _engage(self, p: float) -> Response:
        rng = self.rng
        watch = float(np.clip(p + rng.normal(0, 0.15), 0.0, 1.0))
        if rng.random() < 0.3 * p:
            watch += float(rng.uniform(0, 1))  # re-watch
        liked = rng.random() < 0.5 * p**2
        return Response(
            watch_ratio=watch,
            liked=liked,
            shared=rng.random() < 0.08 * p**2,
            remixed=rng.random() < 0.08 * p**3,
            hidden=rng.random() < 0.05 * (1 - p) ** 4,
            followed=liked and rng.random() < 0.05,
        )

    # -- wire forms --------------------------------------------------------------------------------

    def item(self, video: int, create_time: float) -> ranker_pb2.FeedItem:
        item = ranker_pb2.FeedItem(
            video=f"videos/sim{video}",
            creator=f"creator{self.creators[video]}",
            content_embedding=to_proto(self.embeddings[video]),
            labels=["ai-generated"],
            duration_seconds=float(self.durations[video]),
            prompt=self.prompts[video],
        )
        item.create_time.FromNanoseconds(int(create_time * 1e9))
        return item

    def events(self, user: int, video: int, response: Response, t: float) -> list[ranker_pb2.FeedEvent]:
        name, who = f"videos/sim{video}", f"user{user}"
        E = ranker_pb2
        out = [
            E.FeedEvent(user=who, video=name, type=E.FEED_EVENT_TYPE_IMPRESSION),
            E.FeedEvent(
                user=who,
                video=name,
                type=E.FEED_EVENT_TYPE_WATCH,
                watch_seconds=response.watch_ratio * self.durations[video],
            ),
        ]
        for flag, kind in (
            (response.watch_ratio < 0.15, E.FEED_EVENT_TYPE_SKIP),
            (response.liked, E.FEED_EVENT_TYPE_LIKE),
            (response.shared, E.FEED_EVENT_TYPE_SHARE),
            (response.remixed, E.FEED_EVENT_TYPE_REMIX),
            (response.hidden, E.FEED_EVENT_TYPE_HIDE),
            (response.followed, E.FEED_EVENT_TYPE_FOLLOW),
        ):
            if flag:
                out.append(E.FeedEvent(user=who, video=name, type=kind))
        for event in out:
            event.event_time.FromNanoseconds(int(t * 1e9))
        return out


def gain_of_match(p: np.ndarray) -> np.ndarray:
    """E[watch ratio + 2 like + 4 remix] of a video looked at with match p (`World._engage`: watch ≈ p,
    a like with probability 0.5 p², a remix 0.08 p³)."""
    return p + 2 * 0.5 * p**2 + 4 * 0.08 * p**3


def video_id(name: str) -> int:
    return int(name.removeprefix("videos/sim"))


def batched(iterable, size):
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
