"""Simulate the platform, train the ranking model, evaluate it, ship the weights, write the report.

    .venv/bin/python -m training.ranker.evaluate            # docs/ranker/REPORT.md + services/ranker/weights/

1. Logging period: the real RankerCore (in process, memory store, simulated clock) serves simulated
   users with the content-only fallback scorer; every impression is logged with the features the
   ranker saw and the user's response. New videos arrive all along.
2. Training: the multi-task model on those logs (training/ranker/train.py).
3. Held-out ranking: at the end of the logging period, for held-out requests (user, moment), each
   method ranks the same 1,000 videos the user has not seen; relevance is a fresh draw of the
   simulated user's response to every one of them (watch ratio + 2 like + 4 remix, the objective of
   the ranking score). NDCG@10 on those gains, Recall@50 of the liked videos.
4. Cold start: the ranker with the trained model keeps serving while new videos arrive; for each
   new video we count its impressions until it is first shown to, and first liked by, a user of its
   audience (users whose match with it is at least AUDIENCE_MATCH).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kino.v1 import ranker_pb2
from services.ranker.core import RankerCore, limit_threads
from services.ranker.events import RESPONSE_VALUES
from services.ranker.features import NUM_FEATURES, build_profile, candidate_features
from services.ranker.items import SIMILARITY_DTYPES, TASTE_BASIS_DIM, pin_similarity_dtype
from services.ranker.model import DEFAULT_WEIGHTS_DIR, save_ranker
from services.ranker.retrieval import RetrievalConfig
from services.ranker.scoring import ContentScorer, ModelScorer
from services.ranker.store import COUNTER_INDEX, MemoryFeatureStore
from training.ranker.simulator import Response, SimConfig, World, gain_of_match, video_id
from training.ranker.train import ImpressionLog, TrainConfig, train_ranker

log = logging.getLogger("training.ranker")

REPORT = Path("docs/ranker/REPORT.md")
COMMAND = ".venv/bin/python -m training.ranker.evaluate"
STEP_SECONDS = 60.0
AUDIENCE_MATCH = 0.5
POOL = 1000


class SimulatedPlatform:
    """The real RankerCore driven by simulated users on a simulated clock."""

    def __init__(self, world: World, scorer) -> None:
        self.world = world
        self.now = 1_700_000_000.0
        self.core = RankerCore(
            MemoryFeatureStore(), scorer, retrieval=RetrievalConfig(cache_seconds=0.0), clock=lambda: self.now
        )
        self.published = 0
        self.recent_topics: dict[int, list[int]] = {}
        self.impressions: dict[int, list[int]] = {}  # video -> users shown to, in order
        self.likes: dict[int, list[int]] = {}
        # user -> (video, response) of every impression, valued as the store values it
        # (events.RESPONSE_VALUES): the whole history, for the diagnostics that ask what a longer memory
        # than the store's would be worth.
        self.history: dict[int, list[tuple[int, float]]] = {}

    async def publish(self, count: int) -> None:
        videos = range(self.published, min(self.published + count, len(self.world.topics)))
        if videos:
            items = [self.world.item(v, self.now) for v in videos]
            for start in range(0, len(items), 1000):
                await self.core.upsert_items(ranker_pb2.UpsertItemsRequest(items=items[start : start + 1000]))
            self.published = videos[-1] + 1
            # The service trains its retrieval index in a background task. The simulation never yields to
            # the event loop on its own, so it waits for that task: it then searches the index as the service does.
            await self.core.wait_for_index()

    async def session(self, user: int, logs: ImpressionLog | None, random_slots: int = 0) -> None:
        page = await self.core.rank_page(f"user{user}", self.world.config.page_size)
        rows, item_vectors, dense = list(page.rows), page.features.item_vectors, page.features.dense
        if random_slots and rows:
            rows, item_vectors, dense = await self._randomize(f"user{user}", page, random_slots)
        events = []
        recent = self.recent_topics.setdefault(user, [])
        for position, row in enumerate(rows):
            video = video_id(self.core.catalog.name(row))
            response = self.world.respond(user, video, position, recent)
            recent.append(int(self.world.topics[video]))
            self.impressions.setdefault(video, []).append(user)
            if response.liked:
                self.likes.setdefault(video, []).append(user)
            self.history.setdefault(user, []).append((video, response_value(response)))
            events += self.world.events(user, video, response, self.now)
            if logs is not None:
                logs.add(
                    page.profile.model_taste,
                    item_vectors[position],
                    dense[position],
                    response.watch_ratio,
                    response.liked,
                    response.remixed,
                )
        del recent[:-5]
        if events:
            await self.core.ingest(ranker_pb2.IngestRequest(events=events))

    async def _randomize(self, user: str, page, slots: int):
        """Replaces `slots` random positions of the page with random unseen videos (uniform exploration
        traffic), so the logs also hold responses to videos the ranker would not have chosen."""
        core, rng = self.core, self.world.rng
        rows = list(page.rows)
        draw = rng.choice(len(core.catalog), size=4 * slots, replace=False)
        names = [core.catalog.name(int(r)) for r in draw]
        seen = await core.store.seen_mask(user, names)
        fresh = [int(r) for r, was_seen in zip(draw, seen, strict=True) if not was_seen and r not in rows][
            :slots
        ]
        if not fresh:
            return rows, page.features.item_vectors, page.features.dense
        counters = await core.store.counters([core.catalog.name(r) for r in fresh])
        extra = candidate_features(page.profile, core.catalog, np.array(fresh), counters, self.now)
        item_vectors, dense = page.features.item_vectors.copy(), page.features.dense.copy()
        for i, position in enumerate(rng.choice(len(rows), size=len(fresh), replace=False)):
            rows[position] = fresh[i]
            item_vectors[position], dense[position] = extra.item_vectors[i], extra.dense[i]
        return rows, item_vectors, dense

    async def run(
        self, steps: int, sessions_per_step: int, logs: ImpressionLog | None = None, random_slots: int = 0
    ) -> None:
        world = self.world
        p = world.activity / world.activity.sum()
        for step in range(steps):
            self.now += STEP_SECONDS
            await self.publish(world.config.arrivals_per_step)
            for user in world.rng.choice(len(p), size=sessions_per_step, p=p):
                await self.session(int(user), logs, random_slots)
            if step % 100 == 0:
                log.info(
                    "step %d/%d: %d videos, %d impressions logged",
                    step,
                    steps,
                    self.published,
                    len(logs or []),
                )


async def logging_period(platform: SimulatedPlatform, args) -> ImpressionLog:
    """`args.log_steps` simulated minutes of logged traffic, in `args.rounds` rounds: the first served by
    the platform's scorer (the content-only fallback), each later one by the model trained on
    everything logged before it, as a platform retrains on its own logs."""
    logs = ImpressionLog()
    for round_index, round_steps in enumerate(np.array_split(np.arange(args.log_steps), args.rounds)):
        if round_index:
            model, _ = train_on(logs, args)
            platform.core.scorer = ModelScorer(model)
        await platform.run(round_steps.size, args.sessions_per_step, logs, args.random_slots)
    return logs


def train_on(logs: ImpressionLog, args):
    """The ranking model trained on `logs` with the run's epochs and seed: (model, training record)."""
    return train_ranker(logs, TrainConfig(epochs=args.epochs, seed=args.seed))


# ---------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------


def ndcg_at(scores: np.ndarray, gains: np.ndarray, k: int) -> float | None:
    ideal = np.sort(gains)[::-1][:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = float(ideal @ discounts[: ideal.size])
    if idcg <= 0:
        return None
    top = np.argsort(-scores, kind="stable")[:k]
    return float(gains[top] @ discounts[: top.size]) / idcg


def recall_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float | None:
    if not relevant.any():
        return None
    top = np.argsort(-scores, kind="stable")[:k]
    return float(relevant[top].sum() / relevant.sum())


# The oracle as the NDCG target words it, "an oracle that knows the tastes": the true taste and the
# fatigue the user's last impressions cause, without the videos' latent quality (a part of this
# simulator the target does not name; the full oracle knows it too).
TASTE_ORACLE = "true taste and fatigue, no quality"
# The ceiling of the model's taste input: the ranker's own regressed taste, with the true quality given.
TASTE_CEILING = "the ranker's regressed taste and true quality"
# The same with the true fatigue too: all the oracle knows but the taste, so what the taste estimate alone
# leaves of the full oracle's NDCG.
FATIGUE_CEILING = "the ranker's regressed taste, true quality and true fatigue"
HISTORY_GROUPS = ((0, 150), (150, 300), (300, 600), (600, None))  # distinct videos a user was shown


async def held_out_ranking(
    platform: SimulatedPlatform, model, requests: int, seed: int
) -> tuple[dict[str, dict], list[dict]]:
    """Every method's mean NDCG@10 and Recall@50; and the model's and its taste input's share of the
    oracle's NDCG@10 by how long the requesting user's history is."""
    world, core = platform.world, platform.core
    rng = np.random.default_rng(seed)
    active = np.array([u for u in range(world.config.num_users) if f"user{u}" in core.store._users])
    methods = ("random", "popularity", "content-only", "model", "oracle", *DIAGNOSTICS)
    results = {m: {"ndcg@10": [], "recall@50": []} for m in methods}
    per_request = []  # (distinct videos shown to the user, NDCG@10 of model, taste ceiling, oracle)
    model_scorer, content_scorer = ModelScorer(model), ContentScorer()
    weights = world.activity[active] / world.activity[active].sum()  # requests come with activity
    for user in rng.choice(active, size=requests, replace=True, p=weights):
        name = f"user{user}"
        state = await core.store.user_state(name)
        profile = build_profile(state, core.catalog)
        names = [core.catalog.name(r) for r in range(len(core.catalog))]
        unseen = np.flatnonzero(~await core.store.seen_mask(name, names))
        rows = rng.choice(unseen, size=min(POOL, unseen.size), replace=False)
        counters = await core.store.counters([names[r] for r in rows])
        features = candidate_features(profile, core.catalog, rows, counters, platform.now)
        videos = np.array([video_id(names[r]) for r in rows])
        recent = platform.recent_topics.get(int(user), [])
        gains = world.draw(int(user), videos, recent)
        liked = gains >= 2.0  # a like (or a remix, worth 4) was drawn
        c = COUNTER_INDEX
        scores = {
            "random": rng.random(rows.size),
            "popularity": counters[:, c["likes"]]
            + counters[:, c["shares"]]
            + counters[:, c["remixes"]]
            + 1e-3 * counters[:, c["watch_ratio_sum"]],
            "content-only": content_scorer.score(profile, features),
            "model": model_scorer.score(profile, features),
            "oracle": world.expected_gain(int(user), videos, recent),
            # Diagnostics (oracle knowledge, never seen by the model): where the oracle's lead comes from.
            "true taste only": world.embeddings[videos] @ world.tastes[int(user)],
            TASTE_ORACLE: world.expected_gain(int(user), videos, recent, with_quality=False),
            "true taste and quality, no fatigue": world.expected_gain(int(user), videos, []),
            "estimated taste and true quality": _gain_from_taste(world, profile.vector, videos),
            "true topics of the taste and true quality": _gain_from_taste(
                world, world.topic_tastes[int(user)], videos
            ),
            "taste regressed on the whole history and true quality": _gain_from_taste(
                world, _regressed_taste(world, platform.history.get(int(user), [])), videos
            ),
            TASTE_CEILING: _gain_from_taste(world, profile.model_taste, videos),
            FATIGUE_CEILING: _gain_from_taste(world, profile.model_taste, videos, recent),
        }
        ndcg = {method: ndcg_at(s, gains, 10) for method, s in scores.items()}
        for method, s in scores.items():
            for metric, value in (("ndcg@10", ndcg[method]), ("recall@50", recall_at(s, liked, 50))):
                if value is not None:
                    results[method][metric].append(value)
        if ndcg["oracle"] is not None:  # None for every method alike: no gain was drawn
            shown = len({video for video, _ in platform.history.get(int(user), [])})
            per_request.append((shown, ndcg["model"], ndcg[TASTE_CEILING], ndcg["oracle"]))
    summary = {
        m: {k: float(np.mean(v)) for k, v in r.items()} | {"requests": len(r["ndcg@10"])}
        for m, r in results.items()
    }
    by_history = []
    for low, high in HISTORY_GROUPS:
        rows = np.array([r[1:] for r in per_request if r[0] >= low and (high is None or r[0] < high)])
        if rows.size:
            model_ndcg, taste_ndcg, oracle_ndcg = rows.mean(axis=0)
            by_history.append(
                {
                    "videos": f"{low}-{high}" if high else f"{low} or more",
                    "requests": len(rows),
                    "model": float(model_ndcg / oracle_ndcg),
                    TASTE_CEILING: float(taste_ndcg / oracle_ndcg),
                }
            )
    return summary, by_history


DIAGNOSTICS = (
    "true taste only",
    TASTE_ORACLE,
    "true taste and quality, no fatigue",
    "estimated taste and true quality",
    "true topics of the taste and true quality",
    "taste regressed on the whole history and true quality",
    TASTE_CEILING,
    FATIGUE_CEILING,
)
HISTORY_RIDGE = 1.0


def response_value(response: Response) -> float:
    """A simulated response summed as the store sums the events it sends (events.RESPONSE_VALUES)."""
    values = RESPONSE_VALUES
    return (
        min(response.watch_ratio, 1.0)
        + values[ranker_pb2.FEED_EVENT_TYPE_LIKE] * response.liked
        + values[ranker_pb2.FEED_EVENT_TYPE_REMIX] * response.remixed
    )


def _regressed_taste(world: World, history: list[tuple[int, float]]) -> np.ndarray:
    """A taste estimate from every impression the user ever had, not the store's last 1,500 responses:
    ridge regression of the response (`response_value`) on the content embedding, centred."""
    if len(history) < 2:
        return np.zeros(world.embeddings.shape[1], np.float32)
    videos, engagement = zip(*history, strict=True)
    x = world.embeddings[list(videos)].astype(np.float64)  # (n, D)
    y = np.asarray(engagement) - np.mean(engagement)
    x = x - x.mean(axis=0)
    taste = np.linalg.solve(x.T @ x + HISTORY_RIDGE * np.eye(x.shape[1]), x.T @ y)  # (D,)
    return (taste / max(np.linalg.norm(taste), 1e-9)).astype(np.float32)


def _gain_from_taste(
    world: World, taste: np.ndarray, videos: np.ndarray, recent_topics: list[int] | None = None
) -> np.ndarray:
    """The simulator's expected gain with `taste` in place of the user's true taste; fatigue from
    `recent_topics` as the simulator applies it, none without them."""
    cos = world.embeddings[videos] @ taste
    z = (cos - cos.mean()) / (cos.std() + 1e-6)
    c = world.config
    p = 1.0 / (1.0 + np.exp(-(c.match_scale * z + c.match_offset + world.quality[videos])))
    if recent_topics:
        p = p * world.fatigue_factor(videos, recent_topics)
    return gain_of_match(p)


def cold_start(platform: SimulatedPlatform, first_new: int) -> dict:
    world = platform.world
    videos = [v for v in range(first_new, platform.published)]
    to_audience, to_like, shares_50, base_rates = [], [], [], []
    for video in videos:
        audience = _world_match_matrix(world, np.arange(world.config.num_users), video)
        shown = platform.impressions.get(video, [])
        likes = platform.likes.get(video, [])
        in_audience = [world.match(u, np.array([video]))[0] >= AUDIENCE_MATCH for u in shown]
        to_audience.append(in_audience.index(True) + 1 if True in in_audience else None)
        first_like = next((shown.index(u) + 1 for u in likes), None)
        to_like.append(first_like)
        if len(shown) >= 50:
            shares_50.append(float(np.mean(in_audience[:50])))
        base_rates.append(float(np.mean(audience >= AUDIENCE_MATCH)))
    return {
        "videos": videos,
        "to_audience": to_audience,
        "to_like": to_like,
        "share_50": shares_50,
        "base_rate": base_rates,
        "impressions": [len(platform.impressions.get(v, [])) for v in videos],
    }


def _world_match_matrix(world: World, users: np.ndarray, video: int) -> np.ndarray:
    return np.array([world.match(int(u), np.array([video]))[0] for u in users])


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


async def main_async(args) -> None:
    limit_threads(1)
    pin_similarity_dtype(args.similarity_dtype)
    started = time.perf_counter()
    config = SimConfig(seed=args.seed, content=args.content, num_users=args.users)
    total_videos = config.initial_videos + config.arrivals_per_step * (args.log_steps + args.cold_steps) + 10
    world = World(config, total_videos)
    log.info(
        "world: %d users, %d videos (%s content) in %.1f s",
        config.num_users,
        total_videos,
        config.content,
        time.perf_counter() - started,
    )

    platform = SimulatedPlatform(world, ContentScorer())
    await platform.publish(config.initial_videos)
    logs = await logging_period(platform, args)
    log.info("logged %d impressions", len(logs))

    model, training = train_on(logs, args)
    held_out, by_history = await held_out_ranking(platform, model, args.requests, seed=args.seed + 1)

    first_new = platform.published
    platform.core.scorer = ModelScorer(model)
    await platform.run(args.cold_steps, args.sessions_per_step)
    cold = cold_start(platform, first_new)

    if not args.no_save:
        save_ranker(
            model, DEFAULT_WEIGHTS_DIR, {"simulation": asdict(config), **training, "command": COMMAND}
        )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        report(args, config, logs, training, held_out, by_history, cold, time.perf_counter() - started)
    )
    log.info("wrote %s in %.0f s", REPORT, time.perf_counter() - started)


def _pct(values, q):
    values = [v for v in values if v is not None]
    return float(np.percentile(values, q)) if values else float("nan")


def report(args, config, logs, training, held_out, by_history, cold, seconds) -> str:
    oracle = held_out["oracle"]["ndcg@10"]

    def table(methods) -> str:
        return "\n".join(
            f"| {m} | {held_out[m]['ndcg@10']:.3f} | {held_out[m]['ndcg@10'] / oracle:.0%} "
            f"| {held_out[m]['recall@50']:.3f} |"
            for m in methods
        )

    rows = table(m for m in held_out if m not in DIAGNOSTICS)
    diagnostics = table(DIAGNOSTICS)
    history_rows = "\n".join(
        f"| {g['videos']} | {g['requests']} | {g['model']:.0%} | {g[TASTE_CEILING]:.0%} |" for g in by_history
    )
    n_new = len(cold["videos"])
    with_imps = sum(n > 0 for n in cold["impressions"])
    # A video that got fewer than 50 impressions before the simulation ended, without reaching its
    # audience (or its first like), is censored: we do not know, so it is left out of that rate.
    observed_audience = [
        v for v, n in zip(cold["to_audience"], cold["impressions"], strict=True) if v is not None or n >= 50
    ]
    observed_like = [
        v for v, n in zip(cold["to_like"], cold["impressions"], strict=True) if v is not None or n >= 50
    ]
    audience_50 = np.mean([v is not None and v <= 50 for v in observed_audience])
    like_50 = np.mean([v is not None and v <= 50 for v in observed_like])
    model_ratio = held_out["model"]["ndcg@10"] / oracle
    taste_oracle_ratio = held_out["model"]["ndcg@10"] / held_out[TASTE_ORACLE]["ndcg@10"]
    history = training["history"][-1]
    return f"""# FeedRanker evaluation report

Reproduce with one command (about {seconds / 60:.0f} minutes on a 2-core CPU):

    {COMMAND}{"" if args.content == "minilm" else " --content " + args.content}

It simulates the platform, trains the ranking model, writes its weights to
`services/ranker/weights/` (loaded by default by the service) and rewrites this file.

## Summary

| target | measured | met |
|---|---|---|
| NDCG@10 ≥ 80% of the oracle's | model {held_out["model"]["ndcg@10"]:.3f} = {model_ratio:.0%} of oracle {oracle:.3f} | {"yes" if model_ratio >= 0.8 else "no"} |
| the same against an oracle that knows the tastes and the fatigue but not the videos' latent quality (as the target words it, "an oracle that knows the tastes"; a diagnostic below) | {taste_oracle_ratio:.0%} of its {held_out[TASTE_ORACLE]["ndcg@10"]:.3f} | {"yes" if taste_oracle_ratio >= 0.8 else "no"} |
| a new video reaches interested users within 50 impressions | {audience_50:.0%} of new videos reached their audience within 50 impressions (median {_pct(cold["to_audience"], 50):.0f}, p90 {_pct(cold["to_audience"], 90):.0f}); {like_50:.0%} got a like from it within 50 | {"yes" if audience_50 >= 0.9 else "no"} |

## Why a simulator

No public short-video interaction log can be downloaded here, so the ranker is trained and evaluated
on a simulated platform whose ground truth is known (`training/ranker/simulator.py`):

* **Content**: {total_content(args)}
  Each video also has a latent quality (normal, std {config.quality_std}) that its content does not reveal, a
  creator ({config.num_creators} creators) and a duration of 6–20 s.
* **Users** ({config.num_users}): a taste vector in the content-embedding space, a mix of one to three topic
  centroids plus personal noise, and an activity level (sessions are drawn in proportion to it).
  The match p(u, v) = sigmoid({config.match_scale} · z(u, v) {config.match_offset:+} + quality(v)), where z is the
  cosine of taste and video standardized over the catalog for that user.
* **Responses**: position bias (the k-th video of a page is looked at with probability
  {config.position_decay}^k, otherwise swiped away within 8% of its length), fatigue (× {config.fatigue} per
  video of the same topic among the user's last five), watch ratio ≈ p plus noise with re-watches,
  like with probability 0.5·p², share 0.08·p², remix 0.08·p³, hide 0.05·(1−p)⁴, follow after 5% of likes.
* **Time**: {config.arrivals_per_step} new videos arrive every simulated minute; {args.sessions_per_step} sessions of one
  {config.page_size}-video page each per minute.

## Training

The real `RankerCore` (in process, memory feature store, simulated clock) served
{args.log_steps} simulated minutes {served_by(args.rounds)}, logging every impression with the
features the ranker computed when it served it and the user's response: {len(logs):,} impressions.
In every logged page {args.random_slots} of the {config.page_size} positions (chosen at random) showed a uniformly random
unseen video instead, as exploration traffic does on a real platform: without it the logs would
only hold videos the fallback already liked, and the model would never learn what a bad match is.
The multi-task model (`services/ranker/model.py`: user and item towers over the 384-d content
vectors, {NUM_FEATURES} dense features, heads for watch ratio, like and remix) trained for
{args.epochs} epochs ({training["impressions"] - training["validation"]:,} impressions, {training["validation"]:,} for validation);
final validation losses: watch {history["watch"]:.4f}, like {history["like"]:.4f}, remix {history["remix"]:.4f}.
Ranking score = 1.0 · watch + 2.0 · P(like) + 4.0 · P(remix) (`RankerConfig.head_weights`).

## Held-out ranking quality

{held_out["oracle"]["requests"]} held-out requests at the end of the logging period: a user drawn by activity,
and 1,000 videos that user has not seen, drawn from the whole catalog. Every method ranks the same
1,000. Relevance is a fresh draw of that user's full-attention response to every one of them
as the next video they watch, in their current state (fatigue from their last five impressions
included; gain = watch ratio + 2·like + 4·remix, the same objective as the ranking score), so it is
held out from everything the model saw. NDCG@10 uses linear gains; Recall@50 counts the drawn likes.
The oracle ranks by the true expected gain (taste, quality and fatigue); it stays below 1 because
responses are random.

| method | NDCG@10 | of oracle | Recall@50 (likes) |
|---|---|---|---|
{rows}

* random: a random order; popularity: likes + shares + remixes so far;
* content-only: the service's fallback scorer (similarity to the taste vector and recent positives,
  away from recent negatives, plus a small like-rate prior);
* model: the trained multi-task model (without re-ranking, which trades a little relevance for diversity).

Where the oracle's lead comes from (diagnostics that use the simulator's hidden state; no ranker
sees it). Each ranks the same candidates against the same labels:

| ranking by | NDCG@10 | of oracle | Recall@50 (likes) |
|---|---|---|---|
{diagnostics}

* true taste only: the cosine of the user's true taste vector and the video, without quality or fatigue;
* true taste and fatigue, no quality: the oracle's expected gain for a video of average quality,
  the video's latent quality left out: an oracle that knows the tastes (and what the user just saw)
  but not how good each video is;
* true taste and quality, no fatigue: the oracle's expected gain with fatigue left out;
* estimated taste and true quality: the oracle's formula with the ranker's taste vector (the weighted
  mean of the recent positives) in place of the true taste;
* true topics of the taste and true quality: the oracle's formula (no fatigue) with the taste's topic
  mix alone, its personal component left out: what knowing exactly which topics a user likes gives;
* taste regressed on the whole history and true quality: the same with a taste estimated from every
  impression the user ever had (ridge regression of the response, valued as in `events.RESPONSE_VALUES`,
  on all {config.dim} dimensions of the embedding), where the store keeps the last 1,500 responses;
* the ranker's regressed taste and true quality: the same with the taste the model is given
  (`features.regressed_taste`: regressed on the stored response history in the catalog's
  {TASTE_BASIS_DIM} principal directions);
* the ranker's regressed taste, true quality and true fatigue: the same, lowered by the fatigue of the
  user's last five impressions as the simulator lowers it: everything the oracle knows but the taste.

The true taste alone reaches {held_out["true taste only"]["ndcg@10"] / oracle:.0%} of the oracle; the ranker's taste estimate,
even given the true quality, reaches {held_out["estimated taste and true quality"]["ndcg@10"] / oracle:.0%}. A user's taste is a mix of topic centroids plus a
personal component spread over every dimension of the embedding space: knowing the topic mix exactly
reaches {held_out["true topics of the taste and true quality"]["ndcg@10"] / oracle:.0%}, and a taste regressed on the user's whole history
{held_out["taste regressed on the whole history and true quality"]["ndcg@10"] / oracle:.0%}, and the ranker's own estimate
{held_out[TASTE_CEILING]["ndcg@10"] / oracle:.0%}. Every one of these is given the true quality,
which no ranker has. Given the true fatigue as well, the ranker's own taste reaches
{held_out[FATIGUE_CEILING]["ndcg@10"] / oracle:.0%}: what a model with this taste input would reach if it also knew every video's
quality and the user's fatigue exactly. By the length of the requesting user's history (share of the oracle's NDCG@10
over the same requests):

| distinct videos the user was shown | requests | model | {TASTE_CEILING} |
|---|---|---|---|
{history_rows}

Where the model stays near its taste input's ceiling, the gap to the target is how much a user's
history says about their taste; where it falls well below it, the model is not using all that its input
says (the groups hold 50-130 requests each, and NDCG@10 on drawn labels is noisy).

## Cold start

After training, the ranker with the trained model kept serving for {args.cold_steps} simulated minutes while
{n_new} new videos arrived ({with_imps} of them were shown at least once). A new video's audience is
the users whose match with it is at least {AUDIENCE_MATCH} (on average {np.mean(cold["base_rate"]):.1%} of users).

| | value |
|---|---|
| new videos shown to a user of their audience within 50 impressions (of {len(observed_audience)} observed for 50 impressions or until reached) | {audience_50:.0%} |
| impressions until the first audience user: median / p90 | {_pct(cold["to_audience"], 50):.0f} / {_pct(cold["to_audience"], 90):.0f} |
| new videos liked within their first 50 impressions (of {len(observed_like)} observed that long or liked) | {like_50:.0%} |
| impressions until the first like: median / p90 | {_pct(cold["to_like"], 50):.0f} / {_pct(cold["to_like"], 90):.0f} |
| share of the first 50 impressions that went to the audience (videos with ≥ 50 impressions: {len(cold["share_50"])}) | {np.mean(cold["share_50"]) if cold["share_50"] else float("nan"):.0%} (random targeting: {np.mean(cold["base_rate"]):.1%}) |

New videos are found through the exploration source (new videos with fewer than 50 impressions, the
nearest to the user's taste first), the similar-items source (their content embedding is indexed at
upsert) and the exploration slot that re-ranking reserves in every five positions.

## Limits

* The simulator's users live in the same embedding space the ranker retrieves in; real tastes are
  not that tidy, so these numbers are an upper bound on what the same code would do on real logs.
* The logging policy is the content-only fallback plus uniform exploration; the model never saw data
  logged under itself. A run whose second half is served by the model (`--rounds 2`) ranks worse
  (docs/ranker/README.md): a model-served history says less about the rest of a user's taste.
"""


def served_by(rounds: int) -> str:
    fallback = "with the content-only fallback scorer"
    if rounds == 1:
        return fallback
    return f"in {rounds} rounds: the first {fallback}, each later one with the model trained on the logs before it"


def total_content(args) -> str:
    if args.content == "minilm":
        return (
            "prompts generated from a vocabulary of 16 topics (three subjects each), 8 styles and 6 "
            "shot types, encoded by the real TextEncoder backend (all-MiniLM-L6-v2 pooled vectors, 384-d)."
        )
    return "synthetic unit vectors in 16 clusters (one per topic)."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", choices=["minilm", "synthetic"], default="minilm")
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--log-steps", type=int, default=1200)
    parser.add_argument("--cold-steps", type=int, default=300)
    parser.add_argument("--sessions-per-step", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="split the logging period into this many rounds; each after the first is served by the model "
        "trained on the logs so far",
    )
    parser.add_argument("--random-slots", type=int, default=4, help="uniformly random videos per logged page")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="do not overwrite the shipped weights")
    parser.add_argument(
        "--similarity-dtype",
        choices=["auto", *SIMILARITY_DTYPES],
        default="auto",
        help="fix the candidate similarity dtype (auto: the faster on this CPU, measured, which load can "
        "change): runs compared side by side should fix it",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= args.log_steps:
        parser.error(f"--rounds must be between 1 and --log-steps ({args.log_steps}), got {args.rounds}")
    return args


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.manual_seed(args.seed)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
